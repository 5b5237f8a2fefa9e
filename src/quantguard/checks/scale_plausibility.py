"""Activation scales where no producer was observed (``scale_plausibility``), a weaker verdict.

When a guarded producer quantized a GEMM's activation, provenance hands the
GEMM its unquantized rows and the chain reference judges the whole
quant→GEMM chain, x_scale included.  Without an observed producer (an
unguarded or unknown kernel, a compiled region) only the precision-matched
reference runs, and it multiplies by whatever x_scale the kernel was handed.
This check then judges the handed scale against the bytes it scales:

* a dynamic scale is ``group amax / format max``, so each row-group's ``|q|``
  max sits near the format max (448 e4m3fn, 240 e4m3fnuz, 6 e2m1; at least
  half of it for power-of-two e8m0 scales).  An x_scale that varies per
  row/group like a dynamic scale while many groups' bytes stay far below the
  format max does not belong to these bytes;
* an x_scale of 1.0 everywhere is a dropped scale;
* an x_scale that a guarded producer wrote alongside *another* quantized
  tensor (provenance knows the scale, not this activation) is another
  activation's scale.

Findings are warnings with ``verdict: "plausibility"`` and ``weaker: true``
in their details: the bytes alone cannot prove a plausible-looking scale
right (another activation's dynamic scale of the same shape passes).

:class:`StaticProducerRecord` is the producer side: static-scale producers
(``fused_rms_fp8_per_tensor_static_quant``,
``fused_silu_mul_fp8_per_tensor_static_quant``, ``downcast_to_static_fp8``)
write no scales, so ``provenance_record`` records nothing for them; this
records their quantized output with the sampled unquantized rows, exactly as
``provenance_record`` does for dynamic producers, so the GEMM they feed gets
the chain reference.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import torch

from quantguard.checks._common import dtype_name, sample_rows
from quantguard.checks.base import DataCheck, Finding, Measurement, register_check
from quantguard.contracts.views import GemmView, QuantView
from quantguard.numerics.dequant import fp8_values, unpack_fp4
from quantguard.numerics.formats import FP4_E2M1, element_format
from quantguard.numerics.scales import group_amax
from quantguard.records import Produced
from quantguard.shadow.references import dequantize_x_rows

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.calls import CallRecord

__all__ = ["ScalePlausibility", "StaticProducerRecord", "FAR_BELOW", "TOLERATED_SHARE"]

#: A group quantized with its own dynamic scale reaches at least half the format max (e8m0 rounding);
#: below this fraction it was not.
FAR_BELOW = 0.45
#: Share of nonzero groups allowed below :data:`FAR_BELOW` before the scale is judged foreign.
TOLERATED_SHARE = 0.25
#: Relative difference below which two recovered multipliers are the same scale.
_SAME = 1e-5
_WEAKER = {
    "verdict": "plausibility",
    "weaker": True,
    "producer": None,
    "reason": "no observed producer for this activation: the chain reference cannot run",
}


def _group_size(view: GemmView, k: int) -> int:
    if view.scheme == "block":
        return view.block_k
    if view.scheme == "mx":
        return view.mx_group
    return k


def _format(view: GemmView) -> Any:
    """The element format the kernel reads x in (int8 as int8; fp8 bytes in the arch's fp8 variant)."""
    if view.scheme == "mx":
        return FP4_E2M1
    own = element_format(view.x.dtype)
    if own is None or own.family != "fp8":
        return own
    return element_format(view.fp8_read_as or view.x.dtype)


@register_check
class ScalePlausibility(DataCheck):
    name = "scale_plausibility"
    reports = ("scale_plausibility",)
    summary = "weaker verdict on a GEMM's x_scale when no producer of its activation was observed"

    def snapshot(self, call: CallRecord) -> None:
        view = call.view
        if (
            not isinstance(view, GemmView)
            or view.x_scale is None
            or view.batch is not None
            or view.scheme == "batched_prequant"
        ):
            return
        store = call.runtime.provenance
        # records a consumer already read (q/k/v GEMMs sharing one activation) count as observed too
        activation = store.lookup(view.x, spent=True)
        if activation is not None and activation.role == "quantized":
            return  # an observed producer: the chain reference judges this scale
        scale = store.lookup(view.x_scale, spent=True)
        rows = sample_rows(call, view.m)
        call.scratch["scale_plausibility"] = {
            "x": view.x.reshape(-1, view.x.shape[-1])[rows].clone(),
            "rows": rows,
            "x_scale": view.x_scale.detach().clone(memory_format=torch.preserve_format),
            "scale_producer": scale.producer if scale is not None and scale.role == "scales" else None,
        }

    def measure(self, call: CallRecord) -> Measurement | None:
        snap = call.scratch.get("scale_plausibility")
        if snap is None:
            return None
        view = call.view
        values = unpack_fp4(snap["x"]) if view.scheme == "mx" else fp8_values(snap["x"], view.fp8_read_as)
        dequantized = dequantize_x_rows(view, snap["x"], snap["x_scale"], snap["rows"])
        if dequantized is None:
            return None
        group = _group_size(view, int(values.shape[-1]))
        q_max = group_amax(values, group)
        deq_max = group_amax(dequantized, group)
        multipliers = torch.where(q_max > 0, deq_max / q_max.clamp(min=1e-30), torch.zeros_like(q_max))
        return Measurement(
            {"q_max": q_max, "multipliers": multipliers}, {"scale_producer": snap["scale_producer"], "group": group}
        )

    def judge(self, call: CallRecord, measurement: Measurement, values: Mapping[str, Any]) -> Iterable[Finding]:
        view = call.view
        q_max = torch.as_tensor(values["q_max"])
        multipliers = torch.as_tensor(values["multipliers"])
        loaded = q_max > 0
        if not bool(loaded.any()):
            return []
        fmt = _format(view)
        if fmt is None:
            return []
        kernel = view.kernel.rsplit(".", 1)[-1]
        details = {
            **_WEAKER,
            "kernel": view.kernel,
            "scheme": view.scheme,
            "group": measurement.context["group"],
            "x_scale_shape": list(view.x_scale.shape),
            "x_scale_dtype": dtype_name(view.x_scale.dtype),
            "format": fmt.name,
        }
        producer = measurement.context["scale_producer"]
        if producer is not None:
            return [
                Finding(
                    "scale_plausibility",
                    f"{kernel}: x_scale was written by {producer} for another quantized "
                    "tensor, and no observed producer wrote this activation: the GEMM got another "
                    "activation's scale (plausibility verdict, no chain reference)",
                    severity="warning",
                    details={**details, "diagnosis": "another_activation", "scale_written_by": producer},
                    variant="another_activation",
                )
            ]
        scales = multipliers[loaded]  # dequantized / raw group maxima: the multiplier, to an ulp
        if bool(torch.isclose(scales, torch.ones_like(scales), rtol=_SAME, atol=0.0).all()):
            return [
                Finding(
                    "scale_plausibility",
                    f"{kernel}: x_scale is 1.0 for every sampled row/group, so the "
                    f"activation is read as its raw {fmt.name} bytes (|q| up to {float(q_max.max()):g}): the "
                    "activation scale was dropped (plausibility verdict, no observed producer)",
                    severity="warning",
                    details={**details, "diagnosis": "ones"},
                    variant="ones",
                )
            ]
        if float(scales.max() - scales.min()) > _SAME * float(scales.abs().max()):  # varies: a dynamic scale
            ratios = q_max[loaded] / fmt.max
            share = float((ratios < FAR_BELOW).float().mean())
            if share > TOLERATED_SHARE:
                median = float(ratios.median())
                return [
                    Finding(
                        "scale_plausibility",
                        f"{kernel}: x_scale varies per row/group like a dynamic scale, "
                        f"but {share:.0%} of row-groups' |q| maxima are far below the format max {fmt.max:g} "
                        f"(median {median:.0%} of it; a dynamic scale puts each group's max near it): these "
                        "bytes were not quantized with this x_scale (another activation's scale?) "
                        "(plausibility verdict, no observed producer)",
                        severity="warning",
                        details={
                            **details,
                            "diagnosis": "maxima_far_from_format_max",
                            "share_far_below": share,
                            "median_ratio_to_format_max": median,
                        },
                        variant="maxima",
                    )
                ]
        return []


@register_check
class StaticProducerRecord(DataCheck):
    name = "static_producer_record"
    summary = "record a static-scale producer's unquantized rows so the GEMM it feeds gets the chain reference"

    def snapshot(self, call: CallRecord) -> None:
        view = call.view  # built after the kernel ran: static producers return their output
        if not isinstance(view, QuantView) or view.q is None or not view.static:
            return
        selected = sample_rows(call, view.rows)
        call.runtime.provenance.record(
            view.q,
            Produced(
                call.target,
                "quantized",
                view.requested_layout,
                view.request,
                attributes={
                    "x_rows": view.x[selected].clone(),
                    "selected": selected,
                    "rows": view.rows,
                    "scales": None,
                },
            ),
        )

    def measure(self, call: CallRecord) -> Measurement | None:
        return None  # records only: nothing to judge
