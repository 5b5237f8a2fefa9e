"""Shadow numerics for fused MoE (``numerics``): sampled tokens against a per-expert reference.

For a few sampled tokens, each chosen expert's weights are dequantized and
``sum_k topk_weight * w2 @ act(gate, up)`` is computed in fp32; the
kernel quantizes activations internally, so the tolerance is the chain
tolerance of the weight format.  ``act`` is the activation the call asked
for (:func:`gated_activation`): a kernel that applies SiLU where gpt-oss
Swiglu was requested loses the ``up + 1`` term and the 1.702 slope, which the
reference does not, so its output fails the comparison.  Work is per token and per chosen expert,
so it does not grow with batch size or expert count.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from quantguard.checks._common import dtype_name
from quantguard.checks.base import DataCheck, Finding, Measurement, ShadowResult, register_check
from quantguard.contracts.views import MoeView
from quantguard.numerics.dequant import expand_blocks_2d, fp8_values
from quantguard.numerics.layouts import unshuffle_weight
from quantguard.numerics.metrics import comparison_tensors, summarize
from quantguard.shadow.thresholds import Tolerance, tolerance_for

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.calls import CallRecord

__all__ = ["MoeNumerics", "gated_activation"]

_MOE_TOKENS = 4


def gated_activation(view: MoeView, gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """The expert's activation as the call requested it, in fp32.

    ``silu``: ``silu(gate) * up``.  ``swiglu`` (gpt-oss): gate clamped above at
    ``swiglu_limit``, up clamped to ``[-limit, limit]``, then
    ``gate * sigmoid(swiglu_alpha * gate) * (up + 1)``.
    """
    if view.activation == "silu":
        return F.silu(gate) * up
    if view.activation == "swiglu":
        limit = view.swiglu_limit
        gate = gate.clamp(max=limit)
        up = up.clamp(min=-limit, max=limit)
        return gate * torch.sigmoid(view.swiglu_alpha * gate) * (up + 1)
    raise ValueError(f"unmodelled MoE activation {view.activation!r}")


def _expert_weight(view: MoeView, weight: torch.Tensor, scale: torch.Tensor | None, expert: Any) -> torch.Tensor:
    w = weight[expert]
    if view.shuffled:
        w = unshuffle_weight(w)
    if view.quant == "none":
        return w.to(torch.float32)
    values = fp8_values(w, view.fp8_read_as if w.dtype != torch.int8 else None)
    if scale is None:
        return values
    s = scale[expert].to(torch.float32)
    if view.quant == "per_token":
        return values * s.reshape(-1, 1)
    return values * expand_blocks_2d(s, 128, 128, values.shape[0], values.shape[1])


@register_check
class MoeNumerics(DataCheck):
    name = "moe_numerics"
    reports = ("numerics",)
    summary = "sampled tokens of a fused MoE against a per-expert fp32 reference"

    def snapshot(self, call: CallRecord) -> None:
        view = call.view
        if not isinstance(view, MoeView) or not call.config.shadow or view.out is None:
            return
        tokens = int(view.hidden.shape[0])
        count = min(tokens, _MOE_TOKENS)
        step = max(1, tokens // count)
        start = int(call.runtime.sampler.draw() * step) if step > 1 else 0
        rows = slice(start, start + step * count, step)
        call.scratch["moe"] = {
            "x": view.hidden[rows].clone(),
            "w": view.topk_weight[rows].clone(),
            "ids": view.topk_ids[rows].clone(),
            "out": view.out[rows].clone(),
        }

    def measure(self, call: CallRecord) -> Measurement | None:
        snap = call.scratch.get("moe")
        if snap is None:
            return None
        view = call.view
        x = snap["x"].to(torch.float32)
        inter = int(view.w2.shape[-1])
        rows = []
        ids = snap["ids"].to(torch.int64)
        for t in range(x.shape[0]):
            total = torch.zeros(x.shape[-1], dtype=torch.float32, device=x.device)
            for j in range(ids.shape[1]):
                expert = ids[t, j]
                w1 = _expert_weight(view, view.w1, view.w1_scale, expert)
                w2 = _expert_weight(view, view.w2, view.w2_scale, expert)
                hidden = w1 @ x[t]
                activated = gated_activation(view, hidden[:inter], hidden[inter:])
                total = total + snap["w"][t, j].to(torch.float32) * (w2 @ activated)
            rows.append(total)
        reference = torch.stack(rows)
        return Measurement(
            comparison_tensors(snap["out"], reference),
            {"quant": view.quant, "w1_dtype": dtype_name(view.w1.dtype), "activation": view.activation},
        )

    def judge(
        self, call: CallRecord, measurement: Measurement, values: Mapping[str, Any]
    ) -> Iterable[Finding | ShadowResult]:
        metrics = summarize(values)
        family = "bf16" if measurement.context["quant"] == "none" else "fp8"
        base = tolerance_for("chain", family, call.target, call.layer, call.config.thresholds)
        tolerance = Tolerance(
            min(base.cosine, 0.995) if family == "fp8" else base.cosine, base.norm_band, base.sqnr_db, base.source
        )
        failures = tolerance.failures(metrics.cosine, metrics.norm_ratio, metrics.sqnr_db, metrics.nonfinite)
        fields = {
            "reference": "moe",
            **metrics.as_dict(),
            "threshold": tolerance.cosine,
            "passed": not failures,
            "shapes": {"hidden": list(call.view.hidden.shape), "w1": list(call.view.w1.shape)},
            "dtypes": {"w1": measurement.context["w1_dtype"]},
        }
        outcomes: list[Finding | ShadowResult] = [ShadowResult(fields, not failures, metrics.cosine)]
        if failures:
            outcomes.append(
                Finding(
                    "numerics",
                    f"fused MoE output vs per-expert {measurement.context['activation']} reference: "
                    f"{'; '.join(failures)}",
                    details={
                        "reference": "moe",
                        "activation": measurement.context["activation"],
                        "failed": failures,
                        **metrics.as_dict(),
                    },
                )
            )
        return outcomes
