"""Simulated ``atom.model_ops.moe``: routed experts with AITER routing and fused MoE.

Routing is ``FusedMoE.select_experts`` (a staticmethod with ATOM main's
signature): a ``custom_routing_function`` (DeepSeek-V4's hash layers) takes
precedence and its ``(topk_weights, topk_ids)`` are returned as they are;
otherwise ``biased_grouped_topk`` with ``routed_scaling_factor`` fused into the
weights (ATOM's ``is_rocm_aiter_fuse_routed_scaling_factor()`` is true), so a
missing factor is a pure magnitude error of the routed output. Expert GEMMs
run in AITER's ``fused_moe`` (CK), or in a Triton path that sorts token
copies by expert, quantizes them once, transposes the first ``num_rows``
scale rows with ``partial_transpose`` and calls the preshuffle blockscale
GEMM per expert.

As on ATOM main, ``FusedMoE`` is a ``LazyMoEWrapper`` (its instances belong to
the class behind it) and each layer has a quant method chosen from its
checkpoint format: ``UnquantizedFusedMoEMethod``, ``Fp8MoEMethod``,
``CompressedTensorsFp8MoEMethod`` (per-token/per-tensor FP8) or
``Mxfp4MoEMethod`` (block-quantized experts). Which path a layer runs is the
quant method's per-instance ``use_triton``; only ``Mxfp4MoEMethod`` can
choose Triton, fixed when the layer is built (``ATOM_USE_TRITON_MOE`` if
set, else gfx94x always, gfx95x with ``ATOM_USE_TRITON_GEMM``); CK-free is not
consulted. The simulator gives ``Mxfp4MoEMethod`` FP8 128x128 block experts
(ATOM's method also handles per_1x128) because its Triton expert path is the
FP8 blockscale GEMM. The loader calls ``FusedMoE.process_weights_after_loading()``
and then the quant method's ``process_weights_after_loading(layer)``, which
normalizes (gfx942) and shuffles the experts.

With ``atom.utils.envs.CK_FREE_BRANCH`` (``ATOM_CK_FREE`` set before import)
the CK-free branch is modelled instead: ``FusedMoE`` is a plain class with no
quant method, every layer follows the module-level ``_use_triton_experts()``
(``use_triton_gemm()``, which ``ATOM_CK_FREE=1`` forces) at each call, and
``FusedMoE.process_weights_after_loading()`` prepares the experts itself.
"""

import functools

import torch
from aiter import (
    ActivationType,
    QuantType,
    biased_grouped_topk,
    dtypes,
    get_hip_quant,
    grouped_topk,
    partial_transpose,
    topk_gating,
)
from aiter.fused_moe import fused_moe
from aiter.jit.utils.chip_info import get_gfx
from atom.model_ops.base_config import QuantizeMethodBase
from atom.model_ops.linear import fp8_checkpoint_fixup
from atom.model_ops.utils import atom_parameter, shuffle_weights
from atom.plugin.vllm.moe import FusedMoEDecoratorForPluginMode
from atom.utils import envs
from torch import nn

from quantguard.sim import _state

__all__ = [
    "CompressedTensorsFp8MoEMethod",
    "FusedMoE",
    "FusedMoEMethodBase",
    "Fp8MoEMethod",
    "Mxfp4MoEMethod",
    "UnquantizedFusedMoEMethod",
]

_IGNORES_CK_FREE = _state.fault_active("atom_ignores_ck_free", "atom")
_IGNORES_CUSTOM_ROUTING = _state.fault_active("custom_routing_ignored", "atom")

if envs.CK_FREE_BRANCH:
    # The branch's MoE follows linear's selector, bound here by name.
    from atom.model_ops.linear import use_triton_gemm

    if _IGNORES_CK_FREE:

        def _use_triton_experts() -> bool:
            # The broken MoE path never consults the CK-free switch.
            return False

    else:
        _use_triton_experts = use_triton_gemm

if not envs.CK_FREE_BRANCH or use_triton_gemm():
    # ATOM main binds its Triton MoE kernels at import; the CK-free branch only when use_triton_gemm().
    from aiter.ops.triton.gemm.basic.gemm_a8w8_blockscale import (
        gemm_a8w8_blockscale_preshuffle,
    )
else:
    gemm_a8w8_blockscale_preshuffle = None


def _prepare_experts(layer) -> None:
    """Normalize e4m3fn experts on gfx942 and preshuffle them for the MoE kernels."""
    if layer.params_dtype == torch.float8_e4m3fnuz:
        for name in ("w13", "w2"):
            weight, scale = getattr(layer, f"{name}_weight"), getattr(layer, f"{name}_weight_scale")
            weight.data, scale.data, _ = fp8_checkpoint_fixup(weight.data, scale.data)
    shuffle_weights(layer.w13_weight, layer.w2_weight)


# ATOM main's quant methods; each defines its own post-load step, as in ATOM.


class FusedMoEMethodBase(QuantizeMethodBase):
    """A layer's expert scheme; ``use_triton`` says which expert kernels it runs (fixed at construction)."""

    def __init__(self, quant_type: QuantType):
        self.quant_type = quant_type
        self.use_triton = False


class UnquantizedFusedMoEMethod(FusedMoEMethodBase):
    """BF16 experts."""

    def process_weights_after_loading(self, layer: nn.Module) -> None:
        shuffle_weights(layer.w13_weight, layer.w2_weight)


class Fp8MoEMethod(FusedMoEMethodBase):
    """Per-token or per-tensor FP8 experts: always AITER's fused MoE (no Triton switch on ATOM main)."""

    def process_weights_after_loading(self, layer: nn.Module) -> None:
        _prepare_experts(layer)


class CompressedTensorsFp8MoEMethod(FusedMoEMethodBase):
    """FP8 experts from a compressed-tensors checkpoint (``quant_method="compressed-tensors"``)."""

    def process_weights_after_loading(self, layer: nn.Module) -> None:
        _prepare_experts(layer)


class Mxfp4MoEMethod(FusedMoEMethodBase):
    """Block-quantized experts, the one MoE method with a per-instance Triton switch."""

    def __init__(self, quant_type: QuantType):
        super().__init__(quant_type)
        gfx = get_gfx()
        if envs.is_set("ATOM_USE_TRITON_MOE"):
            self.use_triton = envs.ATOM_USE_TRITON_MOE
        else:
            self.use_triton = gfx.startswith("gfx94") or (gfx.startswith("gfx95") and envs.ATOM_USE_TRITON_GEMM)
        if _IGNORES_CK_FREE:
            self.use_triton = False  # the broken method never picks Triton

    def process_weights_after_loading(self, layer: nn.Module) -> None:
        _prepare_experts(layer)


def _quant_method_for(quant_type: QuantType, quant_method: str) -> FusedMoEMethodBase:
    if quant_type == QuantType.No:
        return UnquantizedFusedMoEMethod(quant_type)
    if quant_type in (QuantType.per_1x128, QuantType.per_1x32):
        return Mxfp4MoEMethod(quant_type)
    if quant_method == "compressed-tensors":
        return CompressedTensorsFp8MoEMethod(quant_type)
    return Fp8MoEMethod(quant_type)


def _gate_topk(
    router_logits,
    top_k,
    use_grouped_topk,
    renormalize,
    topk_group,
    num_expert_group,
    scoring_func,
    e_score_correction_bias,
    num_fused_shared_experts,
    routed_scaling_factor,
):
    """Top-k from the gate logits, as ATOM's ``select_experts`` does without a custom function.

    Grouped: ``biased_grouped_topk`` with a correction bias, else ``grouped_topk``, both with the
    factor fused; ungrouped: ``topk_gating``, the factor fused only for sqrtsoftplus (DeepSeek-V4).
    No shared experts are fused in the simulator.
    """
    if num_fused_shared_experts:
        raise NotImplementedError("the simulated select_experts fuses no shared experts")
    tokens, device = router_logits.shape[0], router_logits.device
    topk_weights = torch.empty(tokens, top_k, dtype=torch.float32, device=device)
    topk_ids = torch.empty(tokens, top_k, dtype=torch.int32, device=device)
    if use_grouped_topk and e_score_correction_bias is not None:
        biased_grouped_topk(
            router_logits,
            e_score_correction_bias,
            topk_weights,
            topk_ids,
            num_expert_group,
            topk_group,
            renormalize,
            routed_scaling_factor,
        )
    elif use_grouped_topk:
        grouped_topk(
            router_logits,
            topk_weights,
            topk_ids,
            num_expert_group,
            topk_group,
            renormalize,
            scoring_func == "softmax",
            routed_scaling_factor,
        )
    else:
        scale = routed_scaling_factor if scoring_func == "sqrtsoftplus" else 1.0
        topk_gating(
            topk_weights, topk_ids, router_logits, e_score_correction_bias, renormalize, scale, score_func=scoring_func
        )
    return topk_weights, topk_ids


if _IGNORES_CUSTOM_ROUTING:

    def _select_experts(
        hidden_states: torch.Tensor,
        router_logits: torch.Tensor,
        top_k: int,
        use_grouped_topk: bool,
        renormalize: bool,
        topk_group: int | None = None,
        num_expert_group: int | None = None,
        custom_routing_function=None,
        scoring_func: str = "softmax",
        e_score_correction_bias: torch.Tensor | None = None,
        num_routing_experts: int = 0,
        num_fused_shared_experts: int = 0,
        fused_shared_experts_scoring_func: str | None = None,
        routed_scaling_factor: float = 1.0,
    ):
        # The broken path: the gate logits' own top-k, whatever custom_routing_function says.
        return _gate_topk(
            router_logits,
            top_k,
            use_grouped_topk,
            renormalize,
            topk_group,
            num_expert_group,
            scoring_func,
            e_score_correction_bias,
            num_fused_shared_experts,
            routed_scaling_factor,
        )

else:

    def _select_experts(
        hidden_states: torch.Tensor,
        router_logits: torch.Tensor,
        top_k: int,
        use_grouped_topk: bool,
        renormalize: bool,
        topk_group: int | None = None,
        num_expert_group: int | None = None,
        custom_routing_function=None,
        scoring_func: str = "softmax",
        e_score_correction_bias: torch.Tensor | None = None,
        num_routing_experts: int = 0,
        num_fused_shared_experts: int = 0,
        fused_shared_experts_scoring_func: str | None = None,
        routed_scaling_factor: float = 1.0,
    ):
        # custom_routing_function takes precedence (DeepSeek-V4 hash layers), called as ATOM calls it.
        if custom_routing_function is not None:
            return custom_routing_function(
                hidden_states=hidden_states, gating_output=router_logits, topk=top_k, renormalize=renormalize
            )
        return _gate_topk(
            router_logits,
            top_k,
            use_grouped_topk,
            renormalize,
            topk_group,
            num_expert_group,
            scoring_func,
            e_score_correction_bias,
            num_fused_shared_experts,
            routed_scaling_factor,
        )


_select_experts.__name__, _select_experts.__qualname__ = "select_experts", "FusedMoE.select_experts"


def _column_major_rows(scale_t, start, count, groups, pitch):
    """Rows [start, start + count) of a (groups, pitch) byte buffer, as a (count, groups) view."""
    return torch.as_strided(scale_t, (count, groups), (1, pitch), scale_t.storage_offset() + start)


class FusedMoE(nn.Module):
    """Routed experts: ``w13`` (E, 2 * inter, hidden) holds gate then up, ``w2`` (E, hidden, inter)."""

    def __init__(
        self,
        num_experts: int,
        top_k: int,
        hidden_size: int,
        intermediate_size: int,
        num_expert_group: int,
        topk_group: int,
        routed_scaling_factor: float = 1.0,
        quant_type: QuantType = QuantType.per_1x128,
        params_dtype: torch.dtype | None = None,
        prefix: str = "",
        quant_method: str = "",
        custom_routing_function=None,
        activation: ActivationType = ActivationType.Silu,
    ):
        super().__init__()
        self.prefix = prefix
        self.custom_routing_function = custom_routing_function
        self.activation = activation
        self.top_k = top_k
        self.num_expert_group = num_expert_group
        self.topk_group = topk_group
        self.routed_scaling_factor = routed_scaling_factor
        self.quant_type = quant_type
        self.params_dtype = params_dtype or dtypes.bf16
        self.quant_func = get_hip_quant(quant_type)
        # The CK-free branch has no per-layer quant method: the layer prepares its experts.
        self.quant_method = None if envs.CK_FREE_BRANCH else _quant_method_for(quant_type, quant_method)
        shapes = {
            "w13": (num_experts, 2 * intermediate_size, hidden_size),
            "w2": (num_experts, hidden_size, intermediate_size),
        }
        for name, (experts, rows, cols) in shapes.items():
            setattr(self, f"{name}_weight", atom_parameter(torch.empty(experts, rows, cols, dtype=self.params_dtype)))
            if quant_type == QuantType.per_1x128:
                scale_shape = (experts, (rows + 127) // 128, (cols + 127) // 128)
            elif quant_type == QuantType.per_Token:
                scale_shape = (experts, rows, 1)
            else:
                setattr(self, f"{name}_weight_scale", None)
                continue
            setattr(self, f"{name}_weight_scale", atom_parameter(torch.empty(scale_shape, dtype=dtypes.fp32)))
        self.e_score_correction_bias = atom_parameter(torch.zeros(num_experts, dtype=dtypes.fp32))

    def weight_loader(self, param: nn.Parameter, loaded_weight: torch.Tensor) -> None:
        if param.data.dtype != loaded_weight.dtype and param.data.element_size() == 1:
            param.data = param.data.view(loaded_weight.dtype)
        param.data.copy_(loaded_weight)

    def process_weights_after_loading(self) -> None:
        """ATOM main: layer-level checks only (the quant method prepares the experts next).

        CK-free branch: prepare the experts here.
        """
        if envs.CK_FREE_BRANCH:
            _prepare_experts(self)

    select_experts = staticmethod(_select_experts)

    def forward(self, hidden_states: torch.Tensor, router_logits: torch.Tensor) -> torch.Tensor:
        topk_weights, topk_ids = self.select_experts(
            hidden_states=hidden_states,
            router_logits=router_logits,
            top_k=self.top_k,
            use_grouped_topk=True,
            renormalize=True,
            topk_group=self.topk_group,
            num_expert_group=self.num_expert_group,
            custom_routing_function=self.custom_routing_function,
            scoring_func="sigmoid",
            e_score_correction_bias=self.e_score_correction_bias,
            routed_scaling_factor=self.routed_scaling_factor,
        )
        use_triton = _use_triton_experts() if envs.CK_FREE_BRANCH else self.quant_method.use_triton
        if use_triton:
            return self._triton_experts(hidden_states, topk_weights, topk_ids)
        return fused_moe(
            hidden_states,
            self.w13_weight,
            self.w2_weight,
            topk_weights,
            topk_ids,
            activation=self.activation,
            quant_type=self.quant_type,
            w1_scale=self.w13_weight_scale,
            w2_scale=self.w2_weight_scale,
        )

    def _triton_experts(self, hidden_states, topk_weights, topk_ids):
        if self.quant_type != QuantType.per_1x128 or self.activation != ActivationType.Silu:
            raise NotImplementedError("the Triton MoE path handles per_1x128 FP8 SiLU experts only")
        tokens = hidden_states.shape[0]
        pair_experts, order = topk_ids.reshape(-1).long().sort(stable=True)
        pair_tokens = torch.arange(tokens, device=hidden_states.device).repeat_interleave(self.top_k)[order]
        pair_weights = topk_weights.reshape(-1, 1)[order]
        rows = pair_tokens.numel()
        num_rows = torch.tensor([rows], dtype=torch.int32, device=hidden_states.device)
        padded = (rows + 31) // 32 * 32
        sorted_states = hidden_states.new_zeros(padded, hidden_states.shape[1])
        sorted_states[:rows] = hidden_states[pair_tokens]

        a1, a1_scale = self.quant_func(sorted_states, quant_dtype=self.params_dtype)
        scale_t = torch.zeros_like(a1_scale)
        partial_transpose(scale_t, a1_scale, num_rows)
        gate_up = self._expert_gemms(a1, scale_t, rows, self.w13_weight, self.w13_weight_scale, pair_experts)
        gate, up = gate_up.float().chunk(2, dim=-1)
        activated = (torch.nn.functional.silu(gate) * up).to(hidden_states.dtype)

        quant_t = functools.partial(self.quant_func, transpose_scale=True)
        a2, a2_scale = quant_t(activated, quant_dtype=self.params_dtype)
        down = self._expert_gemms(a2, a2_scale, padded, self.w2_weight, self.w2_weight_scale, pair_experts)
        out = torch.zeros(tokens, hidden_states.shape[1], dtype=torch.float32, device=hidden_states.device)
        out.index_add_(0, pair_tokens, down[:rows].float() * pair_weights)
        return out.to(hidden_states.dtype)

    def _expert_gemms(self, x, scale_t, pitch, weight, weight_scale, pair_experts):
        """One preshuffle blockscale GEMM per expert over its slice of the sorted rows."""
        out = x.new_zeros(x.shape[0], weight.shape[1], dtype=dtypes.bf16)
        groups = x.shape[1] // 128
        experts, counts = pair_experts.unique_consecutive(return_counts=True)
        start = 0
        for expert, count in zip(experts.tolist(), counts.tolist()):
            x_scale = _column_major_rows(scale_t, start, count, groups, pitch)
            out[start : start + count] = gemm_a8w8_blockscale_preshuffle(
                x[start : start + count],
                weight[expert].view(weight.shape[1] // 16, -1),
                x_scale,
                weight_scale[expert],
                is_x_scale_tranposed=x_scale.stride(0) != 1,
            )
            start += count
        return out


if not envs.CK_FREE_BRANCH:
    FusedMoE = FusedMoEDecoratorForPluginMode(FusedMoE)
