"""Simulated ``aiter.ops.topk``: MoE routing kernels.

Every kernel writes ``topk_weights``/``topk_ids`` in place and multiplies
``routed_scaling_factor`` into the weights after the optional renormalisation.
As in AITER e4048607 the kernels (``biased_grouped_topk_hip``,
``grouped_topk``, ``topk_gating_fwd``) are ``compile_ops`` ops, and
``biased_grouped_topk`` / ``topk_gating`` are plain front ends.
"""

import torch

from quantguard.sim import _state

from ..jit.core import compile_ops

__all__ = [
    "biased_grouped_topk",
    "biased_grouped_topk_hip",
    "grouped_topk",
    "topk_gating",
    "topk_gating_fwd",
]

_SCORE_FUNCS = {
    "sqrtsoftplus": lambda logits: torch.nn.functional.softplus(logits).sqrt(),
    "sigmoid": torch.sigmoid,
    "softmax": lambda logits: torch.softmax(logits, dim=-1),
}


def _select(scores, choice, topk, num_expert_group, topk_group, group_score):
    """Top-k experts of ``choice`` restricted to the best ``topk_group`` groups."""
    tokens, experts = choice.shape
    groups = group_score(choice.view(tokens, num_expert_group, experts // num_expert_group))
    keep = torch.zeros_like(groups, dtype=torch.bool)
    keep.scatter_(1, groups.topk(topk_group, dim=-1).indices, True)
    allowed = keep.repeat_interleave(experts // num_expert_group, dim=1)
    ids = choice.masked_fill(~allowed, float("-inf")).topk(topk, dim=-1).indices
    return scores.gather(1, ids), ids


def _top2_sum(grouped):
    return grouped.topk(2, dim=-1).values.sum(-1)


def _group_max(grouped):
    return grouped.amax(-1)


def _emit(topk_weights, topk_ids, weights, ids, need_renorm, factor):
    if need_renorm:
        weights = weights / weights.sum(-1, keepdim=True)
    topk_weights.copy_(weights * factor)
    topk_ids.copy_(ids)


def _biased_selection(gating_output, correction_bias, topk, num_expert_group, topk_group):
    scores = torch.sigmoid(gating_output.float())
    choice = scores + correction_bias.float()
    return _select(scores, choice, topk, num_expert_group, topk_group, _top2_sum)


@compile_ops("module_moe_asm")
def biased_grouped_topk_hip(
    gating_output: torch.Tensor,
    correction_bias: torch.Tensor,
    topk_weights: torch.Tensor,
    topk_ids: torch.Tensor,
    num_expert_group: int,
    topk_grp: int,
    need_renorm: bool,
    routed_scaling_factor: float = 1.0,
) -> None:
    """DeepSeek-V3 routing kernel: sigmoid scores, bias-corrected group-limited top-k."""
    weights, ids = _biased_selection(gating_output, correction_bias, topk_ids.shape[1], num_expert_group, topk_grp)
    _emit(topk_weights, topk_ids, weights, ids, need_renorm, routed_scaling_factor)


if _state.fault_active("moe_missing_routed_scaling", "hip"):

    def biased_grouped_topk(
        gating_output: torch.Tensor,
        correction_bias: torch.Tensor,
        topk_weights: torch.Tensor,
        topk_ids: torch.Tensor,
        num_expert_group: int,
        topk_group: int,
        need_renorm: bool,
        routed_scaling_factor: float = 1.0,
    ):
        # The broken front end accepts routed_scaling_factor and never applies it.
        return biased_grouped_topk_hip(
            gating_output,
            correction_bias,
            topk_weights,
            topk_ids,
            num_expert_group,
            topk_group,
            need_renorm,
            1.0,
        )

else:

    def biased_grouped_topk(
        gating_output: torch.Tensor,
        correction_bias: torch.Tensor,
        topk_weights: torch.Tensor,
        topk_ids: torch.Tensor,
        num_expert_group: int,
        topk_group: int,
        need_renorm: bool,
        routed_scaling_factor: float = 1.0,
    ):
        """Plain front end of :func:`biased_grouped_topk_hip` (AITER also has a fused-gate path
        for very large token counts, which the simulator does not model)."""
        return biased_grouped_topk_hip(
            gating_output,
            correction_bias,
            topk_weights,
            topk_ids,
            num_expert_group,
            topk_group,
            need_renorm,
            routed_scaling_factor,
        )


@compile_ops("module_moe_asm")
def grouped_topk(
    gating_output: torch.Tensor,
    topk_weights: torch.Tensor,
    topk_ids: torch.Tensor,
    num_expert_group: int,
    topk_group: int,
    need_renorm: bool,
    is_softmax: bool = True,
    routed_scaling_factor: float = 1.0,
) -> None:
    """Group-limited top-k on softmax (or sigmoid) scores, groups ranked by their max."""
    scores = _SCORE_FUNCS["softmax" if is_softmax else "sigmoid"](gating_output.float())
    weights, ids = _select(scores, scores, topk_ids.shape[1], num_expert_group, topk_group, _group_max)
    _emit(topk_weights, topk_ids, weights, ids, need_renorm, routed_scaling_factor)


@compile_ops("module_moe_topk")
def topk_gating_fwd(
    topk_weights: torch.Tensor,
    topk_indices: torch.Tensor,
    gating_output: torch.Tensor,
    correction_bias: torch.Tensor,
    need_renorm: bool,
    routed_scaling_factor: float = 1.0,
    score_func: str = "sqrtsoftplus",
) -> None:
    """Raw top-k kernel; an empty ``correction_bias`` means no selection bias."""
    scores = _SCORE_FUNCS[score_func](gating_output.float())
    choice = scores if correction_bias.numel() == 0 else scores + correction_bias.float()
    ids = choice.topk(topk_indices.shape[1], dim=-1).indices
    _emit(topk_weights, topk_indices, scores.gather(1, ids), ids, need_renorm, routed_scaling_factor)


def topk_gating(
    topk_weights: torch.Tensor,
    topk_indices: torch.Tensor,
    gating_output: torch.Tensor,
    correction_bias: torch.Tensor | None = None,
    need_renorm: bool = True,
    routed_scaling_factor: float = 1.0,
    score_func: str = "sqrtsoftplus",
) -> None:
    """Top-k on ``score_func`` scores (+ optional selection bias), no expert groups."""
    if score_func not in _SCORE_FUNCS:
        raise AssertionError(f"Unknown score_func {score_func!r}, expected one of {sorted(_SCORE_FUNCS)}")
    if correction_bias is None:
        correction_bias = torch.empty(0, dtype=torch.float32, device=gating_output.device)
    topk_gating_fwd(
        topk_weights,
        topk_indices,
        gating_output,
        correction_bias,
        need_renorm,
        routed_scaling_factor,
        score_func,
    )
