"""NaN or Inf in a guarded output (``nonfinite``), on sampled calls.

A single NaN in a scale or an fp8 NaN code (0x80 in e4m3fnuz) poisons every
token downstream; counting them costs one reduction on the side stream.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import torch

from quantguard.checks._common import meaningful_scales, output_tensors, sample_rows
from quantguard.checks.base import DataCheck, Finding, Measurement, register_check
from quantguard.contracts.views import QuantView
from quantguard.numerics.dequant import fp8_values, scale_values
from quantguard.numerics.formats import element_format, is_e8m0_dtype

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.calls import CallRecord

__all__ = ["NonFinite"]

#: Tensors larger than this are checked on the sampled rows only.
_WHOLE_LIMIT = 1 << 16


def _named_outputs(call: CallRecord) -> list[tuple[str, torch.Tensor]]:
    view = call.view
    if view is not None:
        named = [(name, getattr(view, name, None)) for name in ("q", "scales", "out")]
        named = [(name, t) for name, t in named if isinstance(t, torch.Tensor)]
        if isinstance(view, QuantView) and view.scales is not None and view.group:
            named = [
                (name, meaningful_scales(t, view.requested_layout, view.rows, view.groups) if name == "scales" else t)
                for name, t in named
            ]
        if named:
            return named
    return [(f"output[{i}]", t) for i, t in enumerate(output_tensors(call.result))]


def _float_values(tensor: torch.Tensor, name: str, call: CallRecord) -> torch.Tensor | None:
    if tensor.is_floating_point() and tensor.element_size() > 1:
        return tensor
    if is_e8m0_dtype(tensor.dtype) or (name == "scales" and tensor.dtype == torch.uint8):
        return scale_values(tensor)
    element = element_format(tensor.dtype)
    if element is not None and element.family == "fp8":
        return fp8_values(tensor, tensor.dtype)
    return None


@register_check
class NonFinite(DataCheck):
    name = "nonfinite"
    reports = ("nonfinite",)
    summary = "count NaN/Inf in guarded outputs (sampled calls)"

    def applies(self, call: CallRecord) -> bool:
        # with shadow numerics on, the GEMM comparison already counts NaN/Inf in the outputs it reads
        return not (call.config.shadow and call.contract.kind == "gemm")

    def snapshot(self, call: CallRecord) -> None:
        kept = []
        for name, tensor in _named_outputs(call):
            if tensor.dim() >= 2 and tensor.numel() > _WHOLE_LIMIT:
                tensor = tensor[sample_rows(call, int(tensor.shape[0]))]
            kept.append((name, tensor.detach().clone()))
        call.scratch["nonfinite"] = kept

    def measure(self, call: CallRecord) -> Measurement | None:
        tensors: dict[str, torch.Tensor] = {}
        shapes = {}
        for name, tensor in call.scratch.get("nonfinite", []):
            values = _float_values(tensor, name, call)
            if values is None or values.numel() == 0:
                continue
            tensors[name] = (~torch.isfinite(values)).sum().to(torch.float64)
            shapes[name] = (list(tensor.shape), str(tensor.dtype))
        return Measurement(tensors, {"shapes": shapes}) if tensors else None

    def judge(self, call: CallRecord, measurement: Measurement, values: Mapping[str, Any]) -> Iterable[Finding]:
        bad = {name: int(count) for name, count in values.items() if count}
        if not bad:
            return []
        parts = ", ".join(f"{count} in {name} {measurement.context['shapes'][name][0]}" for name, count in bad.items())
        return [
            Finding(
                "nonfinite",
                f"non-finite values: {parts}",
                details={"counts": bad, "shapes": measurement.context["shapes"]},
            )
        ]
