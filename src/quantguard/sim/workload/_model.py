"""The decoder skeleton shared by the quantized (ATOM) model and its BF16 reference.

Both models are built from the same skeleton with different parts, so every
module has the same qualified name in both (``layers.0.attn.q_proj``, ...)
and forward hooks can compare them layer by layer.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

from quantguard.sim.workload._config import ModelConfig

__all__ = ["Decoder", "KVCache", "Parts", "RMSNorm"]


class Parts(Protocol):
    """What a model variant supplies for each layer position."""

    def linear(self, name: str, in_features: int, out_features: int) -> nn.Module: ...

    def experts(self, name: str) -> nn.Module: ...

    def mla_core(self, name: str, kv_b_proj: nn.Module) -> nn.Module: ...


class _Loadable(nn.Module):
    def weight_loader(self, param: nn.Parameter, loaded_weight: torch.Tensor) -> None:
        param.data.copy_(loaded_weight)


class RMSNorm(_Loadable):
    """RMSNorm with fp32 statistics, bf16 in and out."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim, dtype=torch.bfloat16), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        variance = x.float().pow(2).mean(-1, keepdim=True)
        return (x.float() * torch.rsqrt(variance + self.eps) * self.weight.float()).to(x.dtype)


class Embedding(_Loadable):
    def __init__(self, num: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num, dim, dtype=torch.bfloat16), requires_grad=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.weight[ids]


class KVCache:
    """Per-layer cached MLA latents and the number of positions already processed."""

    def __init__(self, num_layers: int) -> None:
        self.latents: list[torch.Tensor | None] = [None] * num_layers
        self.length = 0

    def extend(self, layer: int, latent: torch.Tensor) -> torch.Tensor:
        past = self.latents[layer]
        self.latents[layer] = latent if past is None else torch.cat([past, latent])
        return self.latents[layer]


class Attention(nn.Module):
    def __init__(self, config: ModelConfig, parts: Parts, name: str):
        super().__init__()
        heads, head_dim, rank = config.num_heads, config.head_dim, config.kv_lora_rank
        self.num_heads, self.head_dim = heads, head_dim
        self.q_proj = parts.linear(f"{name}.q_proj", config.hidden_size, heads * head_dim)
        self.kv_a_proj = parts.linear(f"{name}.kv_a_proj", config.hidden_size, rank)
        self.kv_a_norm = RMSNorm(rank)
        kv_b_proj = parts.linear(f"{name}.core.kv_b_proj", rank, heads * 2 * head_dim)
        self.core = parts.mla_core(f"{name}.core", kv_b_proj)
        self.o_proj = parts.linear(f"{name}.o_proj", heads * head_dim, config.hidden_size)

    def forward(self, x: torch.Tensor, cache: KVCache, layer: int) -> torch.Tensor:
        q = self.q_proj(x).view(x.shape[0], self.num_heads, self.head_dim)
        latents = cache.extend(layer, self.kv_a_norm(self.kv_a_proj(x)))
        return self.o_proj(self.core(q, latents, cache.length))


class MLP(nn.Module):
    """SiLU-gated MLP (the shared expert)."""

    def __init__(self, parts: Parts, name: str, hidden: int, intermediate: int):
        super().__init__()
        self.gate_up_proj = parts.linear(f"{name}.gate_up_proj", hidden, 2 * intermediate)
        self.down_proj = parts.linear(f"{name}.down_proj", intermediate, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up_proj(x).float().chunk(2, dim=-1)
        return self.down_proj((torch.nn.functional.silu(gate) * up).to(x.dtype))


class MoE(nn.Module):
    """Router, routed experts and an always-on shared expert."""

    def __init__(self, config: ModelConfig, parts: Parts, name: str):
        super().__init__()
        self.gate = parts.linear(f"{name}.gate", config.hidden_size, config.num_experts)
        self.experts = parts.experts(f"{name}.experts")
        self.shared_expert = MLP(parts, f"{name}.shared_expert", config.hidden_size, config.shared_intermediate_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.experts(x, self.gate(x)) + self.shared_expert(x)


class DecoderLayer(nn.Module):
    def __init__(self, config: ModelConfig, parts: Parts, index: int):
        super().__init__()
        self.index = index
        self.input_norm = RMSNorm(config.hidden_size)
        self.attn = Attention(config, parts, f"layers.{index}.attn")
        self.post_norm = RMSNorm(config.hidden_size)
        self.mlp = MoE(config, parts, f"layers.{index}.mlp")

    def forward(self, x: torch.Tensor, cache: KVCache) -> torch.Tensor:
        x = x + self.attn(self.input_norm(x), cache, self.index)
        return x + self.mlp(self.post_norm(x))


class Decoder(nn.Module):
    """Token ids (T,) -> logits (T, vocab) in fp32; pass a :class:`KVCache` to decode."""

    def __init__(self, config: ModelConfig, parts: Parts):
        super().__init__()
        self.config = config
        self.embed = Embedding(config.vocab_size, config.hidden_size)
        self.pos_embed = Embedding(config.max_positions, config.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(config, parts, i) for i in range(config.num_layers))
        self.norm = RMSNorm(config.hidden_size)
        self.lm_head = parts.linear("lm_head", config.hidden_size, config.vocab_size)

    def new_cache(self) -> KVCache:
        return KVCache(len(self.layers))

    @torch.no_grad()
    def forward(self, input_ids: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        if cache is None:
            cache = self.new_cache()
        positions = torch.arange(cache.length, cache.length + input_ids.shape[0], device=input_ids.device)
        x = self.embed(input_ids) + self.pos_embed(positions)
        for layer in self.layers:
            x = layer(x, cache)
        cache.length += input_ids.shape[0]
        return self.lm_head(self.norm(x)).float()
