"""A model's routed experts through AITER's ``fused_moe``, as ATOM's FusedMoE runs them, judged like a chain.

ATOM's FP8 MoE methods (``atom/model_ops/moe.py``: ``Fp8MoEMethod.apply``)
route with ``FusedMoE.select_experts`` (DeepSeek-V3: ``biased_grouped_topk``
with ``routed_scaling_factor`` fused into the weights) and hand the
(16, 16)-preshuffled experts, ``w1`` (E, 2 * inter, hidden) gate then up and
``w2`` (E, hidden, inter), with their scales to ``aiter.fused_moe.fused_moe``
(``QuantType.per_1x128`` or ``per_Token``, ``ActivationType.Silu``), which
quantizes the activations itself. One case per token count M compares the
output two ways, as :func:`~quantguard.validate.quant.run.run_case` does for
a linear chain:

* vs matched: the same quantized experts, activations quantized by the same
  AITER producer (``get_hip_quant``) at both stages, dequantized
  (:mod:`quantguard.numerics.dequant`), fp32 math,
  ``sum_k topk_weight * w2 @ silu(gate) * up`` with the routing recomputed in
  torch from the same gate logits, ``routed_scaling_factor`` included; the
  kernel and the routing alone, so the gate is tight;
* vs 16-bit: the unquantized experts on the same routing (:func:`moe_limits`).

The routing kernel's ids and weights are compared with the recomputed ones
too, so a dropped factor or a wrong expert is named as a routing fault.
Ungrouped softmax top-k (Mixtral, Qwen-MoE) is routed in torch: ATOM's
``fused_topk`` is not exercised.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from quantguard.numerics.dequant import dequantize_rows
from quantguard.numerics.routing import ROUTING_SCORES, grouped_topk, routing_scores
from quantguard.validate.quant.run import (
    CaseResult,
    Limits,
    buffer_info,
    collect_events,
    compare,
    error_reason,
    judge,
    seeded_activation,
)
from quantguard.validate.quantize_kernels import QuantWeight, UnsupportedPath, entry_point, quantize_weight

__all__ = [
    "MOE_SCHEMES",
    "MoePath",
    "MoeShape",
    "expected_expert_scales",
    "fit_to_memory",
    "moe_limits",
    "moe_path",
    "reference_routing",
    "run_moe",
    "scales_ok",
]

#: validate-quant scheme -> the ``aiter.QuantType`` ATOM's FP8 MoE method passes to ``fused_moe``.
MOE_SCHEMES: dict[str, str] = {"fp8_blockscale": "per_1x128", "fp8_per_token": "per_Token"}
_FUSED_MOE = "aiter.fused_moe.fused_moe"
_BLOCK = 128


@dataclass(frozen=True)
class MoeShape:
    """One MoE layer's routed experts and routing, from the model config (``n_group`` 0: no expert groups)."""

    experts: int
    hidden: int
    inter: int
    top_k: int
    n_group: int = 0
    topk_group: int = 0
    routed_scaling_factor: float = 1.0
    scoring: str = "softmax"
    correction_bias: bool = False
    renormalize: bool = True
    #: the model's expert count when fewer are measured (:func:`fit_to_memory`); 0: all of them
    model_experts: int = 0

    @property
    def routing(self) -> str:
        """The AITER routing entry point ATOM's ``select_experts`` calls ("" when quantguard routes in torch)."""
        if not self.n_group:
            return ""
        return "aiter.ops.topk.biased_grouped_topk" if self.correction_bias else "aiter.ops.topk.grouped_topk"

    def describe(self) -> str:
        """``8 experts 256->2x128->256, top-2, 4 groups top-2, x2.5``: the report's shape column."""
        groups = f", {self.n_group} groups top-{self.topk_group}" if self.n_group else ""
        scaled = f", x{self.routed_scaling_factor:g}" if self.routed_scaling_factor != 1.0 else ""
        count = f"{self.experts} of {self.model_experts}" if self.model_experts else str(self.experts)
        return f"{count} experts {self.hidden}->2x{self.inter}->{self.hidden}, top-{self.top_k}{groups}{scaled}"

    def problem(self) -> str:
        """Why ATOM could not build this routing ("" when it can)."""
        if self.top_k < 1 or self.top_k > self.experts:
            return f"num_experts_per_tok {self.top_k} with {self.experts} experts"
        if self.scoring not in ROUTING_SCORES:  # as ATOM's
            return f"scoring_func {self.scoring!r}"
        if self.n_group:
            per_group = self.experts // self.n_group
            if self.experts % self.n_group or not 1 <= self.topk_group <= self.n_group:
                return f"n_group {self.n_group} / topk_group {self.topk_group} with {self.experts} experts"
            if self.top_k > self.topk_group * per_group or (self.correction_bias and per_group < 2):
                return f"top-{self.top_k} from {self.topk_group} groups of {per_group} experts"
        return ""


@dataclass(frozen=True)
class MoePath:
    """What a MoE measurement runs: ``fused_moe`` with ATOM's quant type, after ATOM's routing kernel."""

    scheme: str
    moe: MoeShape

    @property
    def quant_type(self) -> str:
        return MOE_SCHEMES[self.scheme]

    @property
    def name(self) -> str:
        return f"fused_moe (QuantType.{self.quant_type})"

    @property
    def entry_points(self) -> tuple[str, ...]:
        return tuple(path for path in (self.moe.routing, _FUSED_MOE) if path)


def moe_path(scheme: str, moe: MoeShape, ck_free: bool) -> tuple[MoePath | None, str]:
    """The path ATOM runs these quantized experts on here, or why validate quant does not run them."""
    if scheme not in MOE_SCHEMES:
        return None, (
            f"{moe.experts} routed experts ({scheme}): validate quant runs fused_moe for "
            "FP8 per_1x128 and per_Token experts only"
        )
    if ck_free:
        return None, (
            f"{moe.experts} routed experts: AITER's fused_moe is a CK module, which a CK-free build cannot build, "
            "and ATOM main's FP8 MoE method (Fp8MoEMethod) has no Triton path: these experts cannot run in this "
            "build (a CK-free readiness gap, not a pass; `validate ckfree` checks the deployment)"
        )
    problem = moe.problem()
    if problem:
        return None, f"{moe.experts} routed experts: the config's routing is inconsistent ({problem})"
    if scheme == "fp8_blockscale" and (moe.hidden % _BLOCK or moe.inter % _BLOCK):
        return None, f"hidden {moe.hidden} / moe_intermediate_size {moe.inter}: not multiples of the 128x128 blocks"
    return MoePath(scheme, moe), ""


def expected_expert_scales(path: MoePath) -> dict[str, tuple[tuple[int, ...], str]]:
    """w1/w2 scale shapes and dtype ATOM's FusedMoE creates for the quant type (``create_weights``)."""
    moe = path.moe
    if path.quant_type == "per_1x128":
        rows1, cols1 = -(-2 * moe.inter // _BLOCK), -(-moe.hidden // _BLOCK)
        rows2, cols2 = -(-moe.hidden // _BLOCK), -(-moe.inter // _BLOCK)
        return {
            "w1_scale": ((moe.experts, rows1, cols1), "float32"),
            "w2_scale": ((moe.experts, rows2, cols2), "float32"),
        }
    return {
        "w1_scale": ((moe.experts, 2 * moe.inter, 1), "float32"),
        "w2_scale": ((moe.experts, moe.hidden, 1), "float32"),
    }


def scales_ok(path: MoePath, case: CaseResult) -> bool:
    """Whether the expert scales passed to fused_moe have the shape and dtype ATOM's layer holds."""
    return all(
        key in case.buffers and (case.buffers[key][0], case.buffers[key][2]) == expected
        for key, expected in expected_expert_scales(path).items()
    )


def moe_limits(limits: Limits) -> Limits:
    """The scheme's limits for a whole expert computation.

    Three quantized products run in a row (gate, up, then down on their
    requantized product), so against the 16-bit experts the output keeps
    about three times a linear layer's cosine loss (measured: 0.9980-0.9986
    where the same FP8 blocks give 0.9994 on one GEMM); the norm band is
    doubled. The matched gate is the linear layers' own: it judges the kernel.
    """
    return Limits(1.0 - 3.0 * (1.0 - limits.chain_cosine), 2.0 * limits.norm_tolerance, limits.matched_cosine)


def _aiter() -> Any:
    return importlib.import_module("aiter")


# -- operands -----------------------------------------------------------------------------------


@dataclass
class _Experts:
    """Both expert matrices: 16-bit and checkpoint-quantized (plain layout, ATOM's scale shapes).

    Dequantized experts are made one at a time, when routed to: a full-size
    model's fp32 experts would not fit next to the others.
    """

    w1: torch.Tensor
    w2: torch.Tensor
    w1_q: torch.Tensor
    w1_scale: torch.Tensor
    w2_q: torch.Tensor
    w2_scale: torch.Tensor
    granularity: str

    def dequantized(self, name: str) -> Callable[[int], torch.Tensor]:
        """Expert ``e`` of ``w1``/``w2`` in fp32, as its quantized values and scale stand for it."""
        values, scale = getattr(self, f"{name}_q"), getattr(self, f"{name}_scale")
        return lambda e: QuantWeight(values[e], scale[e], self.granularity, torch.bfloat16).dequantized

    def unquantized(self, name: str) -> Callable[[int], torch.Tensor]:
        weight = getattr(self, name)
        return lambda e: weight[e].float()


def _experts(path: MoePath, seed: int, device: torch.device) -> _Experts:
    """Seeded random experts, made and quantized one at a time on ``device`` (a full-size model has GBs of them)."""
    moe = path.moe
    generator = torch.Generator(device).manual_seed(seed * 1_000_003 + moe.experts * 7919 + moe.hidden * 31 + moe.inter)
    tensors: list[torch.Tensor] = []
    granularity = ""
    for rows, cols in ((2 * moe.inter, moe.hidden), (moe.hidden, moe.inter)):
        weights = torch.empty(moe.experts, rows, cols, dtype=torch.bfloat16, device=device)
        values: torch.Tensor | None = None
        scales: torch.Tensor | None = None
        for expert in range(moe.experts):
            weights[expert] = torch.randn(rows, cols, generator=generator, device=device) * 0.02
            quantized = quantize_weight(path.scheme, weights[expert])
            scale = quantized.scale.reshape(quantized.scale.shape[0], -1).float()
            if values is None or scales is None:
                values = quantized.values.new_empty(moe.experts, *quantized.values.shape)
                scales = scale.new_empty(moe.experts, *scale.shape)
            values[expert], scales[expert] = quantized.values, scale
            granularity = quantized.granularity
        assert values is not None and scales is not None
        tensors += [weights, values, scales]
    w1, w1_q, w1_scale, w2, w2_q, w2_scale = tensors
    return _Experts(w1, w2, w1_q, w1_scale, w2_q, w2_scale, granularity)


#: At most this much memory holds one MoE measurement's experts (16-bit and quantized copies).
MAX_EXPERT_BYTES = 4 << 30


def _free_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 16 << 30


def fit_to_memory(moe: MoeShape, device: torch.device, budget: int | None = None) -> MoeShape:
    """``moe`` with as many experts as fit the budget (min of :data:`MAX_EXPERT_BYTES` and a quarter of free memory).

    A full-size model's experts do not fit a CPU: DeepSeek-V3's 256 hold 34 GB
    in bf16 plus FP8. Fewer experts with the model's own per-expert shapes,
    top-k and group structure run the same kernels on the same shapes; the
    report says how many of the model's were measured.
    """
    per_expert = 3 * 3 * moe.hidden * moe.inter  # w1 (2*inter, hidden) + w2 (hidden, inter): bf16 + fp8 bytes
    budget = budget if budget is not None else min(MAX_EXPERT_BYTES, _free_bytes(device) // 4)
    room = max(1, budget // max(per_expert, 1))
    if moe.experts <= room:
        return moe
    if moe.n_group:
        per_group_needed = max(2 if moe.correction_bias else 1, -(-moe.top_k // max(moe.topk_group, 1)))
        count = moe.n_group * max(per_group_needed, room // moe.n_group)
    else:
        count = max(moe.top_k, room)
    if count >= moe.experts:
        return moe
    return dataclasses.replace(moe, experts=count, model_experts=moe.experts)


def _inputs(path: MoePath, m: int, seed: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Seeded bf16 tokens (a few outlier channels), fp32 gate logits and correction bias."""
    moe = path.moe
    generator = torch.Generator().manual_seed(seed * 1_000_003 + m * 7919 + moe.experts * 31 + moe.hidden + 1)
    x = seeded_activation(generator, m, moe.hidden)
    logits = torch.randn(m, moe.experts, generator=generator)
    bias = torch.randn(moe.experts, generator=generator) * 0.1 if moe.correction_bias else torch.zeros(moe.experts)
    return x.to(torch.bfloat16).to(device), logits.to(device), bias.to(device)


# -- routing ------------------------------------------------------------------------------------


def reference_routing(moe: MoeShape, logits: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(weights, ids) as DeepSeek's ``noaux_tc`` gate / grouped top-k / softmax top-k define them, factor included.

    Groups rank by the sum of their top two (bias-corrected) scores with a
    correction bias, else by their best score; the bias only selects, the
    weights are the uncorrected scores, renormalized when the config says so.
    """
    bias = bias if moe.correction_bias else None
    return grouped_topk(
        routing_scores(logits, moe.scoring),
        moe.top_k,
        bias,
        moe.n_group,
        moe.topk_group,
        moe.renormalize,
        moe.routed_scaling_factor,
    )


def _kernel_routing(moe: MoeShape, logits: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """ATOM's ``select_experts`` for grouped routing: AITER's kernel writes (weights, ids), factor fused."""
    weights = torch.empty(logits.shape[0], moe.top_k, dtype=torch.float32, device=logits.device)
    ids = torch.empty(logits.shape[0], moe.top_k, dtype=torch.int32, device=logits.device)
    routing = entry_point(moe.routing)
    if moe.correction_bias:
        routing(logits, bias, weights, ids, moe.n_group, moe.topk_group, moe.renormalize, moe.routed_scaling_factor)
    else:
        routing(
            logits,
            weights,
            ids,
            moe.n_group,
            moe.topk_group,
            moe.renormalize,
            moe.scoring == "softmax",
            moe.routed_scaling_factor,
        )
    return weights, ids


def _routing_reasons(
    moe: MoeShape, weights: torch.Tensor, ids: torch.Tensor, ref_weights: torch.Tensor, ref_ids: torch.Tensor
) -> list[str]:
    """What differs between the routing kernel's output and the recomputed routing (same order per token)."""
    ids_sorted, order = ids.long().sort(dim=-1)
    ref_sorted, ref_order = ref_ids.long().sort(dim=-1)
    wrong = (ids_sorted != ref_sorted).any(dim=-1)
    reasons = []
    if wrong.any():
        reasons.append(
            f"routing: {int(wrong.sum())} of {ids.shape[0]} tokens sent to other experts than "
            f"{moe.routing.rsplit('.', 1)[-1]}'s definition picks"
        )
    right = ~wrong
    if right.any():
        got = weights.float().gather(1, order)[right]
        want = ref_weights.gather(1, ref_order)[right]
        if not torch.allclose(got, want, rtol=1e-3, atol=1e-5):
            ratio = float(got.sum() / want.sum()) if float(want.sum()) else float("nan")
            factor = (
                f" (routed_scaling_factor {moe.routed_scaling_factor:g} not applied?)"
                if abs(ratio * moe.routed_scaling_factor - 1.0) < 1e-3
                else ""
            )
            reasons.append(f"routing: topk_weights are {ratio:.4g}x the reference's{factor}")
    return reasons


# -- the expert computation, in fp32 --------------------------------------------------------------


def _quant_dequant(path: MoePath, rows: torch.Tensor) -> torch.Tensor:
    """``rows`` through the AITER producer fused_moe uses for the quant type, dequantized (plain scale layout)."""
    aiter = _aiter()
    quant_type = getattr(aiter.QuantType, path.quant_type)
    values, scales = aiter.get_hip_quant(quant_type)(rows.contiguous(), quant_dtype=aiter.dtypes.fp8)
    group = _BLOCK if path.quant_type == "per_1x128" else None
    return dequantize_rows(values, scales.float().reshape(rows.shape[0], -1), group)


def _experts_out(
    moe: MoeShape,
    x: torch.Tensor,
    weights: torch.Tensor,
    ids: torch.Tensor,
    w1: Callable[[int], torch.Tensor],
    w2: Callable[[int], torch.Tensor],
    requantize: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """``sum_k weights[:, k] * w2(e) @ silu(gate) * up`` in fp32; ``requantize`` is applied to the stage-1 rows."""
    tokens, top_k = ids.shape
    pair_tokens = torch.arange(tokens, device=x.device).repeat_interleave(top_k)
    pair_experts = ids.reshape(-1).long()
    rows = x.float()[pair_tokens]
    routed = [(expert, pair_experts == expert) for expert in pair_experts.unique().tolist()]
    gate_up = rows.new_zeros(rows.shape[0], 2 * moe.inter)
    for expert, picked in routed:
        gate_up[picked] = rows[picked] @ w1(expert).T
    gate, up = gate_up.chunk(2, dim=-1)
    inter = torch.nn.functional.silu(gate) * up
    if requantize is not None:
        inter = requantize(inter.to(torch.bfloat16))
    down = rows.new_zeros(rows.shape[0], moe.hidden)
    for expert, picked in routed:
        down[picked] = inter[picked] @ w2(expert).T
    out = torch.zeros(tokens, moe.hidden, device=x.device)
    out.index_add_(0, pair_tokens, down * weights.reshape(-1, 1).float())
    return out


def _fused_moe(path: MoePath, experts: _Experts, x: torch.Tensor, weights: torch.Tensor, ids: torch.Tensor) -> Any:
    """ATOM's call: preshuffled experts (``shuffle_weights``), its quant type, SiLU, the routing as given."""
    aiter = _aiter()
    shuffle = entry_point("aiter.ops.shuffle.shuffle_weight")
    return entry_point(_FUSED_MOE)(
        x,
        shuffle(experts.w1_q, layout=(16, 16)),
        shuffle(experts.w2_q, layout=(16, 16)),
        weights,
        ids,
        activation=aiter.ActivationType.Silu,
        quant_type=getattr(aiter.QuantType, path.quant_type),
        w1_scale=experts.w1_scale,
        w2_scale=experts.w2_scale,
    )


def run_moe(
    path: MoePath,
    tokens: Sequence[int],
    limits: Limits,
    seed: int,
    device: torch.device,
    events: list | None,
) -> list[CaseResult]:
    """One case per M: routing kernel and fused_moe vs the matched and 16-bit references; never raises for a kernel."""
    path = dataclasses.replace(path, moe=fit_to_memory(path.moe, device))
    moe, limits = path.moe, moe_limits(limits)
    try:
        experts = _experts(path, seed, device)
    except (UnsupportedPath, ImportError, RuntimeError) as exc:
        return [
            CaseResult(path, (m, moe.hidden, moe.inter), "SKIP", [f"cannot quantize the experts: {exc}"])
            for m in tokens
        ]
    cases = []
    for m in tokens:
        started = time.perf_counter()
        result = CaseResult(path, (m, moe.hidden, moe.inter), "PASS")
        first = len(events) if events is not None else 0
        x, logits, bias = _inputs(path, m, seed, device)
        ref_weights, ref_ids = reference_routing(moe, logits, bias)
        try:
            weights, ids = _kernel_routing(moe, logits, bias) if moe.routing else (ref_weights, ref_ids.int())
            out = _fused_moe(path, experts, x, weights, ids)
        except UnsupportedPath as exc:
            result.status, result.reasons = "SKIP", [str(exc)]
        except NotImplementedError as exc:  # this AITER's fused_moe lacks the quant type: nothing to judge
            result.status, result.reasons = "SKIP", [f"fused_moe: {exc}"]
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - a kernel (or a JIT build) failing is the finding
            result.status, result.reasons = "ERROR", [error_reason(exc)]
        else:
            result.buffers = {"w1_scale": buffer_info(experts.w1_scale), "w2_scale": buffer_info(experts.w2_scale)}
            result.reasons += _routing_reasons(moe, weights, ids, ref_weights, ref_ids)
            if not scales_ok(path, result):
                result.reasons.append("expert scales: shape or dtype differs from ATOM's layer")
            matched = _experts_out(
                moe,
                _quant_dequant(path, x),
                ref_weights,
                ref_ids,
                experts.dequantized("w1"),
                experts.dequantized("w2"),
                lambda rows: _quant_dequant(path, rows),
            )
            result.matched_metrics = compare(out, matched.to(out.dtype))
            unquantized = _experts_out(
                moe, x, ref_weights, ref_ids, experts.unquantized("w1"), experts.unquantized("w2")
            )
            result.chain_metrics = compare(out, unquantized)
            collect_events(result, events, first)
            judge(result, limits)
        result.seconds = time.perf_counter() - started
        cases.append(result)
    return cases
