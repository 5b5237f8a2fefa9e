"""MoE routing must apply ``routed_scaling_factor`` (``kwarg_ignored``).

The incident: an MoE path forgot ``routed_scaling_factor`` — a pure
magnitude error of the routed output (DeepSeek-V4: 1.5x) that cosine alone
never sees.  For the sampled tokens the routing weights a correct kernel
writes are recomputed from the gating logits and the experts it chose
(softmax / sigmoid / sqrt-softplus scores, renormalized when asked): their
ratio to the written weights must be the factor.  Only consistent ratios are
judged (a factor of exactly 1 where 2.5 was requested, or applied twice), so
an unmodelled routing variant stays quiet rather than noisy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from quantguard.checks._common import sample_rows
from quantguard.checks.base import DataCheck, Finding, Measurement, register_check
from quantguard.contracts.views import RoutingView

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.calls import CallRecord

__all__ = ["RoutingScale", "routing_scores"]

_CONSISTENT = 1e-3
_MATCH = 1e-2


def routing_scores(logits: torch.Tensor, score: str) -> torch.Tensor:
    logits = logits.to(torch.float32)
    if score == "softmax":
        return torch.softmax(logits, dim=-1)
    if score == "sigmoid":
        return torch.sigmoid(logits)
    if score == "sqrtsoftplus":
        return torch.sqrt(F.softplus(logits))
    raise ValueError(f"unknown routing score {score!r}")


@register_check
class RoutingScale(DataCheck):
    name = "routing_scale"
    reports = ("kwarg_ignored",)
    summary = "top-k routing weights carry routed_scaling_factor (recomputed from the logits)"

    def snapshot(self, call: CallRecord) -> None:
        view = call.view
        if not isinstance(view, RoutingView) or view.score not in ("softmax", "sigmoid", "sqrtsoftplus"):
            return
        rows = sample_rows(call, int(view.gating.shape[0]))
        call.scratch["routing"] = {
            "logits": view.gating[rows].clone(),
            "weights": view.topk_weights[rows].clone(),
            "ids": view.topk_ids[rows].clone(),
        }

    def measure(self, call: CallRecord) -> Measurement | None:
        snap = call.scratch.get("routing")
        if snap is None:
            return None
        view = call.view
        scores = routing_scores(snap["logits"], view.score)
        ids = snap["ids"].to(torch.int64)
        k = ids.shape[-1]
        weights = snap["weights"][..., :k].to(torch.float32)
        chosen = scores.gather(-1, ids.clamp(0, scores.shape[-1] - 1))
        unit = chosen / chosen.sum(-1, keepdim=True).clamp(min=1e-20) if view.renormalize else chosen
        usable = unit.abs() > 1e-12
        ratio = torch.where(usable, weights / unit.where(usable, torch.ones_like(unit)), torch.zeros_like(unit))
        count = usable.sum().to(torch.float64)
        mean = ratio.sum().to(torch.float64) / count.clamp(min=1)
        spread = torch.where(usable, (ratio - mean.to(torch.float32)).abs(), torch.zeros_like(ratio)).max()
        return Measurement(
            {"mean": mean, "spread": spread.to(torch.float64), "count": count},
            {"tokens": int(weights.shape[0]), "top_k": int(k)},
        )

    def judge(self, call: CallRecord, measurement: Measurement, values: Mapping[str, Any]) -> Iterable[Finding]:
        view = call.view
        factor, mean, spread = view.routed_scaling_factor, values["mean"], values["spread"]
        if values["count"] == 0 or mean == 0 or spread > _CONSISTENT * abs(mean) + 1e-6:
            return []
        if abs(mean - factor) <= _MATCH * abs(factor):
            return []
        details = {
            "routed_scaling_factor": factor,
            "applied_factor": mean,
            "score": view.score,
            "renormalize": view.renormalize,
            **measurement.context,
        }
        if abs(mean - 1.0) <= _MATCH and factor != 1.0:
            return [
                Finding(
                    "kwarg_ignored",
                    f"routed_scaling_factor={factor:g} requested; top-k weights carry "
                    f"{mean:.3g}x (the factor was never applied: routed output {1 / factor:.3g}x too small)",
                    details=details,
                )
            ]
        if abs(mean - factor * factor) <= _MATCH * factor * factor and factor != 1.0:
            return [
                Finding(
                    "kwarg_ignored",
                    f"routed_scaling_factor={factor:g} applied twice: top-k weights carry {mean:.3g}x",
                    details=details,
                )
            ]
        return [
            Finding(
                "kwarg_ignored",
                f"routed_scaling_factor={factor:g} requested; top-k weights carry {mean:.3g}x",
                details=details,
            )
        ]
