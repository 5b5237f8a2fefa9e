"""MoE routing as the DeepSeek/Mixtral gates define it: expert scores, group-limited top-k.

One definition for the three places that recompute a router's choice: the
``routing_scale`` check (scores only), ``validate quant --model``'s expert
reference, and the simulated workload's BF16 reference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["ROUTING_SCORES", "routing_scores", "grouped_topk"]

#: Score functions a router may declare (``scoring_func``).
ROUTING_SCORES = ("softmax", "sigmoid", "sqrtsoftplus")


def routing_scores(logits: torch.Tensor, score: str) -> torch.Tensor:
    """Per-expert scores in fp32 from gate logits (``score``: one of :data:`ROUTING_SCORES`)."""
    logits = logits.to(torch.float32)
    if score == "softmax":
        return torch.softmax(logits, dim=-1)
    if score == "sigmoid":
        return torch.sigmoid(logits)
    if score == "sqrtsoftplus":
        return torch.sqrt(F.softplus(logits))
    raise ValueError(f"unknown routing score {score!r}")


def grouped_topk(
    scores: torch.Tensor,
    top_k: int,
    bias: torch.Tensor | None = None,
    n_group: int = 0,
    topk_group: int = 0,
    renormalize: bool = True,
    scale: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(weights, ids) of each token's top-k experts, ``scale`` included.

    With ``n_group``, only the ``topk_group`` best groups are eligible: groups rank
    by the sum of their top two bias-corrected scores when there is a correction
    ``bias`` (DeepSeek-V3 ``noaux_tc``), else by their best score. The bias only
    selects; the weights are the uncorrected scores, renormalized when asked.
    """
    choice = scores + bias.float() if bias is not None else scores
    if n_group:
        per_group = scores.shape[-1] // n_group
        grouped = choice.view(-1, n_group, per_group)
        group_score = grouped.topk(2, dim=-1).values.sum(-1) if bias is not None else grouped.amax(-1)
        keep = torch.zeros_like(group_score, dtype=torch.bool)
        keep.scatter_(1, group_score.topk(topk_group, dim=-1).indices, True)
        choice = choice.masked_fill(~keep.repeat_interleave(per_group, dim=1), float("-inf"))
    ids = choice.topk(top_k, dim=-1).indices
    weights = scores.gather(1, ids)
    if renormalize:
        weights = weights / weights.sum(-1, keepdim=True)
    return weights * scale, ids
