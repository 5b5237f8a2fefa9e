"""Backend policy: ASM kernels on gfx950 in CK-free builds (``blocked``), CK kernels in CK-free mode (``backend_selection``).

ASM GEMM on gfx950 returned garbage (cosine 0.006) in CK-free builds; it is
blocked however it is reached: public ``*_ASM`` entry points, internal
``*_asm`` kernels, and dispatch to them (``gemm_a8w8_blockscale`` →
``gfx950_a8w8_blockscale_ASM``).  A kernel is ASM if its contract says so or
its name follows its library's ASM naming rule (``quantguard.contracts.is_asm``).
In a CK-free build the CK entry points must not be reached at all: their JIT
build fails there, so the caller (ATOM's ``use_triton_gemm()``) has to select
Triton itself; the contracts say which kernels run CK (``runs_ck``) and how
the caller selects Triton (the hint in the message).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from quantguard.checks.base import Finding, PlanCheck, register_check
from quantguard.contracts import backend_selections, is_asm, runs_ck

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.calls import CallRecord

__all__ = ["AsmPolicy", "CkFreeBackend"]


@register_check
class AsmPolicy(PlanCheck):
    name = "asm_policy"
    reports = ("blocked",)
    summary = "block ASM kernels on gfx950 in CK-free builds"

    def check(self, call: CallRecord) -> Iterable[Finding]:
        platform = call.platform
        if not platform.asm_blocked or not is_asm(call.contract):
            return []
        alternative = call.contract.alternative
        return [
            Finding(
                "blocked",
                f"ASM kernel on {platform.arch} in a CK-free build (returns garbage there)",
                details={
                    "arch": platform.arch,
                    "arch_source": platform.arch_source,
                    "ck_free_source": platform.ck_free_source,
                    "alternative": alternative,
                },
            )
        ]


@register_check
class CkFreeBackend(PlanCheck):
    name = "ck_free_backend"
    reports = ("backend_selection",)
    summary = "no CK kernel may be reached in a CK-free build"

    def check(self, call: CallRecord) -> Iterable[Finding]:
        platform = call.platform
        contract = call.contract
        if not platform.ck_free or not runs_ck(contract):
            return []
        # A CK entry point whose arguments route the call to another kernel (its own contract judges that one).
        if any(call.get(name) for name in contract.options.get("not_ck_when", ())):
            return []
        hints = "; ".join(selection.ck_hint for selection in backend_selections())  # how callers select Triton
        how = f" ({hints})" if hints else ""
        return [
            Finding(
                "backend_selection",
                f"CK kernel called in a CK-free build ({platform.ck_free_source}); its JIT build fails "
                f"or a stale module runs. Select Triton{how}, e.g. "
                f"{contract.alternative or 'the Triton equivalent'}",
                details={"ck_free_source": platform.ck_free_source, "alternative": contract.alternative},
            )
        ]
