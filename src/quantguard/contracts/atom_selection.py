"""Where ATOM decides its GEMM backend: the selector functions and the MoE layers' per-instance choice.

What ``backend_selection`` (a generic check) needs to know about ATOM, read
from ATOM main's sources: which modules hold ``use_triton*`` selectors, how
MoE quant methods record their choice, where ATOM registers its named layers,
and how to make it choose Triton.  The check reads it through ATOM's
:data:`LIBRARY` (:mod:`quantguard.contracts.libraries`), never from here.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from quantguard.contracts.libraries import BackendSelection, InstanceChoice, Library

__all__ = [
    "ATOM_PATHS",
    "LIBRARY",
    "MOE_TRITON_HINT",
    "atom_selectors",
    "layer_name",
    "moe_choice",
    "moe_selections",
]

#: How to make ATOM main's MoE layers choose Triton.
MOE_TRITON_HINT = "ATOM main: set ATOM_USE_TRITON_MOE=1, or ATOM_USE_TRITON_GEMM=1 on gfx95x"
#: How ATOM avoids CK GEMMs (named when a CK kernel runs in a CK-free build).
_CK_HINT = "ATOM: use_triton_gemm()"
#: What an MoE layer whose quant method did not choose Triton runs.
_MOE_KERNELS = "AITER's CK/ASM MoE kernels"

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


def layer_name(layer: Any, fallback: str = "") -> str:
    for attribute in ("prefix", "layer_name"):
        value = getattr(layer, attribute, None)
        if isinstance(value, str) and value:
            return value
    return fallback or type(layer).__name__


def moe_choice(method: Any) -> bool | None:
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
        chosen = moe_choice(method)
        if chosen is None or id(layer) in seen:
            continue
        seen.add(id(layer))
        found.append((layer_name(layer, name), type(method).__qualname__, chosen))
    return found


def _moe_instance(layer: str, method: str, chosen: bool) -> InstanceChoice:
    return InstanceChoice(
        layer=layer,
        selector=f"{method}.use_triton",
        path=f"atom.model_ops.moe.{method}.use_triton",
        chosen=chosen,
        kernels=_MOE_KERNELS,
        hint=MOE_TRITON_HINT,
    )


def _instance_choices(model: Any) -> list[InstanceChoice]:
    return [_moe_instance(layer, method, chosen) for layer, method, chosen in moe_selections(model)]


def _instance_choice(method: Any, layer: Any, known_layer: str) -> InstanceChoice | None:
    chosen = moe_choice(method)
    if chosen is None:
        return None
    return _moe_instance(known_layer or layer_name(layer), type(method).__qualname__, chosen)


#: ATOM calls AITER on the user's behalf (its frames are user code) and selects the GEMM backend:
#: module-level ``use_triton*`` selectors, and each MoE quant method's ``use_triton``.
LIBRARY = Library(
    name="atom",
    packages=("atom",),
    selection=BackendSelection(
        modules=("atom.model_ops",),
        selectors=atom_selectors,
        instance_choices=_instance_choices,
        instance_choice=_instance_choice,
        ck_hint=_CK_HINT,
    ),
)
