"""Simulated ``aiter.fused_moe``: ``fused_moe`` on the CK 2-stage MoE kernels.

Per token, ``out = sum_k topk_weight[k] * w2[e_k] @ act(gate, up)`` with
``w1[e] = [gate; up]`` (E, 2 * inter, dim) and ``w2`` (E, dim, inter), both
(16, 16)-preshuffled as ATOM loads them. Activations are quantized with the
HIP quant of ``quant_type``; per_1x128 scales are transposed (bytes (G, M)):
freshly quantized with ``transpose_scale=True``, or, when the input arrives
already quantized, rewritten with ``aiter.partial_transpose`` (looked up on
the package at call time, as AITER does). The expert GEMMs live in a CK
module, so a CK-free install cannot run this function. The stage kernels are
``compile_ops`` ops taking the enums as integers, as in AITER; ``fused_moe``
itself stays a plain function here (AITER routes it through a
``torch_compile_guard`` op, ``fused_moe_``, which the simulator does not model).

``act`` is ``silu(gate) * up``, ``gelu(gate) * up``, or AITER's gpt-oss
Swiglu (``aiter.fused_moe.swiglu``, the Triton MoE ``_swiglu``): gate clamped
above at 7.0, up clamped to [-7, 7], ``gate * sigmoid(1.702 * gate) * (up + 1)``.
"""

import functools

import aiter
import torch
from aiter import get_hip_quant as get_quant

from quantguard.sim import _state
from quantguard.sim._kernels import fp8 as _fp8
from quantguard.sim._kernels import gemm as _gemm
from quantguard.sim._kernels import layout as _layout

from .jit.core import compile_ops
from .ops.enum import ActivationType, QuantType
from .utility import dtypes

__all__ = ["fused_moe"]

#: AITER's gpt-oss Swiglu constants (``aiter.fused_moe.swiglu``: alpha, and the clamp when
#: ``swiglu_limit`` is None, which ``fused_moe`` passes unless told otherwise).
_SWIGLU_ALPHA = 1.702
_SWIGLU_LIMIT = 7.0


def _silu_and_mul(gate, up):
    return torch.nn.functional.silu(gate) * up


def _gelu_and_mul(gate, up):
    return torch.nn.functional.gelu(gate) * up


def _swiglu(gate, up):
    gate = gate.clamp(max=_SWIGLU_LIMIT)
    up = up.clamp(min=-_SWIGLU_LIMIT, max=_SWIGLU_LIMIT)
    return gate * torch.sigmoid(_SWIGLU_ALPHA * gate) * (up + 1)


_ACTIVATIONS = {
    ActivationType.Silu: _silu_and_mul,
    ActivationType.Gelu: _gelu_and_mul,
    ActivationType.Swiglu: _swiglu,
}
if _state.fault_active("moe_swiglu_runs_silu", "ck"):
    # The broken stage-1 kernel instance applies plain SiLU where Swiglu was asked for.
    _ACTIVATIONS[ActivationType.Swiglu] = _silu_and_mul
_QUANT_TYPES = (QuantType.No, QuantType.per_Token, QuantType.per_1x128)


def _activation_rows(a, a_scale, quant_type):
    """Dequantized activation rows as the CK stage kernels read them."""
    if quant_type == QuantType.No:
        return a.float()
    values = _fp8.to_float(a, dtypes.fp8)
    rows, cols = values.shape
    if quant_type == QuantType.per_Token:
        return values * a_scale.float().reshape(-1, 1)[:rows]
    grid = _layout.read_col_major(a_scale, rows, -(-cols // 128))
    return values * _gemm.expand(grid, rows, cols, 1, 128)


def _expert_weight(w, w_scale, expert, quant_type):
    weight = _layout.unshuffle_weight(w[expert], (16, 16))
    if quant_type == QuantType.No:
        return weight.float()
    values = _fp8.to_float(weight, dtypes.fp8)
    if quant_type == QuantType.per_Token:
        return values * w_scale[expert].float().reshape(-1, 1)
    return values * _gemm.expand(w_scale[expert], *values.shape, 128, 128)


def _expert_gemm(rows, w, w_scale, pair_experts, quant_type):
    out = rows.new_zeros(rows.shape[0], w.shape[1])
    for expert in pair_experts.unique().tolist():
        picked = pair_experts == expert
        out[picked] = rows[picked] @ _expert_weight(w, w_scale, expert, quant_type).T
    return out


@compile_ops("module_moe_ck2stages")
def ck_moe_stage1(
    hidden_states: torch.Tensor,
    w1: torch.Tensor,
    out: torch.Tensor,
    pair_tokens: torch.Tensor,
    pair_experts: torch.Tensor,
    w1_scale: torch.Tensor | None = None,
    a1_scale: torch.Tensor | None = None,
    quant_type: int = 0,
    activation: int = 0,
) -> None:
    """Stage 1 into ``out`` (one row per (token, expert) pair): ``act(gate, up)``.

    ``quant_type``/``activation`` are the enums' integers, as AITER's kernels take them.
    """
    quant_type = QuantType(quant_type)
    rows = _activation_rows(hidden_states, a1_scale, quant_type)[pair_tokens]
    gate, up = _expert_gemm(rows, w1, w1_scale, pair_experts, quant_type).chunk(2, dim=-1)
    out.copy_(_ACTIVATIONS[ActivationType(activation)](gate, up))


@compile_ops("module_moe_ck2stages")
def ck_moe_stage2(
    inter_states: torch.Tensor,
    w2: torch.Tensor,
    out: torch.Tensor,
    pair_experts: torch.Tensor,
    w2_scale: torch.Tensor | None = None,
    a2_scale: torch.Tensor | None = None,
    quant_type: int = 0,
) -> None:
    """Stage 2 into ``out``: each pair's stage-1 row through its expert's ``w2``."""
    quant_type = QuantType(quant_type)
    rows = _activation_rows(inter_states, a2_scale, quant_type)
    out.copy_(_expert_gemm(rows, w2, w2_scale, pair_experts, quant_type))


def _quantize_activations(x, a_scale, quant_type, num_rows):
    if quant_type == QuantType.No:
        return x, None
    quant_func = get_quant(quant_type)
    if quant_type == QuantType.per_1x128:
        quant_func = functools.partial(quant_func, transpose_scale=True)
    return quant_func(x, scale=a_scale, quant_dtype=dtypes.fp8, num_rows=num_rows)


def fused_moe(
    hidden_states,
    w1,
    w2,
    topk_weight,
    topk_ids,
    expert_mask: torch.Tensor | None = None,
    activation=ActivationType.Silu,
    quant_type=QuantType.No,
    doweight_stage1=False,
    w1_scale: torch.Tensor | None = None,
    w2_scale: torch.Tensor | None = None,
    a1_scale: torch.Tensor | None = None,
    a2_scale: torch.Tensor | None = None,
    block_size_M=None,
    num_local_tokens: torch.Tensor | None = None,
    moe_sorting_dispatch_policy=0,
    dtype=None,
):
    """Fused MoE (quant_type No, per_Token or per_1x128) with top-k weighted combine.

    ``expert_mask`` marks local experts (others contribute nothing);
    ``num_local_tokens`` limits the rows processed; ``doweight_stage1`` applies
    the routing weight after the activation instead of after stage 2.
    """
    if quant_type not in _QUANT_TYPES:
        raise NotImplementedError(f"fused_moe: unsupported quant_type {quant_type}")
    if activation not in _ACTIVATIONS:
        raise NotImplementedError(f"fused_moe: unsupported activation {activation}")
    if block_size_M not in (None, 16, 32, 64, 128):
        raise ValueError(f"fused_moe: unsupported block_size_M {block_size_M}")
    if moe_sorting_dispatch_policy not in (0, 1, 2):
        raise ValueError(f"fused_moe: unknown moe_sorting_dispatch_policy {moe_sorting_dispatch_policy}")
    if a2_scale is not None:
        raise ValueError("fused_moe: stage-2 activations are quantized dynamically; a2_scale must be None")
    tokens, model_dim = hidden_states.shape
    device = hidden_states.device
    dtype = dtype or (dtypes.bf16 if hidden_states.dtype == dtypes.fp8 else hidden_states.dtype)
    num_rows = (
        num_local_tokens if num_local_tokens is not None else torch.tensor([tokens], dtype=torch.int32, device=device)
    )
    valid = min(tokens, int(num_rows.reshape(-1)[0]))

    if hidden_states.dtype == dtypes.fp8 and quant_type != QuantType.No:
        if a1_scale is None:
            raise AssertionError("a1_scale must be provided for quantized input for fused_moe")
        a1 = hidden_states
        if quant_type == QuantType.per_1x128:
            scale_t = torch.empty_like(a1_scale)
            aiter.partial_transpose(scale_t, a1_scale, num_rows=num_rows)
            a1_scale = scale_t
    else:
        a1, a1_scale = _quantize_activations(hidden_states, a1_scale, quant_type, num_rows)

    topk = topk_ids.shape[1]
    pair_tokens = torch.arange(valid, device=device).repeat_interleave(topk)
    pair_experts = topk_ids[:valid].reshape(-1).long()
    pair_weights = topk_weight[:valid].reshape(-1, 1).float()
    if expert_mask is not None:
        local = expert_mask[pair_experts] != 0
        pair_tokens, pair_experts, pair_weights = (
            pair_tokens[local],
            pair_experts[local],
            pair_weights[local],
        )

    stage1 = torch.empty(len(pair_tokens), w1.shape[1] // 2, dtype=torch.float32, device=device)
    ck_moe_stage1(
        a1[:valid],
        w1,
        stage1,
        pair_tokens,
        pair_experts,
        w1_scale,
        a1_scale,
        int(quant_type),
        int(activation),
    )
    if doweight_stage1:
        stage1 = stage1 * pair_weights
    a2, a2_scale = _quantize_activations(stage1.to(dtype), None, quant_type, None)
    stage2 = torch.empty(len(pair_experts), w2.shape[1], dtype=torch.float32, device=device)
    ck_moe_stage2(a2, w2, stage2, pair_experts, w2_scale, a2_scale, int(quant_type))
    if not doweight_stage1:
        stage2 = stage2 * pair_weights
    out = torch.zeros(tokens, model_dim, dtype=torch.float32, device=device)
    out.index_add_(0, pair_tokens, stage2)
    return out.to(dtype)
