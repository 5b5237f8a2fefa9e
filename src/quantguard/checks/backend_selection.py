"""ATOM must select Triton in CK-free mode: linear, attention_mla and moe (``backend_selection``).

On AITER main the internal Triton fallbacks of the blockscale GEMMs depend on
the arch only, so a CK-free build still reaches CK modules (whose JIT build
fails) unless the caller picks Triton.  ATOM's selectors (``use_triton_gemm``
in linear, the names attention_mla and moe use) are called when quantguard
is enabled and when their modules load, and each call of a guarded selector
is checked on sampled calls.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from quantguard.checks.base import DataCheck, Finding, Measurement, register_check

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.calls import CallRecord
    from quantguard.hardware import Platform

__all__ = ["SelectorResult", "atom_selectors", "audit_backend_selection", "ATOM_PATHS"]

#: The ATOM modules whose GEMM paths must go to Triton in CK-free mode.
ATOM_PATHS = ("atom.model_ops.linear", "atom.model_ops.attention_mla", "atom.model_ops.moe")


def atom_selectors() -> list[tuple[str, Callable[[], Any]]]:
    """Zero-argument ``use_triton*`` selectors bound in the loaded ATOM path modules."""
    import inspect

    found = []
    for module_name in ATOM_PATHS:
        module = sys.modules.get(module_name)
        if module is None:
            continue
        for name, value in sorted(vars(module).items()):
            if "use_triton" not in name or not callable(value) or "fp4" in name:
                continue
            try:
                required = [p for p in inspect.signature(value).parameters.values()
                            if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
            except (TypeError, ValueError):
                continue
            if not required:
                found.append((f"{module_name}.{name}", value))
    return found


def _message(path: str, platform: "Platform") -> str:
    return (f"{path}() returned False in CK-free mode ({platform.ck_free_source}): this path selects CK GEMMs, "
            "whose JIT build fails in a CK-free build")


def audit_backend_selection(platform: "Platform") -> list[tuple[str, Finding]]:
    """Call every ATOM selector; in CK-free mode each must say Triton."""
    from quantguard.engine.reentrancy import suppressed

    if not platform.ck_free:
        return []
    findings = []
    for path, selector in atom_selectors():
        try:
            with suppressed():
                chosen = bool(selector())
        except Exception as exc:  # a selector that cannot answer is reported, not raised
            findings.append((path, Finding("backend_selection", f"{path}() raised {type(exc).__name__}: {exc}",
                                           severity="warning", details={"selector": path})))
            continue
        if not chosen:
            findings.append((path, Finding("backend_selection", _message(path, platform),
                                           details={"selector": path, "returned": False,
                                                    "ck_free_source": platform.ck_free_source})))
    return findings


@register_check
class SelectorResult(DataCheck):
    name = "selector_result"
    reports = ("backend_selection",)
    summary = "a backend selector called in CK-free mode must choose Triton"

    def measure(self, call: "CallRecord") -> Measurement | None:
        return Measurement({}) if call.platform.ck_free else None

    def judge(self, call: "CallRecord", measurement: Measurement,
              values: Mapping[str, Any]) -> Iterable[Finding]:
        if call.result is False or call.result == 0:
            return [Finding("backend_selection", _message(call.target, call.platform),
                            details={"selector": call.target, "returned": False})]
        return []
