"""FP8 variant per architecture (``fp8_variant``).

gfx942 (MI300X) kernels read fp8 bytes as ``float8_e4m3fnuz`` (max 240, bias
8); gfx950 (MI355X) as ``float8_e4m3fn`` (max 448).  The same byte is a
different number on the other arch: an e4m3fnuz value read as e4m3fn is 2x
larger, and e4m3fn's ``0x80`` (-0) is NaN in e4m3fnuz.  The incident: e4m3fn
checkpoint weights reached gfx942 kernels unnormalized.  Checked on every
fp8 operand of a GEMM and every fp8 output a quantizer is asked to produce.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from quantguard.checks._common import dtype_name, is_tensor
from quantguard.checks.base import Finding, PlanCheck, register_check
from quantguard.contracts.views import GemmView, MoeView

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.calls import CallRecord

__all__ = ["Fp8Variant", "FP8_NAMES"]

FP8_NAMES = ("float8_e4m3fn", "float8_e4m3fnuz")
_CONSEQUENCE = {
    ("float8_e4m3fn", "float8_e4m3fnuz"): "values read 2x smaller and byte 0x80 (-0) reads as NaN",
    ("float8_e4m3fnuz", "float8_e4m3fn"): "values read 2x larger and byte 0x7F reads as NaN",
}


def _operands(call: CallRecord) -> list[tuple[str, Any]]:
    view = call.view
    if isinstance(view, GemmView):
        return [("x", view.x), ("w", view.w)]
    if isinstance(view, MoeView):
        return [("w1", view.w1), ("w2", view.w2), ("hidden_states", view.hidden)]
    named = []
    for name in ("quant_dtype", "dtype_quant"):
        value = call.get(name)
        if value is not None and dtype_name(value) in FP8_NAMES:
            named.append((name, value))
    for name in ("out", "qx"):
        value = call.get(name)
        if is_tensor(value):
            named.append((name, value))
    return named


@register_check
class Fp8Variant(PlanCheck):
    name = "fp8_variant"
    reports = ("fp8_variant",)
    summary = "fp8 operands must be the arch's variant (gfx942: e4m3fnuz, gfx950: e4m3fn)"

    def check(self, call: CallRecord) -> Iterable[Finding]:
        expected = call.platform.expected_fp8()
        if expected is None:
            return []
        findings = []
        for name, value in _operands(call):
            if value is None:
                continue
            have = dtype_name(value.dtype if is_tensor(value) else value)
            if have in FP8_NAMES and have != expected:
                consequence = _CONSEQUENCE.get((have, expected), "values misread")
                findings.append(
                    Finding(
                        "fp8_variant",
                        f"{name} is {have} but {call.platform.arch} kernels read {expected}: {consequence}",
                        details={
                            "operand": name,
                            "dtype": have,
                            "expected": expected,
                            "arch": call.platform.arch,
                            "arch_source": call.platform.arch_source,
                        },
                    )
                )
        return findings
