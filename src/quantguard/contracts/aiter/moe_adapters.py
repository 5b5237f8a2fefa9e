"""How AITER's MoE entry points read: top-k routing weights and the fused MoE's experts.

The routing adapters say which score function a call uses (sigmoid for
DeepSeek's biased grouped top-k, else from ``score_func``/``is_softmax``) and
what ``routed_scaling_factor``/``need_renorm`` asked for; ``fused_moe`` is
interpreted for the quant types and activations the MoE reference models
(no, per-token or 1x128 quant; no shared experts): SiLU, and AITER's gpt-oss
Swiglu with gate and up in separate halves of ``w1`` (``gate_mode``
"separated", the default), whose constants are those of
``aiter.fused_moe.swiglu`` and the Triton MoE ``_swiglu``: alpha 1.702, and
the clamp ``swiglu_limit`` or 7.0 when it is None.  A SiLU call with a
``swiglu_limit`` (clamped SiLU) is not interpreted, nor are expert biases
(``bias1``/``bias2``, gpt-oss checkpoints) or padded dimensions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from quantguard.contracts.aiter._common import arch_fp8
from quantguard.contracts.views import MoeView, RoutingView

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.calls import CallRecord

__all__ = ["fused_moe", "routing"]

#: ``aiter.fused_moe.swiglu``'s defaults (AITER e4048607).
SWIGLU_ALPHA = 1.702
SWIGLU_DEFAULT_LIMIT = 7.0


def routing(score: str | None) -> Callable[[CallRecord], RoutingView]:
    def interpret(call: CallRecord) -> RoutingView:
        chosen = score
        if chosen is None:  # topk_gating: from score_func; grouped_topk: from is_softmax
            if "score_func" in call.arguments:
                chosen = str(call.get("score_func"))
            else:
                chosen = "softmax" if call.get("is_softmax", True) else "sigmoid"
        return RoutingView(
            call["gating_output"],
            call.get("correction_bias"),
            call["topk_weights"],
            call["topk_ids"] if "topk_ids" in call.arguments else call["topk_indices"],
            chosen,
            bool(call.get("need_renorm", True)),
            float(call.get("routed_scaling_factor", 1.0) or 1.0),
        )

    return interpret


def fused_moe(call: CallRecord) -> MoeView | None:
    quant = str(getattr(call.get("quant_type"), "name", call.get("quant_type"))).lower()
    kind = {
        "no": "none",
        "quanttype.no": "none",
        "per_token": "per_token",
        "quanttype.per_token": "per_token",
        "per_1x128": "per_1x128",
        "quanttype.per_1x128": "per_1x128",
    }.get(quant)
    activation = str(getattr(call.get("activation"), "name", call.get("activation"))).lower().rpartition(".")[2]
    limit = call.get("swiglu_limit")
    gate_mode = str(getattr(call.get("gate_mode"), "value", call.get("gate_mode") or "separated")).lower()
    unmodelled = (
        call.get("shared_w1") is not None
        or call.get("bias1") is not None
        or call.get("bias2") is not None
        or call.get("hidden_pad")
        or call.get("intermediate_pad")
    )
    if kind is None or unmodelled or gate_mode != "separated":
        return None
    if not (activation == "swiglu" or (activation == "silu" and not limit)):
        return None
    w1, w2 = call["w1"], call["w2"]
    shuffled = bool(getattr(w1, "is_shuffled", False) or getattr(w2, "is_shuffled", False))
    return MoeView(
        call["hidden_states"],
        w1,
        w2,
        call["topk_weight"],
        call["topk_ids"],
        call.result,
        kind,
        call.get("w1_scale"),
        call.get("w2_scale"),
        activation,
        fp8_read_as=arch_fp8(call),
        expert_mask=call.get("expert_mask"),
        shuffled=shuffled,
        swiglu_alpha=SWIGLU_ALPHA,
        swiglu_limit=float(limit) if limit else SWIGLU_DEFAULT_LIMIT,
    )
