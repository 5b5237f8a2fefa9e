"""Requantization loss: a converted weight judged block by block against its per-block original.

Incident (DeepSeek-V4 on ATOM): the attention output projection ``wo_a`` is
stored FP8 with one scale per 128x128 block; a load path requantized it to one
per-tensor (scalar) scale.  The shapes, dtypes and the global cosine all stay
plausible (the large blocks dominate every global statistic), but blocks whose
magnitude is far below the tensor's amax land in the subnormal range of the
single scale and lose most of their bits: a silent accuracy loss.

A correct conversion into a target format with ``m`` mantissa bits rounds each
element to nearest, so in the format's normal range every element's relative
error is at most the unit roundoff ``u = 2^-(m+1)`` (e4m3 ``2^-4``, bf16 ``2^-8``)
and so is every block's relative error ``||new - old|| / ||old||``, whatever the
block's magnitude.  A block over ``u`` (plus one fp32 rounding of an
intermediate product, ``2^-23``) was pushed below the normal range or
mis-scaled: that is the verdict, per block, with the worst block (position,
relative error, SQNR, its amax relative to the tensor's) named.  The global
cosine and norm ratio are reported beside it; both follow from the same bound
(``cos >= sqrt(1 - u^2)``, ``|norm ratio - 1| <= u``).

Where the conversion happens is declared by the contract (``options["requant"]``):
which parameters hold the source weight, its scale, the block size and the
per-shard widths, how the converted weight (and its scale) come back, and whether
the function rewrites the source in place (then the source is copied before the
call; conversions run at load time, never on the hot path).  Source scale
layouts: one scalar, one per shard of ``widths`` rows, one per row, or a 2-D
block grid; elements under a source scale that is no scale (ATOM's fused-checkpoint
placeholder ``finfo.min``, zero, NaN) are left out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import torch

from quantguard.checks._common import dtype_name, is_tensor
from quantguard.checks.base import DataCheck, Finding, Measurement, register_check
from quantguard.numerics.dequant import expand_blocks_2d, scale_values
from quantguard.numerics.formats import element_format
from quantguard.numerics.scales import block_amax

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.calls import CallRecord

__all__ = ["RequantPrecision", "unit_roundoff", "block_errors", "judge_blocks", "DEFAULT_BLOCK"]

#: Block size judged when the source has no block grid of its own (a per-tensor or per-row source).
DEFAULT_BLOCK = 128
#: One fp32 rounding of an intermediate product (``w.float() * scale`` before the cast).
_FP32_SLACK = 2.0**-23
#: Rows dequantized at a time: bounds the float64 working set of a large weight.
_CHUNK_ROWS = 1024
#: Layout of the statistics vector measured on the device.
_WORST, _POSITION, _OVER, _BLOCKS, _ERR, _REF, _DOT, _OUT, _WORST_AMAX, _AMAX = range(10)


def unit_roundoff(dtype: torch.dtype) -> float | None:
    """Largest relative rounding error of a normal value in ``dtype``: ``2^-(mantissa bits + 1)``."""
    element = element_format(dtype)
    if element is not None:
        return 2.0 ** -(element.mbits + 1) if element.kind == "float" and element.mbits else 0.5 / element.max
    if dtype.is_floating_point:
        return torch.finfo(dtype).eps / 2
    return None


def _multipliers(
    scale: torch.Tensor | None, rows: int, cols: int, block: tuple[int, int] | None, widths: Any
) -> tuple[Any, tuple[int, int] | None]:
    """A function ``(r0, r1) -> (r1 - r0, cols)`` multipliers (or a scalar), and the source's block grid if any."""
    if scale is None:
        return (lambda r0, r1: 1.0), None
    s = scale_values(scale.detach()).to(torch.float64)
    if s.numel() == 1:
        value = s.reshape(())
        return (lambda r0, r1: value), None
    if widths is not None and s.numel() == len(widths) and sum(widths) == rows:
        per_row = torch.repeat_interleave(s.reshape(-1), torch.tensor(list(widths), device=s.device)).reshape(-1, 1)
        return (lambda r0, r1: per_row[r0:r1]), None
    if (s.dim() == 1 or (s.dim() == 2 and s.shape[1] == 1)) and s.shape[0] == rows:
        column = s.reshape(-1, 1)
        return (lambda r0, r1: column[r0:r1]), None
    if s.dim() == 2:
        br, bc = block or (-(-rows // s.shape[0]), -(-cols // s.shape[1]))
        if -(-rows // br) == s.shape[0] and -(-cols // bc) == s.shape[1]:

            def blocks(r0: int, r1: int) -> torch.Tensor:
                first = r0 // br  # the block rows over [r0, r1), expanded, less the rows above r0
                return expand_blocks_2d(s[first : -(-r1 // br)], br, bc, r1 - first * br, cols)[r0 - first * br :]

            return blocks, (br, bc)
    raise ValueError(f"scale of shape {tuple(s.shape)} fits no layout of a ({rows}, {cols}) weight")


def _block_sums(values: torch.Tensor, br: int, bc: int) -> torch.Tensor:
    """``(ceil(rows/br), ceil(cols/bc))`` sums of a 2-D tensor's blocks (partial edge blocks padded with 0)."""
    rows, cols = values.shape
    padded = torch.nn.functional.pad(values, (0, -cols % bc, 0, -rows % br))
    return padded.reshape(padded.shape[0] // br, br, -1, bc).sum(dim=(1, 3))


def block_errors(
    source: torch.Tensor,
    source_scale: Any,
    converted: torch.Tensor,
    converted_scale: Any,
    bound: float,
    block: tuple[int, int] | None = None,
    widths: Any = None,
) -> tuple[torch.Tensor, tuple[int, int]]:
    """The device statistics vector of a conversion (see the module docstring) and the judged block size.

    Dequantizes ``_CHUNK_ROWS`` rows at a time in float64; the per-block sums
    are folded into one small vector (worst block, blocks whose relative error
    exceeds ``bound``, global sums), so nothing is copied to the host here.
    """
    rows, cols = source.shape[0], source.shape[-1]
    src_mult, grid = _multipliers(source_scale, rows, cols, block, widths)
    out_mult, _ = _multipliers(converted_scale, rows, cols, grid, widths)
    br, bc = grid or (DEFAULT_BLOCK, DEFAULT_BLOCK)
    chunk = max(br, (_CHUNK_ROWS // br) * br)
    err, ref, dot, out, amax = [], [], [], [], []
    for r0 in range(0, rows, chunk):
        r1 = min(rows, r0 + chunk)
        multipliers = torch.as_tensor(src_mult(r0, r1), dtype=torch.float64, device=source.device)
        old = source[r0:r1].reshape(r1 - r0, cols).to(torch.float64) * multipliers
        new = converted[r0:r1].reshape(r1 - r0, cols).to(torch.float64) * out_mult(r0, r1)
        diff = new - old
        diff = torch.where(torch.isfinite(diff), diff, torch.full_like(diff, math.inf))
        # a source scale that is no scale (ATOM's fused-checkpoint placeholder finfo.min, zero, NaN) defines no
        # original: those elements are left out rather than judged against garbage
        undefined = ~torch.broadcast_to(multipliers > 0, old.shape)
        old = torch.where(undefined, 0.0, old)
        diff = torch.where(undefined, 0.0, diff)
        err.append(_block_sums(diff.square(), br, bc))
        ref.append(_block_sums(old.square(), br, bc))
        finite = torch.where(torch.isfinite(new) & ~undefined, new, 0.0)
        dot.append((finite * old).sum())
        out.append(finite.square().sum())
        amax.append(block_amax(old, br, bc))
    e2, x2, amaxes = torch.cat(err), torch.cat(ref), torch.cat(amax)
    ratio = torch.where(x2 > 0, e2 / x2.clamp(min=1e-300), torch.where(e2 > 0, math.inf, 0.0))
    worst, position = ratio.reshape(-1).max(0)
    stats = torch.stack(
        (
            worst,
            position.to(torch.float64),
            (~(ratio <= bound * bound)).sum().to(torch.float64),
            ratio.new_full((), float(ratio.numel())),
            e2.sum(),
            x2.sum(),
            torch.stack(dot).sum(),
            torch.stack(out).sum(),
            amaxes.reshape(-1)[position],
            amaxes.max(),
        )
    )
    return stats, (br, bc)


def judge_blocks(head: list[float], bound: float, grid_columns: int) -> dict[str, Any]:
    """Host statistics from :func:`block_errors`' vector: worst block, blocks over ``bound``, global metrics."""
    worst = math.sqrt(head[_WORST]) if math.isfinite(head[_WORST]) else math.inf
    position = int(head[_POSITION])
    err, ref, dot, out = head[_ERR], head[_REF], head[_DOT], head[_OUT]
    cosine = dot / math.sqrt(out * ref) if out > 0 and ref > 0 else (1.0 if out == ref == 0 else 0.0)
    sqnr = -20.0 * math.log10(worst) if 0 < worst < math.inf else (math.inf if worst == 0 else -math.inf)
    return {
        "worst_block": [position // grid_columns, position % grid_columns],
        "worst_block_rel_err": worst,
        "worst_block_sqnr_db": sqnr,
        "worst_block_amax_ratio": head[_WORST_AMAX] / head[_AMAX] if head[_AMAX] > 0 else 0.0,
        "blocks": int(head[_BLOCKS]),
        "blocks_over_bound": int(head[_OVER]),
        "rel_err": math.sqrt(err / ref) if ref > 0 else (0.0 if err == 0 else math.inf),
        "cosine": max(-1.0, min(1.0, cosine)),
        "norm_ratio": math.sqrt(out / ref) if ref > 0 else (1.0 if out == 0 else math.inf),
        "bound": bound,
    }


def _converted(result: Any, spec: Mapping[str, Any]) -> tuple[Any, Any]:
    """``(weight, scale)`` the function returned, per ``spec["result"]``."""
    shape = spec.get("result", "weight")
    if shape == "weight":
        return result, None
    if not isinstance(result, (tuple, list)) or len(result) < 2:
        return None, None
    return (result[1], result[0]) if shape == "scale_weight" else (result[0], result[1])


def _block_arg(value: Any) -> tuple[int, int] | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value, value
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return int(value[0]), int(value[1])
    return None


@register_check
class RequantPrecision(DataCheck):
    name = "requant_precision"
    reports = ("requant_precision",)
    summary = (
        "judge a requantized/converted weight block by block against its per-block original: no block may lose "
        "more than the target format's unit roundoff (a single scale crushes low-magnitude blocks)"
    )

    @staticmethod
    def _spec(call: CallRecord) -> Mapping[str, Any] | None:
        spec = call.contract.options.get("requant")
        return spec if isinstance(spec, Mapping) else None

    def applies(self, call: CallRecord) -> bool:
        spec = self._spec(call)
        return spec is not None and is_tensor(call.get(spec["weight"]))

    def prepare(self, call: CallRecord) -> None:
        """Copy the source before a conversion that rewrites it in place (load time only)."""
        spec = self._spec(call)
        assert spec is not None
        weight, scale = call.get(spec["weight"]), call.get(spec.get("scale", ""))
        if spec.get("in_place"):
            weight = weight.detach().clone()
            scale = scale.detach().clone() if is_tensor(scale) else scale
        call.scratch["requant"] = (weight, scale)

    def measure(self, call: CallRecord) -> Measurement | None:
        spec = self._spec(call)
        source = call.scratch.get("requant")
        if spec is None or source is None:
            return None
        weight, scale = source
        new_weight, new_scale = _converted(call.result, spec)
        if not is_tensor(new_weight) or weight.dim() < 2 or new_weight.numel() != weight.numel():
            return None
        roundoff = unit_roundoff(new_weight.dtype)
        if roundoff is None:
            return None
        bound = roundoff + _FP32_SLACK
        block = _block_arg(call.get(spec["block"], spec.get("default_block"))) if spec.get("block") else None
        widths = call.get(spec["widths"]) if spec.get("widths") else None
        rows, cols = weight.shape[0], weight.shape[-1]
        with torch.no_grad():
            source_2d = weight.reshape(-1, cols)
            vector, (br, bc) = block_errors(
                source_2d,
                scale,
                new_weight.reshape(-1, cols),
                new_scale if is_tensor(new_scale) else None,
                bound,
                block,
                widths,
            )
        context = {
            "bound": bound,
            "grid_columns": -(-cols // bc),
            "block": [br, bc],
            "source": {"shape": [rows, cols], "dtype": dtype_name(weight.dtype)},
            "source_scale": list(scale.shape) if is_tensor(scale) else None,
            "converted": {"dtype": dtype_name(new_weight.dtype)},
            "converted_scale": list(new_scale.shape) if is_tensor(new_scale) else None,
        }
        return Measurement({"blocks": vector}, context)

    def judge(self, call: CallRecord, measurement: Measurement, values: Mapping[str, Any]) -> Iterable[Finding]:
        context = measurement.context
        stats = judge_blocks(list(values["blocks"]), context["bound"], context["grid_columns"])
        if stats["blocks_over_bound"] == 0:
            return ()
        row, column = stats["worst_block"]
        details = {
            **{key: context[key] for key in ("block", "source", "source_scale", "converted", "converted_scale")},
            **stats,
        }
        return (
            Finding(
                "requant_precision",
                f"converted weight ({context['source']['dtype']} -> {context['converted']['dtype']}) lost precision in "
                f"{stats['blocks_over_bound']} of {stats['blocks']} {context['block'][0]}x{context['block'][1]} blocks: "
                f"worst block ({row}, {column}) relative error {stats['worst_block_rel_err']:.3g} "
                f"(SQNR {stats['worst_block_sqnr_db']:.1f} dB) > {stats['bound']:.3g}, the unit roundoff of "
                f"{context['converted']['dtype']}; its amax is {stats['worst_block_amax_ratio']:.2g} of the weight's "
                f"(a single scale crushes low-magnitude blocks); global cosine {stats['cosine']:.6f}, "
                f"norm ratio {stats['norm_ratio']:.4f}",
                details=details,
            ),
        )
