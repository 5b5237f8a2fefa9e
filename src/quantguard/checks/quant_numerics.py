"""Does a quantizer's output dequantize back to its input?  (``numerics`` for producers)

``dequant(q, scales read in the requested layout)`` is compared with the
input on the sampled rows: cosine for direction, norm ratio and SQNR for
magnitude (a dropped scale keeps the cosine at 1.0).  Every inspected call
emits a ``quantguard.shadow`` event; a failure is a ``numerics`` violation
naming which metric failed and its value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import torch

from quantguard.checks._common import row_mask, sample_rows
from quantguard.checks.base import DataCheck, Finding, Measurement, ShadowResult, register_check
from quantguard.numerics.dequant import dequantize_rows, scale_values
from quantguard.numerics.formats import round_to_format
from quantguard.numerics.layouts import read_scales
from quantguard.numerics.metrics import comparison_tensors, summarize
from quantguard.numerics.scales import fp32_scales, group_amax
from quantguard.shadow.thresholds import Tolerance

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.calls import CallRecord

__all__ = ["QuantNumerics", "QUANT_COSINE"]

#: Quantize→dequantize fidelity a correct producer reaches on real activations.
QUANT_COSINE = {"fp8": 0.998, "int8": 0.999, "fp4": 0.98, "int4": 0.97}
#: e2m1 has 8 magnitudes: a correct MXFP4 quantization moved a row's norm by 8.1% in the simulator's
#: workload (values crowding one rounding interval). 0.25 still flags the errors that matter here:
#: an e8m0 scale off by one power of two (x2 or x0.5) and dropped scales (orders of magnitude).
_NORM_BAND = {"fp8": 0.03, "int8": 0.03, "fp4": 0.25, "int4": 0.1}
_SQNR_DB = {"fp8": 22.0, "int8": 25.0, "fp4": 12.0, "int4": 10.0}


def quant_tolerance(call: CallRecord, family: str) -> Tolerance:
    from quantguard.shadow.thresholds import _override

    cosine, source = QUANT_COSINE.get(family, 0.97), f"{family} quantizer default"
    override = _override(
        {k: v for k, v in call.config.thresholds.items() if "quant" in k or "@" in k}, call.target, call.layer, family
    )
    if override is not None:
        cosine, source = override
    return Tolerance(cosine, _NORM_BAND.get(family, 0.1), _SQNR_DB.get(family, 10.0), source)


#: How far a written scale may sit from ``amax / format max`` of its group.  fp32: the kernel's own
#: float32 amax (fused producers recompute the input approximately); e8m0: any of AITER's four
#: rounding modes lands within (0.75, 3.75) of it for fp4 and fp8 (the exact mode is ``kwarg_honored``'s).
_FP32_SCALE_BAND = (0.99, 1.01)
_E8M0_SCALE_BAND = (0.5, 4.0)


def _whole_amax(view: Any) -> torch.Tensor | None:
    """``(rows, groups)`` amax of the whole input (a reduction), for the every-group scale check."""
    if view.static or view.group == 0 or view.x is None or view.x.dim() != 2:
        return None
    x = view.x.to(torch.float32)
    if view.smooth is not None:
        x = x * view.smooth.to(torch.float32)
    return group_amax(x, view.group)


def _scale_rows(view: Any, buffer: torch.Tensor, amax: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """Every group's scale against ``amax / format max``: the count outside the band and the first one."""
    if amax is None or view.zero_amax_scale != "clamp":
        return {}
    if view.scale_upper_bound is not None:
        amax = torch.minimum(amax, view.scale_upper_bound.to(torch.float32).reshape(-1)[:1])
    rows, groups = amax.shape
    try:
        written = read_scales(buffer, view.requested_layout, rows, groups)
    except ValueError:
        return {}
    if written is None or written.shape != amax.shape:
        return {}
    ratio = scale_values(written) / fp32_scales(amax, view.element.max)
    low, high = _E8M0_SCALE_BAND if view.encoding == "e8m0" else _FP32_SCALE_BAND
    considered = amax > 0
    mask = row_mask(slice(None), rows, view.valid_rows, amax.device)
    if mask is not None:
        considered = considered & mask.view(-1, 1)
    wrong = (~((ratio >= low) & (ratio <= high)) & considered).reshape(-1)
    first = wrong.to(torch.uint8).argmax() if wrong.numel() else wrong.sum()
    position = first.to(torch.float64)
    return {
        "scale_rows": torch.stack(
            (
                wrong.sum().to(torch.float64),
                position,
                torch.full_like(position, groups),
                ratio.reshape(-1)[first].to(torch.float64),
            )
        )
    }


def _judge_scale_rows(view: Any, measured: Any) -> list[Finding]:
    wrong, first, groups, ratio = measured
    if not wrong:
        return []
    row, group = divmod(int(first), max(1, int(groups)))
    return [
        Finding(
            "scale_values",
            f"{int(wrong)} of {view.rows * view.groups} written scales are not amax / format max of their "
            f"group (first at row {row}, K group {group}: {ratio:.4g}x)",
            details={
                "scale": "producer",
                "wrong_groups": int(wrong),
                "first_row": row,
                "first_group": group,
                "ratio": ratio,
                "layout": view.requested_layout,
            },
            variant="producer_groups",
        )
    ]


def _static_roundtrip(reference: torch.Tensor, multipliers: torch.Tensor, view: Any) -> torch.Tensor:
    """The precision-matched reference of a static quantizer: ``round(x / scale) * scale`` in its format.

    A static scale is the caller's (calibrated offline), not derived from the
    data, so how well ``q * scale`` reproduces ``x`` depends on that
    calibration: rows far below the tensor's maximum land in fp8's subnormal
    steps, and a correct kernel measured a norm ratio of 1.03 on such rows.
    The producer's own job is exact — divide by the given scale, round,
    saturate — so that is the reference; a kernel that ignores or inverts the
    scale still lands orders of magnitude away.
    """
    dtype = view.q_read_as if view.q_read_as is not None else view.q.dtype
    if not ((dtype.is_floating_point and dtype.itemsize == 1) or dtype == torch.int8):
        return reference  # fp4 and other packed formats: compared with the input as before
    return round_to_format(reference / multipliers, dtype, view.element) * multipliers


@register_check
class QuantNumerics(DataCheck):
    name = "quant_numerics"
    reports = ("numerics", "scale_values")
    summary = "dequantize the producer's output and compare it with its input; every group's scale vs its amax"

    def snapshot(self, call: CallRecord) -> None:
        view = call.view
        if view is None or view.element is None or view.q is None or view.scales is None:
            return
        if not call.config.shadow:
            return
        selected = sample_rows(call, view.rows) if view.group != 0 else sample_rows(call, view.rows)
        call.scratch["quant_numerics"] = {
            "x": view.x[selected].clone(),
            "q": view.q[selected].clone(),
            "scales": view.scales.detach().clone(memory_format=torch.preserve_format),
            "selected": selected,
            "amax": _whole_amax(view),
        }

    def measure(self, call: CallRecord) -> Measurement | None:
        snap = call.scratch.get("quant_numerics")
        view = call.view
        if snap is None:
            return None
        selected = snap["selected"]
        buffer = snap["scales"]
        if view.encoding == "e8m0":
            buffer = buffer.view(torch.uint8)
        if view.group == 0 or buffer.numel() == 1:
            multipliers = scale_values(buffer).reshape(-1)[:1].view(1, 1)
            group = None
        else:
            read = read_scales(buffer, view.requested_layout, view.rows, view.groups, selected)
            if read is None:
                return None
            multipliers = scale_values(read) if view.encoding == "e8m0" else read.to(torch.float32)
            group = view.group if view.group is not None else None
        dequantized = dequantize_rows(snap["q"], multipliers, group, view.q_read_as, view.packed_fp4)
        reference = snap["x"].to(torch.float32)
        if view.smooth is not None:
            reference = reference * view.smooth.to(torch.float32)
        if dequantized.shape != reference.shape:
            return None
        if view.static and group is None:
            reference = _static_roundtrip(reference, multipliers, view)
        tensors = comparison_tensors(dequantized, reference)
        tensors.update(_scale_rows(view, buffer, snap["amax"]))
        return Measurement(
            tensors, {"shape": list(view.x.shape), "q_dtype": str(view.q.dtype), "scales_dtype": str(view.scales.dtype)}
        )

    def judge(
        self, call: CallRecord, measurement: Measurement, values: Mapping[str, Any]
    ) -> Iterable[Finding | ShadowResult]:
        view = call.view
        metrics = summarize(values)
        family = view.element.family
        tolerance = quant_tolerance(call, family)
        failures = tolerance.failures(metrics.cosine, metrics.norm_ratio, metrics.sqnr_db, metrics.nonfinite)
        fields = {
            "reference": "dequantize",
            **metrics.as_dict(),
            "threshold": tolerance.cosine,
            "passed": not failures,
            "shapes": {"x": measurement.context["shape"]},
            "dtypes": {"q": measurement.context["q_dtype"], "scales": measurement.context["scales_dtype"]},
        }
        outcomes: list[Finding | ShadowResult] = [ShadowResult(fields, not failures, metrics.cosine)]
        if "scale_rows" in values:
            outcomes.extend(_judge_scale_rows(view, values["scale_rows"]))
        if failures:
            outcomes.append(
                Finding(
                    "numerics",
                    f"dequantized output does not match the input: {'; '.join(failures)}",
                    details={
                        "reference": "dequantize",
                        "failed": failures,
                        **metrics.as_dict(),
                        "threshold_source": tolerance.source,
                    },
                )
            )
        return outcomes
