"""MoE routing must honour what the caller asked for (``kwarg_ignored``).

:class:`RoutingScale`, ``routed_scaling_factor``.  The incident: an MoE
path forgot ``routed_scaling_factor`` — a pure magnitude error of the routed
output (DeepSeek-V4: 1.5x) that cosine alone never sees.  For the sampled tokens the routing weights a correct kernel
writes are recomputed from the gating logits and the experts it chose
(softmax / sigmoid / sqrt-softplus scores, renormalized when asked): their
ratio to the written weights must be the factor.  Only consistent ratios are
judged (a factor of exactly 1 where 2.5 was requested, or applied twice), so
an unmodelled routing variant stays quiet rather than noisy.

:class:`CustomRouting`, ``custom_routing_function``.  The incident:
DeepSeek-V4's hash layers pass ATOM's ``select_experts`` a function that looks
the experts up per token (``tid2eid``); it must take precedence over the
grouped/biased top-k, and a path that computed its own top-k from the gate
logits instead routed every token to plausible but wrong experts.  On a
sampled call the function is called again (``RoutingView.expected_routing``)
and its result compared with what the call returned, on the sampled tokens:
the same set of expert ids per token, and the same weight per id (allclose).

The function is called on the call's whole inputs, not on the sampled rows:
V4's hash routing reads the step's token ids from ATOM's forward context and
asserts that their count is the row count.  It must therefore be pure (its
result a function of its arguments and the step's context); it runs right
after the call, on the caller's thread and stream, with quantguard
suppressed.  If it writes into the buffers the call returned (V4's fused
shared-expert path writes into a global top-k buffer), those are restored
afterwards.  If it raises, that is the check's internal error: reported as
such, the call is not judged (fail open).  Never called on unsampled calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import torch

from quantguard.checks._common import sample_rows
from quantguard.checks.base import DataCheck, Finding, Measurement, register_check
from quantguard.contracts.views import RoutingView
from quantguard.numerics.routing import routing_scores
from quantguard.reentrancy import suppressed

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.calls import CallRecord

__all__ = ["CustomRouting", "RoutingScale"]

_CONSISTENT = 1e-3
_MATCH = 1e-2
#: Weights of one id match when ``|written - expected| <= _WEIGHT_ATOL + _WEIGHT_RTOL * |expected|``
#: (the same function on the same inputs: only a dtype cast may differ).
_WEIGHT_RTOL = 1e-2
_WEIGHT_ATOL = 1e-5


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


def _by_expert(weights: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's ``(ids, weights)`` sorted by id (ties by weight), so sets compare position by position."""
    ids = ids.to(torch.int64)
    weights = weights.to(torch.float32)
    order = weights.argsort(dim=-1, stable=True)
    ids, weights = ids.gather(-1, order), weights.gather(-1, order)
    order = ids.argsort(dim=-1, stable=True)
    return ids.gather(-1, order), weights.gather(-1, order)


def _shares_storage(a: Any, b: Any) -> bool:
    return (
        isinstance(a, torch.Tensor)
        and isinstance(b, torch.Tensor)
        and a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()
    )


@register_check
class CustomRouting(DataCheck):
    name = "custom_routing"
    reports = ("kwarg_ignored",)
    summary = "a custom routing function's result is what the routing returns (re-run on sampled calls)"

    def snapshot(self, call: CallRecord) -> None:
        view = call.view
        if not isinstance(view, RoutingView) or view.expected_routing is None:
            return
        written_weights, written_ids = view.topk_weights, view.topk_ids
        # Copies first: the function may write into the very buffers the call returned.
        kept_weights, kept_ids = written_weights.clone(), written_ids.clone()
        with suppressed():
            expected_weights, expected_ids = view.expected_routing()
        rows = sample_rows(call, int(written_ids.shape[0]))
        call.scratch["custom_routing"] = {
            "weights": kept_weights[rows],
            "ids": kept_ids[rows],
            "expected_weights": expected_weights[rows].clone(),
            "expected_ids": expected_ids[rows].clone(),
        }
        for written, kept, expected in (
            (written_weights, kept_weights, expected_weights),
            (written_ids, kept_ids, expected_ids),
        ):
            if _shares_storage(written, expected):
                written.copy_(kept)  # leave the host's routing as the call returned it

    def measure(self, call: CallRecord) -> Measurement | None:
        snap = call.scratch.get("custom_routing")
        if snap is None:
            return None
        tokens = int(snap["ids"].shape[0])
        if tokens == 0:
            return None
        context = {
            "tokens": tokens,
            "written_shape": list(snap["ids"].shape[1:]),
            "expected_shape": list(snap["expected_ids"].shape[1:]),
        }
        if snap["ids"].shape != snap["expected_ids"].shape or snap["weights"].shape != snap["expected_weights"].shape:
            return Measurement({}, context)
        ids, weights = _by_expert(snap["weights"], snap["ids"])
        expected_ids, expected_weights = _by_expert(snap["expected_weights"], snap["expected_ids"])
        same_ids = (ids == expected_ids).all(dim=-1)
        difference = (weights - expected_weights).abs()
        close = (difference <= _WEIGHT_ATOL + _WEIGHT_RTOL * expected_weights.abs()).all(dim=-1)
        error = torch.where(same_ids.unsqueeze(-1), difference, torch.zeros_like(weights))
        return Measurement(
            {
                "other_experts": (~same_ids).sum().to(torch.float64),
                "other_weights": (same_ids & ~close).sum().to(torch.float64),
                "max_weight_error": error.max().to(torch.float64) if error.numel() else error.new_zeros(()),
            },
            context,
        )

    def judge(self, call: CallRecord, measurement: Measurement, values: Mapping[str, Any]) -> Iterable[Finding]:
        context = measurement.context
        tokens = context["tokens"]
        if not values:
            return [
                Finding(
                    "kwarg_ignored",
                    f"custom_routing_function given; the routing returned top-k of shape {context['written_shape']} "
                    f"per token where the function returns {context['expected_shape']}",
                    details=dict(context),
                    variant="shape",
                )
            ]
        other_experts, other_weights = int(values["other_experts"]), int(values["other_weights"])
        details = {**context, "other_experts": other_experts, "other_weights": other_weights}
        if other_experts:
            return [
                Finding(
                    "kwarg_ignored",
                    f"custom_routing_function given; {other_experts} of {tokens} sampled tokens were routed to "
                    "other experts than it chose (the routing computed its own top-k)",
                    details=details,
                    variant="experts",
                )
            ]
        if other_weights:
            return [
                Finding(
                    "kwarg_ignored",
                    f"custom_routing_function given; {other_weights} of {tokens} sampled tokens carry other "
                    f"weights than it produced (max error {values['max_weight_error']:.3g})",
                    details={**details, "max_weight_error": values["max_weight_error"]},
                    variant="weights",
                )
            ]
        return []
