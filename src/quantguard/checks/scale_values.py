"""Scale values a GEMM is about to use (``scale_values``), on sampled calls.

"Nonzero" is not "correct", but all-zero, negative, NaN and Inf scales are
never correct (a single zero scale can be: an all-zero activation row): an e8m0 scale tensor ``copy_``-ed into a uint8 parameter holds
zeros (2^-127: the layer outputs ~0); a NaN byte (0xFF) poisons a block.
"""

from __future__ import annotations

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
        kept = []
        for name, scale, layout, rows in (("x_scale", view.x_scale, view.x_scale_layout, view.m),
                                          ("w_scale", view.w_scale, view.w_scale_layout, view.n)):
            if scale is not None:
                kept.append((name, meaningful_scales(scale, layout, rows, groups).detach().clone()))
        call.scratch["scale_values"] = kept

    def measure(self, call: "CallRecord") -> Measurement | None:
        tensors: dict[str, torch.Tensor] = {}
        context: dict[str, Any] = {}
        for name, scale in call.scratch.get("scale_values", []):
            if scale.numel() == 0:
                continue
            if scale.element_size() == 1:
                raw = scale.view(torch.uint8)
                tensors[f"{name}|zero"] = (raw == 0).sum().to(torch.float64)
                tensors[f"{name}|nan"] = (raw == 0xFF).sum().to(torch.float64)
                context[name] = ("e8m0", list(scale.shape), dtype_name(scale.dtype), scale.numel())
            else:
                values = scale.to(torch.float32)
                tensors[f"{name}|zero"] = (values == 0).sum().to(torch.float64)
                tensors[f"{name}|negative"] = (values < 0).sum().to(torch.float64)
                tensors[f"{name}|nan"] = (~torch.isfinite(values)).sum().to(torch.float64)
                context[name] = ("fp32", list(scale.shape), dtype_name(scale.dtype), scale.numel())
        return Measurement(tensors, context) if tensors else None

    def judge(self, call: "CallRecord", measurement: Measurement,
              values: Mapping[str, Any]) -> Iterable[Finding]:
        findings = []
        for name, (encoding, shape, dtype, total) in measurement.context.items():
            zero, nan = int(values[f"{name}|zero"]), int(values[f"{name}|nan"])
            negative = int(values.get(f"{name}|negative", 0))
            details = {"scale": name, "shape": shape, "dtype": dtype, "zero": zero, "negative": negative,
                       "non_finite": nan, "total": total}
            if encoding == "e8m0" and zero == total:
                findings.append(Finding("scale_values", f"{name} ({dtype} {shape}) is all zero bytes: every e8m0 scale "
                                        "is 2^-127, so the product is ~0 (scales copied numerically into uint8 "
                                        "instead of viewed as bytes?)", details=details, variant=name))
            elif encoding == "fp32" and (negative or zero == total):
                what = f"{negative}/{total} negative" if negative else f"all {total} zero"
                findings.append(Finding("scale_values", f"{name} ({dtype} {shape}) has {what} scales",
                                        details=details, variant=name))
            if nan:
                findings.append(Finding("scale_values", f"{name} ({dtype} {shape}) has {nan}/{total} non-finite "
                                        "scales", details=details, variant=name + "/nan"))
        return findings
