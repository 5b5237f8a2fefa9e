"""ATOM must select Triton in CK-free mode: linear, attention_mla and MoE (``backend_selection``).

On AITER main the internal Triton fallbacks of the blockscale GEMMs depend on
the arch only, so a CK-free build still reaches CK modules (whose JIT build
fails) unless the caller picks Triton.  ATOM decides in two ways, and both are
read here:

* module-level selectors: ``use_triton_gemm()`` in linear and attention_mla
  (ATOM main: ``envs.ATOM_USE_TRITON_GEMM``; the CK-free branch also returns
  true for ``ATOM_CK_FREE=1``), called when quantguard is enabled, when their
  modules load, and on sampled calls of a guarded selector;
* per MoE layer: ATOM main's ``Mxfp4MoEMethod`` fixes ``self.use_triton`` when
  the layer is built (gfx94x always, gfx95x with ``ATOM_USE_TRITON_GEMM``,
  ``ATOM_USE_TRITON_MOE`` overrides), so there is no module-level selector
  for MoE.  Every quant method with a ``use_triton`` attribute is read: when
  its weights are processed (check ``moe_backend_selection``) and in the
  audit, for the layers of an attached model and those ATOM registered in its
  ``static_forward_context``.

In a CK-build nothing here reports: CK is allowed there.  In CK-free mode
Triton selected is clean and a CK path selected is a violation.  Where the
selectors are, how a per-instance choice is read and how to make the library
choose Triton are the library's facts (``quantguard.contracts.backend_selections``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from quantguard.checks.base import DataCheck, Finding, Measurement, register_check
from quantguard.contracts import InstanceChoice, backend_selections

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.calls import CallRecord
    from quantguard.hardware import Platform

__all__ = ["SelectorResult", "MoeMethodSelection", "audit_backend_selection"]


def _message(path: str, platform: Platform) -> str:
    return (
        f"{path}() returned False in CK-free mode ({platform.ck_free_source}): this path selects CK GEMMs, "
        "whose JIT build fails in a CK-free build"
    )


def _moe_message(choice: InstanceChoice, platform: Platform) -> str:
    return (
        f"{choice.selector} is False for MoE layer {choice.layer} in CK-free mode ({platform.ck_free_source}): "
        f"its experts run {choice.kernels}, whose JIT build fails in a CK-free build ({choice.hint})"
    )


def _moe_finding(choice: InstanceChoice, platform: Platform) -> Finding:
    return Finding(
        "backend_selection",
        _moe_message(choice, platform),
        details={
            "selector": choice.selector,
            "layer": choice.layer,
            "returned": False,
            "ck_free_source": platform.ck_free_source,
        },
    )


def audit_backend_selection(platform: Platform, model: Any = None) -> list[tuple[str, Finding]]:
    """Call every library's backend selectors and read every per-instance choice; in CK-free mode each
    must say Triton.  Returns ``(where, finding)`` pairs: the selector's path, or the choice's."""
    from quantguard.reentrancy import suppressed

    if not platform.ck_free:
        return []
    selections = backend_selections()
    selectors = [found for selection in selections for found in selection.selectors()]
    findings = []
    for path, selector in selectors:
        try:
            with suppressed():
                chosen = bool(selector())
        except Exception as exc:  # a selector that cannot answer is reported, not raised
            findings.append(
                (
                    path,
                    Finding(
                        "backend_selection",
                        f"{path}() raised {type(exc).__name__}: {exc}",
                        severity="warning",
                        details={"selector": path},
                    ),
                )
            )
            continue
        if not chosen:
            findings.append(
                (
                    path,
                    Finding(
                        "backend_selection",
                        _message(path, platform),
                        details={"selector": path, "returned": False, "ck_free_source": platform.ck_free_source},
                    ),
                )
            )
    for selection in selections:
        for choice in selection.instance_choices(model):
            if not choice.chosen:
                findings.append((choice.path, _moe_finding(choice, platform)))
    return findings


@register_check
class SelectorResult(DataCheck):
    name = "selector_result"
    reports = ("backend_selection",)
    summary = "a backend selector called in CK-free mode must choose Triton"

    def measure(self, call: CallRecord) -> Measurement | None:
        return Measurement({}) if call.platform.ck_free else None

    def judge(self, call: CallRecord, measurement: Measurement, values: Mapping[str, Any]) -> Iterable[Finding]:
        if call.result is False or call.result == 0:
            return [
                Finding(
                    "backend_selection",
                    _message(call.target, call.platform),
                    details={"selector": call.target, "returned": False},
                )
            ]
        return []


@register_check
class MoeMethodSelection(DataCheck):
    name = "moe_backend_selection"
    reports = ("backend_selection",)
    summary = "an MoE quant method processing its layer in CK-free mode must have chosen Triton (use_triton)"

    def measure(self, call: CallRecord) -> Measurement | None:
        if not call.platform.ck_free:
            return None
        method = call.get("self")
        for selection in backend_selections():
            choice = selection.instance_choice(method, call.get("layer"), call.layer or "")
            if choice is not None:
                return Measurement({}, {"choice": choice})
        return None

    def judge(self, call: CallRecord, measurement: Measurement, values: Mapping[str, Any]) -> Iterable[Finding]:
        choice = measurement.context["choice"]
        if choice.chosen:
            return []
        return [_moe_finding(choice, call.platform)]
