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
Triton selected is clean and a CK path selected is a violation.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from quantguard.checks.base import DataCheck, Finding, Measurement, register_check

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.calls import CallRecord
    from quantguard.hardware import Platform

__all__ = [
    "SelectorResult",
    "MoeMethodSelection",
    "atom_selectors",
    "moe_selections",
    "audit_backend_selection",
    "ATOM_PATHS",
]

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
                required = [
                    p
                    for p in inspect.signature(value).parameters.values()
                    if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
                ]
            except (TypeError, ValueError):
                continue
            if not required:
                found.append((f"{module_name}.{name}", value))
    return found


def _layer_name(layer: Any, fallback: str = "") -> str:
    for attribute in ("prefix", "layer_name"):
        value = getattr(layer, attribute, None)
        if isinstance(value, str) and value:
            return value
    return fallback or type(layer).__name__


def _moe_choice(method: Any) -> bool | None:
    """The quant method's per-instance backend choice, or None when it has none."""
    chosen = getattr(method, "use_triton", None)
    return chosen if isinstance(chosen, bool) else None


def _registered_layers() -> list[tuple[str, Any]]:
    """Layers ATOM registered by name (``atom_config.compilation_config.static_forward_context``)."""
    config_module = sys.modules.get("atom.config")
    getter = getattr(config_module, "get_current_atom_config", None) if config_module is not None else None
    if getter is None:
        return []
    try:
        context = getter().compilation_config.static_forward_context
        return [(str(name), layer) for name, layer in dict(context).items()]
    except Exception:  # no config set yet (model not built): nothing registered
        return []


def moe_selections(model: Any = None) -> list[tuple[str, str, bool]]:
    """``(layer, method class, use_triton)`` of every MoE quant method with a per-instance choice.

    Layers come from ``model`` (every submodule with a ``quant_method``) and
    from ATOM's registry of named layers; each layer is read once.
    """
    layers: list[tuple[str, Any]] = []
    if model is not None and hasattr(model, "named_modules"):
        layers.extend((name, module) for name, module in model.named_modules())
    layers.extend(_registered_layers())
    seen: set[int] = set()
    found = []
    for name, layer in layers:
        method = getattr(layer, "quant_method", None)
        chosen = _moe_choice(method)
        if chosen is None or id(layer) in seen:
            continue
        seen.add(id(layer))
        found.append((_layer_name(layer, name), type(method).__qualname__, chosen))
    return found


def _message(path: str, platform: Platform) -> str:
    return (
        f"{path}() returned False in CK-free mode ({platform.ck_free_source}): this path selects CK GEMMs, "
        "whose JIT build fails in a CK-free build"
    )


def _moe_message(layer: str, method: str, platform: Platform) -> str:
    return (
        f"{method}.use_triton is False for MoE layer {layer} in CK-free mode ({platform.ck_free_source}): "
        "its experts run AITER's CK/ASM MoE kernels, whose JIT build fails in a CK-free build "
        "(ATOM main: set ATOM_USE_TRITON_MOE=1, or ATOM_USE_TRITON_GEMM=1 on gfx95x)"
    )


def _moe_finding(layer: str, method: str, platform: Platform) -> Finding:
    return Finding(
        "backend_selection",
        _moe_message(layer, method, platform),
        details={
            "selector": f"{method}.use_triton",
            "layer": layer,
            "returned": False,
            "ck_free_source": platform.ck_free_source,
        },
    )


def audit_backend_selection(platform: Platform, model: Any = None) -> list[tuple[str, Finding]]:
    """Call every ATOM selector and read every MoE method's choice; in CK-free mode each must say Triton."""
    from quantguard.reentrancy import suppressed

    if not platform.ck_free:
        return []
    findings = []
    for path, selector in atom_selectors():
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
    for layer, method, chosen in moe_selections(model):
        if not chosen:
            findings.append((f"atom.model_ops.moe.{method}.use_triton", _moe_finding(layer, method, platform)))
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
        chosen = _moe_choice(method)
        if chosen is None:
            return None
        return Measurement(
            {},
            {
                "chosen": chosen,
                "method": type(method).__qualname__,
                "layer": call.layer or _layer_name(call.get("layer")),
            },
        )

    def judge(self, call: CallRecord, measurement: Measurement, values: Mapping[str, Any]) -> Iterable[Finding]:
        context = measurement.context
        if context["chosen"]:
            return []
        return [_moe_finding(context["layer"], context["method"], call.platform)]
