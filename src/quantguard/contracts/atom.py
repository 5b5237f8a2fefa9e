"""ATOM's promises around AITER: weight loading, FP8 normalization, backend selection.

ATOM (ROCm/ATOM) is the caller: it picks backends (``use_triton_gemm()``, and
per MoE layer ``Mxfp4MoEMethod.use_triton``), normalizes e4m3fn checkpoints
for gfx942 (``normalize_e4m3fn_to_e4m3fnuz``) and post-processes loaded
weights.  Bugs there reach AITER's kernels as well-formed but wrong tensors,
so they are checked where ATOM produces them.

ATOM main's loader calls ``module.process_weights_after_loading()`` and then
``module.quant_method.process_weights_after_loading(module)``; for MoE layers
the quant method is what rewrites ``w13_weight``/``w2_weight`` and their
scales, so the weight scan runs after each MoE quant method's step (those are
plain classes, patched like any function).  ``FusedMoE`` itself is a
``LazyMoEWrapper`` whose ``__new__`` builds instances of the class behind it:
:func:`class_behind_lazy_wrapper` names that class, where a patch must land.

``FusedMoE.select_experts`` (a staticmethod every MoE quant method calls)
promises that a ``custom_routing_function`` takes precedence: its
``(topk_weights, topk_ids)`` are returned as they are (DeepSeek-V4's hash
layers).  :func:`select_experts_view` hands the check a way to call it again,
exactly as ``select_experts`` calls it (keywords ``hidden_states``,
``gating_output``, ``topk``, ``renormalize``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from quantguard.contracts.base import Contract, identity, optional, tensor, value
from quantguard.contracts.views import RoutingView

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.calls import CallRecord

__all__ = ["CONTRACTS", "MOE_QUANT_METHODS", "class_behind_lazy_wrapper", "select_experts_view"]

#: ATOM main's ``FusedMoE.select_experts`` parameters (ATOM ffdf3bb5), in order.
SELECT_EXPERTS_PARAMS = (
    "hidden_states",
    "router_logits",
    "top_k",
    "use_grouped_topk",
    "renormalize",
    "topk_group",
    "num_expert_group",
    "custom_routing_function",
    "scoring_func",
    "e_score_correction_bias",
    "num_routing_experts",
    "num_fused_shared_experts",
    "fused_shared_experts_scoring_func",
    "routed_scaling_factor",
)

#: ATOM main's MoE quant methods that define ``process_weights_after_loading(layer)``
#: (``MegaMxfp4MoEMethod`` inherits ``Mxfp4MoEMethod``'s).
MOE_QUANT_METHODS = ("UnquantizedFusedMoEMethod", "Fp8MoEMethod", "CompressedTensorsFp8MoEMethod", "Mxfp4MoEMethod")
#: Methods with a per-instance backend switch (``use_triton``).
_PER_INSTANCE_SELECTION = ("Mxfp4MoEMethod",)
_CLOSURE_DEPTH = 3


def _closure_classes(function: Any, depth: int = _CLOSURE_DEPTH) -> list[type]:
    """Classes a function's closure reaches: directly, through nested functions, or in a cache dict."""
    found: list[type] = []
    for cell in getattr(function, "__closure__", None) or ():
        try:
            value = cell.cell_contents
        except ValueError:  # empty cell
            continue
        values = list(value.values()) if isinstance(value, dict) else [value]
        for item in values:
            if isinstance(item, type):
                found.append(item)
            elif callable(item) and depth > 0:
                found.extend(_closure_classes(item, depth - 1))
    return found


def class_behind_lazy_wrapper(cls: Any) -> Any:
    """The class whose instances ``cls()`` really builds, when ``cls`` is a lazy wrapper; else ``cls``.

    ATOM main decorates ``FusedMoE`` with ``FusedMoEDecoratorForPluginMode``:
    the module attribute becomes a subclass whose ``__new__`` returns an
    instance of the original class, so those instances never see a method
    set on the wrapper.  A wrapper is recognised by what it does, not by its
    name: it defines ``__new__`` itself and that ``__new__``'s closure holds
    one of the wrapper's own base classes.  Anything else is returned as is.
    """
    if not isinstance(cls, type) or "__new__" not in vars(cls):
        return cls
    new = vars(cls)["__new__"]
    new = getattr(new, "__func__", new)  # staticmethod
    for candidate in _closure_classes(new):
        if candidate is not cls and candidate is not object and issubclass(cls, candidate):
            return candidate
    return cls


def select_experts_view(call: CallRecord) -> RoutingView | None:
    """The routing a ``select_experts`` call returned, and how to recompute it from its custom function.

    ``None`` without a ``custom_routing_function`` (the logit top-k is judged
    where AITER computes it) or when the result is not ``(weights, ids)``.
    """
    function = call.get("custom_routing_function")
    result = call.result
    if function is None or not isinstance(result, tuple) or len(result) != 2:
        return None
    hidden, logits = call["hidden_states"], call["router_logits"]
    top_k, renormalize = call["top_k"], call["renormalize"]

    def expected_routing() -> tuple[Any, Any]:
        weights, ids = function(hidden_states=hidden, gating_output=logits, topk=top_k, renormalize=renormalize)
        return weights, ids

    return RoutingView(
        logits,
        call.get("e_score_correction_bias"),
        result[0],
        result[1],
        str(call.get("scoring_func", "softmax")),
        bool(renormalize),
        float(call.get("routed_scaling_factor", 1.0) or 1.0),
        expected_routing=expected_routing,
    )


def _moe_method_contract(name: str) -> Contract:
    checks = (
        ("weight_scan", "weight_scales", "moe_backend_selection")
        if name in _PER_INSTANCE_SELECTION
        else ("weight_scan", "weight_scales")
    )
    return Contract(
        target=f"atom.model_ops.moe:{name}.process_weights_after_loading",
        kind="loader",
        backend="atom",
        checks=checks,
        key=(identity("self"), identity("layer")),
        params=("self", "layer"),
        description=f"scan an MoE layer's w13/w2 weights and scales after {name} prepared them"
        + (" (and read its use_triton)" if name in _PER_INSTANCE_SELECTION else ""),
    )


CONTRACTS: list[Contract] = [
    Contract(
        target="atom.model_ops.utils.normalize_e4m3fn_to_e4m3fnuz",
        kind="loader",
        backend="atom",
        checks=("fp8_normalization",),
        key=(tensor("weight"), optional("weight_scale"), optional("input_scale")),
        params=("weight", "weight_scale", "input_scale"),
        description="gfx942 load path: e4m3fn bytes as e4m3fnuz, 0x80 → 0, scales doubled",
    ),
    Contract(
        target="atom.model_ops.linear.use_triton_gemm",
        kind="selector",
        backend="atom",
        checks=("selector_result",),
        description="ATOM's GEMM backend selector for linear and attention_mla (must be True in CK-free mode)",
    ),
    Contract(
        target="atom.model_ops.linear:LinearBase.weight_loader",
        kind="loader",
        backend="atom",
        checks=("weight_scales",),
        key=(identity("self"), identity("param"), tensor("loaded_weight")),
        params=("self", "param", "loaded_weight"),
        description="remember the checkpoint values passed for each parameter (weight_scales compares the "
        "loaded weight and scale with them after process_weights_after_loading)",
    ),
    Contract(
        target="atom.model_ops.linear:LinearBase.process_weights_after_loading",
        kind="loader",
        backend="atom",
        checks=("weight_scan", "weight_scales"),
        key=(identity("self"),),
        description="scan a linear layer's weights after loading; judge each weight scale against its bytes "
        "and checkpoint",
    ),
    Contract(
        target="atom.model_ops.moe:FusedMoE.process_weights_after_loading",
        kind="loader",
        backend="atom",
        checks=("weight_scan", "weight_scales"),
        key=(identity("self"),),
        options={"resolve_class": class_behind_lazy_wrapper},
        description="scan an MoE layer's weights after its own step (on the class behind LazyMoEWrapper)",
    ),
    *(_moe_method_contract(name) for name in MOE_QUANT_METHODS),
    Contract(
        target="atom.model_ops.moe:FusedMoE.select_experts",
        kind="routing",
        backend="atom",
        checks=("custom_routing", "ignored_parameter"),
        key=(tensor("router_logits"), value("top_k"), value("use_grouped_topk"), value("renormalize")),
        interpret=select_experts_view,
        honored=("custom_routing_function",),
        params=SELECT_EXPERTS_PARAMS,
        depends={
            "custom_routing": ("hidden_states", "router_logits", "top_k", "renormalize", "custom_routing_function")
        },
        options={"resolve_class": class_behind_lazy_wrapper},
        description="MoE routing: a custom_routing_function (DeepSeek-V4 hash layers) takes precedence over the "
        "logit top-k; its result is returned as is",
    ),
]
