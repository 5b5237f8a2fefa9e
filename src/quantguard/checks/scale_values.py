"""Scale values a GEMM is about to use (``scale_values``), on sampled calls.

"Nonzero" is not "correct", but all-zero, negative, NaN and Inf scales are
never correct (a single zero scale can be: an all-zero activation row): an e8m0 scale tensor ``copy_``-ed into a uint8 parameter holds
zeros (2^-127: the layer outputs ~0); a NaN byte (0xFF) poisons a block.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import torch

from quantguard.checks._common import dtype_name, meaningful_scales
from quantguard.checks.base import DataCheck, Finding, Measurement, register_check
from quantguard.contracts.views import GemmView

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.calls import CallRecord

__all__ = ["ScaleValues"]


@register_check
class ScaleValues(DataCheck):
    name = "scale_values"
    reports = ("scale_values",)
    summary = "zero, negative or non-finite GEMM scales (e8m0 zero bytes, NaN 0xFF)"

    def snapshot(self, call: "CallRecord") -> None:
        view = call.view
        if not isinstance(view, GemmView):
            return
        groups = -(-view.k // view.mx_group) if view.scheme == "mx" else 0
        seen = call.state.memo.setdefault("scale_values.weights", {})
        kept = []
        for name, scale, layout, rows in (("x_scale", view.x_scale, view.x_scale_layout, view.m),
                                          ("w_scale", view.w_scale, view.w_scale_layout, view.n)):
            if scale is None or scale.numel() == 0:
                continue
            if name == "w_scale":  # a weight's scale is checked once per version, not on every sampled call
                identity = (scale.data_ptr(), scale._version, tuple(scale.shape))
                if seen.get(id(scale)) == identity:
                    continue
                seen[id(scale)] = identity
            layout = view.notes.get(name + "_bytes", layout)  # a kernel-specific view of a swizzled buffer
            kept.append((name, meaningful_scales(scale, layout, rows, groups).detach().clone()))
        call.scratch["scale_values"] = kept

    def measure(self, call: "CallRecord") -> Measurement | None:
        tensors: dict[str, torch.Tensor] = {}
        context: dict[str, Any] = {}
        for name, scale in call.scratch.get("scale_values", []):
            encoding = "e8m0" if scale.element_size() == 1 else "fp32"
            values = scale.view(torch.uint8) if encoding == "e8m0" else scale
            # min and max tell all: all zero, negative, NaN (propagates; byte 0xFF is the largest byte)
            low, high = torch.aminmax(values.reshape(-1))
            tensors[name] = torch.stack((low, high)).to(torch.float64)
            context[name] = (encoding, list(scale.shape), dtype_name(scale.dtype), scale.numel())
        return Measurement(tensors, context) if tensors else None

    def judge(self, call: "CallRecord", measurement: Measurement,
              values: Mapping[str, Any]) -> Iterable[Finding]:
        findings = []
        for name, (encoding, shape, dtype, total) in measurement.context.items():
            low, high = values[name]
            details = {"scale": name, "shape": shape, "dtype": dtype, "min": low, "max": high, "total": total}
            if encoding == "e8m0":
                if high == 0:
                    findings.append(Finding("scale_values", f"{name} ({dtype} {shape}) is all zero bytes: every e8m0 "
                                            "scale is 2^-127, so the product is ~0 (scales copied numerically into "
                                            "uint8 instead of viewed as bytes?)", details=details, variant=name))
                elif high == 0xFF:
                    findings.append(Finding("scale_values", f"{name} ({dtype} {shape}) holds e8m0 NaN bytes (0xFF)",
                                            details=details, variant=name + "/nan"))
                continue
            if math.isnan(low) or math.isnan(high) or math.isinf(low) or math.isinf(high):
                findings.append(Finding("scale_values", f"{name} ({dtype} {shape}) has non-finite scales",
                                        details=details, variant=name + "/nan"))
            elif low < 0:
                findings.append(Finding("scale_values", f"{name} ({dtype} {shape}) has negative scales (min {low:.3g})",
                                        details=details, variant=name))
            elif high == 0:
                findings.append(Finding("scale_values", f"{name} ({dtype} {shape}) has all {total} scales zero",
                                        details=details, variant=name))
        return findings
