"""The DeepSeek-shaped decoder shared by the quantized (ATOM) model and its BF16 reference.

Both models are built from :mod:`quantguard.sim.decoder`'s blocks with
different parts, so every module has the same qualified name in both
(``layers.0.attn.q_proj``, ...) and forward hooks can compare them layer by
layer. What is DeepSeek's rather than generic lives here: MLA attention over
a cached latent, and the MoE with a shared expert.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

from quantguard.sim import decoder
from quantguard.sim.decoder import GatedMLP, KVCache, Loadable, RMSNorm
from quantguard.sim.workload._config import ModelConfig

# KVCache is imported from here by the workload package.
__all__ = ["Decoder", "KVCache", "Parts"]


class Parts(decoder.Parts, Protocol):
    """What a model variant supplies for each layer position."""

    def experts(self, name: str) -> nn.Module: ...

    def mla_core(self, name: str, kv_b_proj: nn.Module) -> nn.Module: ...


def _norm(dim: int) -> RMSNorm:
    # ATOM's fused RMSNorm: BF16 weight, scaled in fp32 and rounded once.
    return RMSNorm(dim, dtype=torch.bfloat16)


class Embedding(Loadable):
    def __init__(self, num: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num, dim, dtype=torch.bfloat16), requires_grad=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.weight[ids]


class LatentAttention(nn.Module):
    """MLA: keys and values come from a cached, normalised low-rank latent that the core decompresses."""

    def __init__(self, config: ModelConfig, parts: Parts, name: str):
        super().__init__()
        heads, head_dim, rank = config.num_heads, config.head_dim, config.kv_lora_rank
        self.num_heads, self.head_dim = heads, head_dim
        self.q_proj = parts.linear(f"{name}.q_proj", config.hidden_size, heads * head_dim)
        self.kv_a_proj = parts.linear(f"{name}.kv_a_proj", config.hidden_size, rank)
        self.kv_a_norm = _norm(rank)
        kv_b_proj = parts.linear(f"{name}.core.kv_b_proj", rank, heads * 2 * head_dim)
        self.core = parts.mla_core(f"{name}.core", kv_b_proj)
        self.o_proj = parts.linear(f"{name}.o_proj", heads * head_dim, config.hidden_size)

    def forward(self, x: torch.Tensor, cache: KVCache, layer: int) -> torch.Tensor:
        # No rotary embedding: positions are learned and already in ``x``.
        q = self.q_proj(x).view(x.shape[0], self.num_heads, self.head_dim)
        (latents,) = cache.extend(layer, self.kv_a_norm(self.kv_a_proj(x)))
        return self.o_proj(self.core(q, latents, cache.length))


class MoE(nn.Module):
    """Router, routed experts and an always-on shared expert."""

    def __init__(self, config: ModelConfig, parts: Parts, name: str):
        super().__init__()
        self.gate = parts.linear(f"{name}.gate", config.hidden_size, config.num_experts)
        self.experts = parts.experts(f"{name}.experts")
        self.shared_expert = GatedMLP(
            parts, f"{name}.shared_expert", config.hidden_size, config.shared_intermediate_size
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.experts(x, self.gate(x)) + self.shared_expert(x)


def _layer(config: ModelConfig, parts: Parts, index: int) -> decoder.DecoderLayer:
    name = f"layers.{index}"
    return decoder.DecoderLayer(
        index,
        input_norm=_norm(config.hidden_size),
        attn=LatentAttention(config, parts, f"{name}.attn"),
        post_norm=_norm(config.hidden_size),
        mlp=MoE(config, parts, f"{name}.mlp"),
    )


class Decoder(decoder.DecoderStack):
    """Token ids (T,) -> logits (T, vocab) in fp32; pass a :class:`KVCache` to decode.

    Learned absolute positions; every weight is frozen (inference only, as in ATOM).
    """

    def __init__(self, config: ModelConfig, parts: Parts):
        super().__init__(
            embed=Embedding(config.vocab_size, config.hidden_size),
            pos_embed=Embedding(config.max_positions, config.hidden_size),
            layers=nn.ModuleList(_layer(config, parts, i) for i in range(config.num_layers)),
            norm=_norm(config.hidden_size),
        )
        self.config = config
        self.lm_head = parts.linear("lm_head", config.hidden_size, config.vocab_size)
        self.requires_grad_(False)

    @torch.no_grad()
    def forward(self, input_ids: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        if cache is None:
            cache = self.new_cache()
        return self.lm_head(super().forward(input_ids, cache)).float()
