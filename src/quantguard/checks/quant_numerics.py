"""Does a quantizer's output dequantize back to its input?  (``numerics`` for producers)

``dequant(q, scales read in the requested layout)`` is compared with the
input on the sampled rows: cosine for direction, norm ratio and SQNR for
magnitude (a dropped scale keeps the cosine at 1.0).  Every inspected call
emits a ``quantguard.shadow`` event; a failure is a ``numerics`` violation
naming which metric failed and its value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Mapping

import torch

from quantguard.checks._common import sample_rows
from quantguard.checks.base import DataCheck, Finding, Measurement, register_check
from quantguard.engine.inspection import ShadowResult
from quantguard.numerics.dequant import dequantize_rows, scale_values
from quantguard.numerics.layouts import read_scales
from quantguard.numerics.metrics import comparison_tensors, summarize
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


def quant_tolerance(call: "CallRecord", family: str) -> Tolerance:
    from quantguard.shadow.thresholds import _override
    cosine, source = QUANT_COSINE.get(family, 0.97), f"{family} quantizer default"
    override = _override({k: v for k, v in call.config.thresholds.items() if "quant" in k or "@" in k},
                         call.target, call.layer, family)
    if override is not None:
        cosine, source = override
    return Tolerance(cosine, _NORM_BAND.get(family, 0.1), _SQNR_DB.get(family, 10.0), source)


@register_check
class QuantNumerics(DataCheck):
    name = "quant_numerics"
    reports = ("numerics",)
    summary = "dequantize the producer's output and compare it with its input"

    def snapshot(self, call: "CallRecord") -> None:
        view = call.view
        if view is None or view.element is None or view.q is None or view.scales is None:
            return
        if not call.config.shadow:
            return
        selected = sample_rows(call, view.rows) if view.group != 0 else sample_rows(call, view.rows)
        call.scratch["quant_numerics"] = {
            "x": view.x[selected].clone(), "q": view.q[selected].clone(),
            "scales": view.scales.detach().clone(memory_format=torch.preserve_format), "selected": selected,
        }

    def measure(self, call: "CallRecord") -> Measurement | None:
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
        return Measurement(comparison_tensors(dequantized, reference),
                           {"shape": list(view.x.shape), "q_dtype": str(view.q.dtype),
                            "scales_dtype": str(view.scales.dtype)})

    def judge(self, call: "CallRecord", measurement: Measurement,
              values: Mapping[str, Any]) -> Iterable[Finding | ShadowResult]:
        view = call.view
        metrics = summarize(values)
        family = view.element.family
        tolerance = quant_tolerance(call, family)
        failures = tolerance.failures(metrics.cosine, metrics.norm_ratio, metrics.sqnr_db, metrics.nonfinite)
        fields = {"reference": "dequantize", **metrics.as_dict(), "threshold": tolerance.cosine,
                  "passed": not failures, "shapes": {"x": measurement.context["shape"]},
                  "dtypes": {"q": measurement.context["q_dtype"], "scales": measurement.context["scales_dtype"]}}
        outcomes: list[Finding | ShadowResult] = [ShadowResult(fields, not failures, metrics.cosine)]
        if failures:
            outcomes.append(Finding("numerics",
                                    f"dequantized output does not match the input: {'; '.join(failures)}",
                                    details={"reference": "dequantize", "failed": failures, **metrics.as_dict(),
                                             "threshold_source": tolerance.source}))
        return outcomes
