"""``normalize_e4m3fn_to_e4m3fnuz`` must really normalize (``fp8_variant``).

ATOM's gfx942 loading path reinterprets e4m3fn checkpoint bytes as e4m3fnuz,
zeroes byte 0x80 (-0 in e4m3fn, NaN in e4m3fnuz) and doubles every scale
(fp32 x2; e8m0 byte +1 except 0x00/0xFF) so the dequantized weight is
unchanged.  After each call: the returned weight is e4m3fnuz, its bytes equal
the input's except 0x80 → 0, the scales are exactly doubled, and the
dequantized weight is the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import torch

from quantguard.checks._common import dtype_name, is_tensor
from quantguard.checks.base import DataCheck, Finding, Measurement, register_check

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.calls import CallRecord

__all__ = ["Fp8Normalization"]


def _is_e8m0(tensor: torch.Tensor) -> bool:
    return tensor.element_size() == 1


def _doubled(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """Count of scale entries that are not exactly twice the input."""
    if _is_e8m0(before):
        b, a = before.view(torch.uint8).to(torch.int32), after.view(torch.uint8).to(torch.int32)
        keep = (b == 0) | (b == 0xFF)
        expected = torch.where(keep, b, b + 1)
        return (a != expected).sum().to(torch.float64)
    return (after.to(torch.float32) != before.to(torch.float32) * 2).sum().to(torch.float64)


@register_check
class Fp8Normalization(DataCheck):
    name = "fp8_normalization"
    reports = ("fp8_variant",)
    summary = "e4m3fn → e4m3fnuz normalization: bytes, 0x80, doubled scales, unchanged dequant"

    def prepare(self, call: CallRecord) -> None:
        call.scratch["fp8_norm"] = {
            name: call.get(name).detach().clone()
            for name in ("weight", "weight_scale", "input_scale")
            if is_tensor(call.get(name))
        }

    def measure(self, call: CallRecord) -> Measurement | None:
        before = call.scratch.get("fp8_norm")
        result = call.result
        if not before or "weight" not in before or not isinstance(result, (tuple, list)) or not result:
            return None
        weight_after = result[0]
        tensors: dict[str, torch.Tensor] = {}
        raw_before = before["weight"].contiguous().view(torch.uint8)
        raw_after = weight_after.contiguous().view(torch.uint8)
        expected = torch.where(raw_before == 0x80, torch.zeros_like(raw_before), raw_before)
        tensors["bytes"] = (raw_after != expected).sum().to(torch.float64)
        for index, name in ((1, "weight_scale"), (2, "input_scale")):
            if name in before and len(result) > index and is_tensor(result[index]):
                tensors[name] = _doubled(before[name], result[index])
        return Measurement(tensors, {"dtype_after": dtype_name(weight_after.dtype), "shape": list(weight_after.shape)})

    def judge(self, call: CallRecord, measurement: Measurement, values: Mapping[str, Any]) -> Iterable[Finding]:
        findings = []
        details = dict(measurement.context)
        if measurement.context["dtype_after"] != "float8_e4m3fnuz":
            findings.append(
                Finding(
                    "fp8_variant",
                    f"normalize_e4m3fn_to_e4m3fnuz returned "
                    f"{measurement.context['dtype_after']} weights; gfx942 kernels need float8_e4m3fnuz",
                    details=details,
                    variant="dtype",
                )
            )
        if values.get("bytes"):
            findings.append(
                Finding(
                    "fp8_variant",
                    f"{int(values['bytes'])} weight bytes differ from the input with "
                    "0x80 zeroed (bytes must be reinterpreted, not converted)",
                    details=details,
                    variant="bytes",
                )
            )
        for name in ("weight_scale", "input_scale"):
            if values.get(name):
                findings.append(
                    Finding(
                        "fp8_variant",
                        f"{name} was not exactly doubled ({int(values[name])} entries "
                        "differ): the dequantized weight changed by the e4m3fnuz bias",
                        details=details,
                        variant=name,
                    )
                )
        return findings
