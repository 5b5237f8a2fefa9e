"""AITER's fused MoE and the top-k routing that feeds it, as contracts (adapters: :mod:`.moe_adapters`)."""

from __future__ import annotations

from quantguard.contracts.aiter import moe_adapters as moe
from quantguard.contracts.base import Contract, identity, optional, tensor, value

__all__ = ["CONTRACTS"]

CONTRACTS: list[Contract] = [
    # -- MoE --
    Contract(
        target="aiter.fused_moe.fused_moe",
        kind="moe",
        backend="ck",
        checks=("ck_free_backend", "fp8_variant", "moe_numerics", "nonfinite"),
        key=(
            tensor("hidden_states"),
            identity("w1"),
            identity("w2"),
            tensor("topk_weight"),
            tensor("topk_ids"),
            value("quant_type"),
        ),
        interpret=moe.fused_moe,
        description="fused MoE (top-k weighted sum of SiLU or Swiglu experts)",
    ),
    Contract(
        target="aiter.ops.topk.biased_grouped_topk",
        kind="routing",
        backend="hip",
        checks=("routing_scale", "ignored_parameter"),
        key=(
            tensor("gating_output"),
            optional("correction_bias"),
            tensor("topk_weights"),
            tensor("topk_ids"),
            value("num_expert_group"),
            value("topk_group"),
            value("need_renorm"),
            value("routed_scaling_factor"),
        ),
        interpret=moe.routing("sigmoid"),
        honored=("routed_scaling_factor", "need_renorm"),
        params=(
            "gating_output",
            "correction_bias",
            "topk_weights",
            "topk_ids",
            "num_expert_group",
            "topk_group",
            "need_renorm",
            "routed_scaling_factor",
        ),
        depends={"routing_scale": ("routed_scaling_factor", "need_renorm")},
        description="DeepSeek routing: sigmoid + bias grouped top-k, weights x routed_scaling_factor",
    ),
    Contract(
        target="aiter.ops.topk.grouped_topk",
        kind="routing",
        backend="hip",
        checks=("routing_scale", "ignored_parameter"),
        key=(
            tensor("gating_output"),
            tensor("topk_weights"),
            tensor("topk_ids"),
            value("num_expert_group"),
            value("topk_group"),
            value("need_renorm"),
            value("is_softmax"),
            value("routed_scaling_factor"),
        ),
        interpret=moe.routing(None),
        honored=("routed_scaling_factor", "need_renorm", "is_softmax"),
        description="grouped top-k routing, weights x routed_scaling_factor",
    ),
    Contract(
        target="aiter.ops.topk.topk_gating",
        kind="routing",
        backend="hip",
        checks=("routing_scale", "ignored_parameter"),
        key=(
            tensor("topk_weights"),
            tensor("topk_indices"),
            tensor("gating_output"),
            optional("correction_bias"),
            value("need_renorm"),
            value("routed_scaling_factor"),
            value("score_func"),
        ),
        interpret=moe.routing(None),
        honored=("routed_scaling_factor", "need_renorm", "score_func"),
        description="unified top-k gating, weights x routed_scaling_factor",
    ),
]
