"""Weight scales judged against the weights they were loaded with (``weight_scale``).

The activation chain reference cannot see a wrong *weight* scale: it
multiplies by whatever ``w_scale`` the kernel was handed.  So weight scales
are judged on the weight side, at load time (after ATOM's
``process_weights_after_loading``) and on the first sampled GEMM of each
weight, never on the hot path.

What a wrong scale changes: the weight bytes of a checkpoint quantized block
by block are fixed (each block's ``|q|`` max sits near the format max: 448
e4m3fn, 240 e4m3fnuz, 6 e2m1); only the dequantized magnitude
``|q| max x scale`` moves.  From the bytes and the scale alone:

* a scale of ones (dropped): every dequantized block reaches the format max;
* e8m0 scales copied as zeros (byte 0 = 2^-127): the weight vanishes;
* dequantized block maxima no LLM weight has (above 64, or below 1e-12);
* one scale for every block although each block's bytes reach the format
  max (a broadcast placeholder: blocks quantized with their own amax cannot
  all share one scale).

A scale swapped with another layer's, or left from before a requantization,
is plausible on its own; it is caught against the checkpoint.  ATOM's
``weight_loader(param, loaded_weight)`` passes every checkpoint tensor
through; the loader contract records (weakly, per parameter) the checkpoint
scale and the first rows of the checkpoint weight, and the dequantized
weight after loading must equal the checkpoint's (``normalize_e4m3fn_to_e4m3fnuz``
keeps it: bytes read as e4m3fnuz are halved, scales doubled).  The finding
says which side moved: bytes rewritten under the checkpoint's scale (stale),
or a scale that is not the one loaded with these bytes (swapped/overwritten).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from quantguard.checks._common import dtype_name
from quantguard.checks.base import DataCheck, Finding, Measurement, register_check
from quantguard.contracts.views import GemmView
from quantguard.numerics.dequant import expand_blocks_2d, fp8_values, scale_values, unpack_fp4
from quantguard.numerics.formats import FP4_E2M1, element_format, is_e8m0_dtype
from quantguard.numerics.layouts import mx_swizzled_size, read_scales, unshuffle_weight
from quantguard.numerics.scales import block_amax

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.calls import CallRecord

__all__ = [
    "WeightScales",
    "Checkpoint",
    "judge_weight_scale",
    "read_blocks",
    "record_checkpoint",
    "checkpoint_of",
    "CHECKED_ROWS",
]

#: Rows of W read per judgement (whole 128-row blocks): the cost does not grow with the layer.
CHECKED_ROWS = 256
#: Largest plausible magnitude of a dequantized LLM weight (as ``checks.weights``).
_MAX_WEIGHT = 64.0
#: Smallest plausible nonzero block maximum: below it the scale underflowed or was zeroed.
_MIN_WEIGHT = 1e-12
#: A block quantized with its own amax reaches at least this fraction of the format max.
_AT_MAX = 0.9
#: Dequantized weight vs checkpoint: relative norm error and cosine tolerated.
_NORM_TOLERANCE = 0.01
_COSINE_TOLERANCE = 0.999
#: Checkpoint scales larger than this are not recorded (a scale is small; this is not one).
_MAX_RECORDED_SCALE = 1 << 22


def _is_scale_name(name: str) -> bool:
    return "scale" in name.rsplit(".", 1)[-1]


# -- checkpoint values passed through the loader -------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """What the loader was given for one parameter: its dtype and (the first rows of) its values."""

    dtype: torch.dtype
    values: torch.Tensor  # scales: all of them; weights: the first CHECKED_ROWS rows


_CHECKPOINTS: dict[int, tuple[Any, Checkpoint]] = {}
_CHECKPOINTS_LOCK = threading.Lock()


def _forget(key: int) -> None:
    with _CHECKPOINTS_LOCK:
        _CHECKPOINTS.pop(key, None)


def record_checkpoint(param: torch.Tensor, loaded: torch.Tensor, is_scale: bool) -> None:
    """Remember what ``weight_loader(param, loaded)`` was given, for as long as ``param`` lives."""
    if not isinstance(param, torch.Tensor) or not isinstance(loaded, torch.Tensor):
        return
    if loaded.numel() != param.numel():
        return  # a shard of a fused parameter (qkv, w13): not the whole tensor
    shaped = loaded.detach().reshape(param.shape)
    if is_scale:
        if shaped.numel() > _MAX_RECORDED_SCALE:
            return
        values = shaped.clone()
    else:
        if shaped.dim() < 2:
            return
        values = shaped.reshape(-1, shaped.shape[-1])[:CHECKED_ROWS].clone()
    key = id(param)
    try:
        ref = weakref.ref(param, lambda _, key=key: _forget(key))
    except TypeError:
        return
    with _CHECKPOINTS_LOCK:
        _CHECKPOINTS[key] = (ref, Checkpoint(loaded.dtype, values))


def checkpoint_of(param: Any) -> Checkpoint | None:
    """The checkpoint values the loader passed for ``param`` (the same object), if recorded."""
    with _CHECKPOINTS_LOCK:
        entry = _CHECKPOINTS.get(id(param))
    if entry is None or entry[0]() is not param:
        return None
    return entry[1]


# -- reading a weight and its scale block by block ------------------------------------------------


@dataclass
class _Blocks:
    """The checked rows of a weight, dequantizable: element values, per-block multipliers."""

    values: torch.Tensor  # (R, K) float32 element values (q, not yet scaled)
    multipliers: torch.Tensor  # (RB, KB) float32 per-block scale
    block: tuple[int, int]  # rows x cols per scale entry
    scheme: str  # "per_tensor", "per_token", "block" or "mx"
    format_max: float
    format_name: str
    one_byte_scale: bool
    raw_scale: torch.Tensor  # the scale entries of the checked rows, as stored

    def expanded(self) -> torch.Tensor:
        return expand_blocks_2d(self.multipliers, *self.block, *self.values.shape)

    def dequantized(self) -> torch.Tensor:
        return self.values * self.expanded()

    def block_max(self) -> torch.Tensor:
        """``|q|`` max of each block, ``(RB, KB)``."""
        return block_amax(self.values, *self.block)


def _element_values(weight: torch.Tensor, read_as: torch.dtype | None, packed_fp4: bool) -> tuple[Any, ...] | None:
    if packed_fp4:
        return unpack_fp4(weight), FP4_E2M1
    fmt = element_format(read_as or weight.dtype)
    if fmt is None or fmt.family != "fp8":
        return None
    return fp8_values(weight, read_as), fmt


def read_blocks(
    weight: torch.Tensor,
    scale: torch.Tensor,
    *,
    read_as: torch.dtype | None = None,
    shuffle_layout: tuple[int, int] | None = None,
    scale_layout: str = "row_major",
    scheme: str | None = None,
    block: tuple[int, int] = (128, 128),
) -> _Blocks | None:
    """The first :data:`CHECKED_ROWS` rows of ``weight`` with the scale entries that multiply them.

    The scheme follows the scale's shape unless given: one value (per-tensor),
    ``(N, 1)`` (per-channel), ``(ceil(N/128), ceil(K/128))`` (blocks), or e8m0
    ``(N, ceil(K/32))`` for packed FP4 (row-major, or MX-swizzled when
    ``scale_layout`` says so).  MoE weights ``(E, N, K)`` are read as
    ``(E*N, K)``.  ``None`` when the pair is not one of these.
    """
    if weight.dim() < 2 or scale is None or scale.numel() == 0:
        return None
    w2d = weight.detach().reshape(-1, weight.shape[-1])
    one_byte_scale = scale.element_size() == 1
    raw = scale.detach().view(torch.uint8) if one_byte_scale and is_e8m0_dtype(scale.dtype) else scale.detach()
    packed_fp4 = (
        weight.element_size() == 1
        and one_byte_scale
        and (weight.dtype == torch.uint8 or str(weight.dtype).endswith("float4_e2m1fn_x2"))
    )
    rows = int(w2d.shape[0])
    k = int(w2d.shape[1]) * (2 if packed_fp4 else 1)
    scheme = scheme or _scheme_of(raw, rows, k, packed_fp4)
    if scheme is None:
        return None
    if scheme == "mx":
        block = (1, 32)
    elif scheme in ("per_tensor", "per_token"):
        block = (rows, k) if scheme == "per_tensor" else (1, k)
    # whole blocks of rows (a per-tensor "block" is the whole weight: just the first rows)
    checked = min(rows, CHECKED_ROWS if scheme == "per_tensor" else max(CHECKED_ROWS // block[0], 1) * block[0])
    if shuffle_layout is not None:
        if rows % shuffle_layout[0] or w2d.shape[1] % (shuffle_layout[1] * 2):
            return None  # not a shape shuffle_weight accepts
        w2d = unshuffle_weight(w2d[: -(-checked // shuffle_layout[0]) * shuffle_layout[0]], shuffle_layout)
    elements = _element_values(w2d[:checked], read_as, packed_fp4)
    if elements is None:
        return None
    values, fmt = elements
    if scheme == "per_tensor":
        entries = raw.reshape(1, 1)
    elif scheme == "per_token":
        flat = raw.reshape(-1)
        if flat.numel() != rows:
            return None
        entries = flat[:checked].reshape(-1, 1)
    elif scheme == "block":
        entries = raw.reshape(-1, raw.shape[-1]) if raw.dim() >= 2 else None
        if entries is None or entries.shape[-1] != -(-k // block[1]):
            return None
        entries = entries[: -(-checked // block[0])]
    else:  # mx
        groups = -(-k // 32)
        layout = "row_major" if scale_layout in ("row_major", "logical") else scale_layout
        entries = read_scales(raw, layout, rows, groups)
        if entries is None:
            return None
        entries = entries[:checked]
    multipliers = scale_values(entries).to(torch.float32)
    if scheme == "block" and multipliers.shape[0] * block[0] < checked:
        return None
    return _Blocks(
        values, multipliers, (min(block[0], checked), block[1]), scheme, fmt.max, fmt.name, one_byte_scale, entries
    )


def _scheme_of(scale: torch.Tensor, rows: int, k: int, packed_fp4: bool) -> str | None:
    if packed_fp4:
        return "mx"
    if scale.numel() == 1:
        return "per_tensor"
    if scale.numel() == rows and (scale.dim() == 1 or scale.shape[-1] == 1):
        return "per_token"
    if (
        scale.dim() >= 2
        and scale.shape[-1] == -(-k // 128)
        and scale.numel() // scale.shape[-1] in (-(-rows // 128), rows // 128)
    ):
        return "block"
    return None


# -- the judgement --------------------------------------------------------------------------------


def judge_weight_scale(
    name: str,
    weight: torch.Tensor,
    scale: torch.Tensor,
    *,
    read_as: torch.dtype | None = None,
    shuffle_layout: tuple[int, int] | None = None,
    scale_layout: str = "row_major",
    scheme: str | None = None,
    block: tuple[int, int] = (128, 128),
    checkpoint: tuple[Checkpoint, Checkpoint] | None = None,
    checkpoint_read_as: torch.dtype | None = None,
) -> list[Finding]:
    """Findings about ``scale`` as the scale of ``weight`` (and against the checkpoint, when given).

    ``name`` names the weight in messages (e.g. ``model.layers.3.mlp.down_proj.weight``).
    ``checkpoint`` is ``(weight, scale)`` as the loader was given them.
    """
    with torch.no_grad():
        blocks = read_blocks(
            weight,
            scale,
            read_as=read_as,
            shuffle_layout=shuffle_layout,
            scale_layout=scale_layout,
            scheme=scheme,
            block=block,
        )
        if blocks is None:
            return []
        details: dict[str, Any] = {
            "parameter": name,
            "shape": list(weight.shape),
            "dtype": dtype_name(weight.dtype),
            "scale_shape": list(scale.shape),
            "scale_dtype": dtype_name(scale.dtype),
            "format": blocks.format_name,
            "block": list(blocks.block),
            "checked_rows": int(blocks.values.shape[0]),
        }
        finding = _judge_alone(name, blocks, details)
        if finding is not None:
            return [finding]
        if checkpoint is not None:
            finding = _judge_against_checkpoint(
                name, blocks, weight, scale, checkpoint, details, read_as=checkpoint_read_as, scheme=scheme, block=block
            )
            if finding is not None:
                return [finding]
    return []


def _judge_alone(name: str, blocks: _Blocks, details: dict[str, Any]) -> Finding | None:
    """What the bytes and the scale alone say."""
    q_max = blocks.block_max()
    loaded = q_max > 0
    if not bool(loaded.any()):
        return None  # an all-zero weight: the weight scan reports it
    multipliers = blocks.multipliers
    top = blocks.format_max
    at_max = float((q_max[loaded] >= _AT_MAX * top).float().mean())
    deq_max = (q_max * multipliers)[loaded]
    largest, smallest = float(deq_max.max()), float(deq_max.min())
    details = {
        **details,
        "dequantized_block_max": largest,
        "dequantized_block_min": smallest,
        "blocks_at_format_max": at_max,
    }
    if blocks.one_byte_scale and bool((blocks.raw_scale.view(torch.uint8) == 0).all()):
        return Finding(
            "weight_scale",
            f"{name}: every e8m0 scale byte is 0 (2^-127): the scales were copied as "
            "values, not bytes (numeric conversion to zero); dequantized weights vanish "
            f"(block maxima <= {largest:.3g})",
            details={**details, "diagnosis": "e8m0_zeros"},
            variant="e8m0_zeros",
        )
    if bool((multipliers == 1.0).all()):
        return Finding(
            "weight_scale",
            f"{name}: w_scale is 1.0 for every block, so the dequantized weight is the "
            f"raw {blocks.format_name} bytes (block maxima up to {largest:.3g}, {at_max:.0%} of blocks at "
            f"the format max {top:g}): the weight scale was dropped",
            details={**details, "diagnosis": "ones"},
            variant="ones",
        )
    if largest > _MAX_WEIGHT:
        return Finding(
            "weight_scale",
            f"{name}: dequantized block maxima reach {largest:.3g} (|q| max x w_scale), "
            f"larger than any plausible weight ({_MAX_WEIGHT:g}): w_scale does not belong to these bytes "
            "(inverted, dropped or another tensor's)",
            details={**details, "diagnosis": "too_large"},
            variant="too_large",
        )
    if smallest < _MIN_WEIGHT:
        return Finding(
            "weight_scale",
            f"{name}: dequantized block maxima fall to {smallest:.3g} (|q| max x "
            f"w_scale) for nonzero bytes: the scale underflowed or was zeroed",
            details={**details, "diagnosis": "too_small"},
            variant="too_small",
        )
    if multipliers.numel() >= 4 and bool((multipliers == multipliers.reshape(-1)[0]).all()) and at_max >= _AT_MAX:
        value = float(multipliers.reshape(-1)[0])
        return Finding(
            "weight_scale",
            f"{name}: every block has the same w_scale {value:.6g} although "
            f"{at_max:.0%} of blocks reach the format max {top:g} (each was quantized with its own "
            "amax): a broadcast placeholder, not the checkpoint's per-block scales",
            details={**details, "diagnosis": "constant", "scale": value},
            variant="constant",
        )
    return None


def _judge_against_checkpoint(
    name: str,
    blocks: _Blocks,
    weight: torch.Tensor,
    scale: torch.Tensor,
    checkpoint: tuple[Checkpoint, Checkpoint],
    details: dict[str, Any],
    *,
    read_as: torch.dtype | None,
    scheme: str | None,
    block: tuple[int, int],
) -> Finding | None:
    """The dequantized weight after loading against the one the loader was given."""
    weight_ck, scale_ck = checkpoint
    ck_weight = weight_ck.values
    ck_scale = scale_ck.values
    if ck_weight.dtype != weight_ck.dtype:
        return None
    reference = read_blocks(
        ck_weight,
        _scale_rows(ck_scale, blocks, int(ck_weight.shape[0])),
        read_as=read_as,
        scheme=blocks.scheme,
        block=block,
    )
    rows = min(int(blocks.values.shape[0]), int(reference.values.shape[0])) if reference is not None else 0
    if reference is None or rows == 0 or reference.values.shape[1] != blocks.values.shape[1]:
        return None
    now = blocks.dequantized()[:rows].to(torch.float64)
    then = reference.dequantized()[:rows].to(torch.float64)
    norm_now, norm_then = float(now.norm()), float(then.norm())
    if norm_then == 0.0:
        return None
    ratio = norm_now / norm_then
    cosine = float((now * then).sum()) / max(norm_now * norm_then, 1e-300)
    if abs(ratio - 1.0) <= _NORM_TOLERANCE and cosine >= _COSINE_TOLERANCE:
        return None
    same_values = bool(torch.equal(blocks.values[:rows], reference.values[:rows]))
    same_scale = blocks.multipliers.shape == reference.multipliers.shape and bool(
        torch.equal(blocks.multipliers, reference.multipliers)
    )
    facts = {
        **details,
        "norm_ratio_to_checkpoint": ratio,
        "cosine_to_checkpoint": cosine,
        "checkpoint_dtype": dtype_name(weight_ck.dtype),
        "checkpoint_scale_dtype": dtype_name(scale_ck.dtype),
    }
    measured = f"dequantized weight is {ratio:.4g}x the checkpoint's (cosine {cosine:.4f})"
    if same_scale and not same_values:
        return Finding(
            "weight_scale",
            f"{name}: the weight bytes were rewritten after loading but w_scale is still "
            f"the checkpoint's: a stale scale from before the requantization; {measured}",
            details={**facts, "diagnosis": "stale"},
            variant="stale",
        )
    if same_values and not same_scale:
        return Finding(
            "weight_scale",
            f"{name}: w_scale is not the scale the loader was given with these bytes "
            f"(swapped with another layer's or overwritten); {measured}",
            details={**facts, "diagnosis": "not_the_checkpoint_scale"},
            variant="swapped",
        )
    return Finding(
        "weight_scale",
        f"{name}: {measured}: the weight and its scale no longer describe the checkpoint's weight",
        details={**facts, "diagnosis": "differs_from_checkpoint"},
        variant="checkpoint",
    )


def _scale_rows(scale: torch.Tensor, blocks: _Blocks, rows: int) -> torch.Tensor:
    """The checkpoint scale entries that multiply the first ``rows`` rows (a weight record holds only those)."""
    if blocks.scheme == "per_tensor":
        return scale
    if blocks.scheme == "per_token":
        return scale.reshape(-1, 1)[:rows]
    flat = scale.reshape(-1, scale.shape[-1])
    return flat[: -(-rows // blocks.block[0])] if blocks.scheme == "block" else flat[:rows]


# -- the check ------------------------------------------------------------------------------------


def _checkpoint_pair(weight: Any, scale: Any) -> tuple[Checkpoint, Checkpoint] | None:
    weight_ck, scale_ck = checkpoint_of(weight), checkpoint_of(scale)
    return (weight_ck, scale_ck) if weight_ck is not None and scale_ck is not None else None


def _module_pairs(module: torch.nn.Module) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """``(name, weight, scale)`` for ``<name>``/``<name>_scale`` pairs of ``module`` (dense and MoE)."""
    named = dict(module.named_parameters(recurse=False))
    named.update(dict(module.named_buffers(recurse=False)))
    pairs = []
    for name, tensor in named.items():
        scale = named.get(name + "_scale") if name.endswith("weight") else None
        if isinstance(tensor, torch.Tensor) and isinstance(scale, torch.Tensor):
            pairs.append((name, tensor, scale))
    return pairs


class _Judged:
    """Weights already judged at a GEMM, by identity and version (the first sampled GEMM of each)."""

    def __init__(self) -> None:
        self._seen: dict[int, tuple[Any, tuple[int, int, int]]] = {}
        self._lock = threading.Lock()

    def first(self, weight: torch.Tensor, scale: torch.Tensor) -> bool:
        key = id(weight)
        state = (weight._version, id(scale), scale._version)
        with self._lock:
            entry = self._seen.get(key)
            if entry is not None and entry[0]() is weight and entry[1] == state:
                return False
            try:
                ref = weakref.ref(weight, lambda _, key=key: self._drop(key))
            except TypeError:
                return False
            self._seen[key] = (ref, state)
        return True

    def _drop(self, key: int) -> None:
        with self._lock:
            self._seen.pop(key, None)


_JUDGED = _Judged()


@register_check
class WeightScales(DataCheck):
    """One check, three places: ``weight_loader`` (record the checkpoint), after loading, at a GEMM.

    * ``weight_loader(param, loaded_weight)`` (a bound method: ``self`` is the
      layer): remember what the checkpoint held for ``param``;
    * ``process_weights_after_loading`` (the layer's, or a quant method's on
      ``layer``): judge every ``<name>``/``<name>_scale`` pair of the layer;
    * a GEMM: judge ``w``/``w_scale`` the way the kernel reads them, on the
      first sampled call per weight (and again after the weight changes).
    """

    name = "weight_scales"
    reports = ("weight_scale",)
    summary = "judge weight scales against the weight bytes and the checkpoint values the loader passed"

    def snapshot(self, call: CallRecord) -> None:
        param, loaded = call.get("param"), call.get("loaded_weight")
        if isinstance(param, torch.Tensor) and isinstance(loaded, torch.Tensor):
            record_checkpoint(param, loaded, _is_scale_name(_attribute_name(call.get("self"), param)))

    def measure(self, call: CallRecord) -> Measurement | None:
        view = call.view
        if isinstance(view, GemmView):
            if view.w is None or view.w_scale is None or view.batch is not None or view.scheme == "batched_prequant":
                return None
            if not _JUDGED.first(view.w, view.w_scale):
                return None
            return Measurement({}, {"gemm": True})
        if "loaded_weight" in call.arguments:
            return None
        module = call.get("layer")
        if not isinstance(module, torch.nn.Module):
            module = call.get("self")
            method = getattr(module, "quant_method", None)
            if callable(getattr(method, "process_weights_after_loading", None)):
                return None  # judged after its quant method's step, once the weights are final
        return Measurement({}, {"module": module}) if isinstance(module, torch.nn.Module) else None

    def judge(self, call: CallRecord, measurement: Measurement, values: Mapping[str, Any]) -> Iterable[Finding]:
        if measurement.context.get("gemm"):
            view = call.view
            layout = view.w_scale_layout
            if layout == "kernel_specific":
                return []
            scheme = {"per_token": None, "per_tensor": None, "block": "block", "mx": "mx"}.get(view.scheme)
            name = f"{call.layer}.w" if call.layer else f"w of {view.kernel.rsplit('.', 1)[-1]}"
            return judge_weight_scale(
                name,
                view.w,
                view.w_scale,
                read_as=view.fp8_read_as,
                shuffle_layout=view.shuffle_layout,
                scale_layout=layout,
                scheme=scheme,
                block=(view.block_n, view.block_k),
                checkpoint=_checkpoint_pair(view.w, view.w_scale),
            )
        module = measurement.context["module"]
        own_prefix = getattr(module, "prefix", None)
        prefix = call.layer or (own_prefix if isinstance(own_prefix, str) and own_prefix else type(module).__name__)
        findings: list[Finding] = []
        for name, weight, scale in _module_pairs(module):
            shuffled = (16, 16) if getattr(weight, "is_shuffled", False) else None
            layout = "mx_swizzle" if _swizzled_mx(weight, scale) else "row_major"
            findings.extend(
                judge_weight_scale(
                    f"{prefix}.{name}",
                    weight,
                    scale,
                    shuffle_layout=shuffled,
                    scale_layout=layout,
                    checkpoint=_checkpoint_pair(weight, scale),
                )
            )
        return findings


def _swizzled_mx(weight: torch.Tensor, scale: torch.Tensor) -> bool:
    """e8m0 scales of a packed FP4 weight in the MX swizzle (``e8m0_shuffle``).

    ATOM shuffles an MXFP4 weight and swizzles its scales together, so a
    shuffled weight means swizzled scales (same shape when N and G are already
    padded); a buffer padded to ``(pad256(N), pad8(G))`` is swizzled too.
    """
    packed = weight.dtype == torch.uint8 or str(weight.dtype).endswith("float4_e2m1fn_x2")
    if scale.element_size() != 1 or not packed or weight.dim() != 2 or scale.dim() != 2:
        return False
    if getattr(weight, "is_shuffled", False):
        return True
    rows, groups = int(weight.shape[0]), -(-int(weight.shape[1]) * 2 // 32)
    return tuple(scale.shape) != (rows, groups) and scale.numel() >= mx_swizzled_size(rows, groups)


def _attribute_name(module: Any, param: Any) -> str:
    """The name ``module`` holds ``param`` under ('' when it is not one of its own)."""
    if isinstance(module, torch.nn.Module):
        for name, value in list(module.named_parameters(recurse=False)) + list(module.named_buffers(recurse=False)):
            if value is param:
                return name
    return ""
