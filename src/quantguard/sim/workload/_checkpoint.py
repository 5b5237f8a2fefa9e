"""Seeded master weights and the quantized "checkpoint" produced from them.

Checkpoints are quantized the way real ones are shipped: OCP FP8 e4m3fn with
fp32 128x128 block scales (DeepSeek style), per-channel or per-tensor scales,
and MXFP4 packed as bytes with e8m0 scales derived round-to-even (Quark).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from quantguard.contracts import aiter_paths
from quantguard.sim._kernels import e8m0, fp4
from quantguard.sim.workload._config import ModelConfig

__all__ = ["checkpoint", "master_weights", "to_device"]

_E4M3FN_MAX = 448.0


def master_weights(config: ModelConfig) -> dict[str, torch.Tensor]:
    """fp32 CPU weights, identical for every device and arch given ``config.seed``.

    The LM head is a row permutation of the embedding, so the model strongly
    prefers one successor per token and greedy decoding is stable under
    quantization noise while large faults still change it.
    """
    gen = torch.Generator().manual_seed(config.seed)

    def normal(*shape: int, std: float) -> torch.Tensor:
        return torch.randn(*shape, generator=gen) * std

    def linear(out_features: int, in_features: int, gain: float = 1.0) -> torch.Tensor:
        return normal(out_features, in_features, std=gain / math.sqrt(in_features))

    d, heads, head_dim, rank = config.hidden_size, config.num_heads, config.head_dim, config.kv_lora_rank
    experts, inter, shared = config.num_experts, config.moe_intermediate_size, config.shared_intermediate_size
    embed = normal(config.vocab_size, d, std=1.0)
    weights = {
        "embed.weight": embed,
        "pos_embed.weight": normal(config.max_positions, d, std=0.2),
        "norm.weight": torch.ones(d),
        "lm_head.weight": embed[torch.randperm(config.vocab_size, generator=gen)] / math.sqrt(d),
    }
    for layer in range(config.num_layers):
        prefix = f"layers.{layer}."
        weights.update(
            {
                prefix + "input_norm.weight": torch.ones(d),
                prefix + "post_norm.weight": torch.ones(d),
                prefix + "attn.q_proj.weight": linear(heads * head_dim, d),
                prefix + "attn.kv_a_proj.weight": linear(rank, d),
                prefix + "attn.kv_a_norm.weight": torch.ones(rank),
                prefix + "attn.core.kv_b_proj.weight": linear(heads * 2 * head_dim, rank),
                prefix + "attn.o_proj.weight": linear(d, heads * head_dim),
                prefix + "mlp.gate.weight": linear(experts, d, gain=2.0),
                prefix + "mlp.experts.e_score_correction_bias": normal(experts, std=0.1),
                prefix + "mlp.experts.w13_weight": normal(experts, 2 * inter, d, std=1 / math.sqrt(d)),
                prefix + "mlp.experts.w2_weight": normal(experts, d, inter, std=1 / math.sqrt(inter)),
                prefix + "mlp.shared_expert.gate_up_proj.weight": linear(2 * shared, d),
                prefix + "mlp.shared_expert.down_proj.weight": linear(d, shared),
            }
        )
    return weights


def _fp8_block(weight: torch.Tensor):
    *lead, rows, cols = weight.shape
    blocks = weight.reshape(*lead, rows // 128, 128, cols // 128, 128)
    scale = blocks.abs().amax(dim=(-3, -1)) / _E4M3FN_MAX
    expanded = scale.repeat_interleave(128, -2).repeat_interleave(128, -1)
    return (weight / expanded).clamp(-_E4M3FN_MAX, _E4M3FN_MAX).to(torch.float8_e4m3fn), scale


def _fp8_scaled(weight: torch.Tensor, scale: torch.Tensor):
    return (weight / scale).clamp(-_E4M3FN_MAX, _E4M3FN_MAX).to(torch.float8_e4m3fn), scale


def _mxfp4(weight: torch.Tensor):
    groups = weight.unflatten(-1, (-1, 32))
    scale = e8m0.encode(groups.abs().amax(-1), e8m0.EVEN, "fp4")
    codes = fp4.encode((groups / e8m0.decode(scale).unsqueeze(-1)).flatten(-2))
    return fp4.pack(codes), scale.view(torch.float8_e8m0fnu)


def _quantize(weight: torch.Tensor, scheme: str):
    """Values and scale of ``scheme``'s checkpoint, at the weight-scale granularity the AITER path table gives it."""
    if scheme == "bf16":
        return weight.to(torch.bfloat16), None
    form = aiter_paths.SCHEMES[scheme]
    granularity = (form.quant_dtype, form.weight_scale)
    if granularity == ("fp8", "block_128x128"):
        return _fp8_block(weight)
    if granularity == ("fp8", "per_channel"):
        return _fp8_scaled(weight, weight.abs().amax(-1, keepdim=True) / _E4M3FN_MAX)
    if granularity == ("fp8", "per_tensor"):
        return _fp8_scaled(weight, (weight.abs().amax() / _E4M3FN_MAX).reshape(1))
    if granularity == ("fp4x2", "mx_1x32"):
        return _mxfp4(weight)
    raise ValueError(f"the workload's checkpoint has no {scheme} format")


def _scheme_of(name: str, schemes: Mapping[str, str]) -> str | None:
    """How tensor ``name`` is stored; ``None`` keeps it as fp32."""
    if name.endswith(("norm.weight", "_bias")):
        return None
    if not name.startswith("layers."):
        return "bf16"
    family = name.split(".", 2)[2].rsplit(".", 1)[0]
    if family == "attn.core.kv_b_proj":
        return "fp8_blockscale"
    return schemes.get(family, "bf16")


def checkpoint(master: Mapping[str, torch.Tensor], schemes: Mapping[str, str]) -> dict[str, torch.Tensor]:
    """The on-disk tensors of every layer: ``<name>`` plus ``<name>_scale`` where quantized.

    ``attn.core.kv_b_proj`` always ships as FP8 blocks (it is dense at runtime).
    """
    tensors: dict[str, torch.Tensor] = {}
    for name, weight in master.items():
        scheme = _scheme_of(name, schemes)
        if scheme is None:
            tensors[name] = weight.clone()
            continue
        values, scale = _quantize(weight, scheme)
        tensors[name] = values
        if scale is not None:
            tensors[name + "_scale"] = scale
    return tensors


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A checkpoint tensor on ``device``; one-byte ones (FP8, e8m0, packed FP4) move as their bytes."""
    if tensor.element_size() == 1:
        return tensor.view(torch.uint8).to(device).view(tensor.dtype)
    return tensor.to(device)
