"""``--model tiny-llama``: a small Llama-architecture decoder with seeded weights.

Nothing is downloaded. With ``transformers`` installed the model is
``LlamaForCausalLM(LlamaConfig(...))``; without it, :class:`TinyLlamaForCausalLM`
is a plain-torch decoder with the same module names
(``model.layers.N.self_attn.q_proj``, ``model.layers.N.mlp.down_proj``,
``lm_head`` ...) and the same math (RMSNorm in fp32, rotate-half RoPE,
grouped-query causal attention, SiLU-gated MLP). Both load one seeded state dict.

The weights are synthetic but shaped like a trained model's where it matters
for a quantization check: each layer adds a small update to a residual stream
that dominates the hidden state, and the LM head is a row permutation of the
embedding, so every token has one clear successor and greedy decoding is
stable under quantization noise while a broken kernel still garbles it. The
model validates kernels, not language quality.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["TinyLlama", "TinyLlamaConfig", "TinyLlamaForCausalLM", "build_tiny_llama", "seeded_weights"]

# LlamaConfig's default RoPE base.
_ROPE_THETA = 10000.0


@dataclass(frozen=True)
class TinyLlamaConfig:
    """Shapes of the tiny decoder; every GEMM dimension is a multiple of 128.

    ``update_gain`` scales the output projections (``o_proj``, ``down_proj``):
    how much one layer moves the residual stream.
    """

    vocab_size: int = 512
    hidden_size: int = 256
    intermediate_size: int = 512
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    max_positions: int = 256
    rms_norm_eps: float = 1e-6
    update_gain: float = 0.15
    seed: int = 0

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


def seeded_weights(config: TinyLlamaConfig) -> dict[str, torch.Tensor]:
    """fp32 weights under Hugging Face Llama parameter names, identical for a given seed."""
    gen = torch.Generator().manual_seed(config.seed)

    def normal(rows: int, cols: int, gain: float = 1.0) -> torch.Tensor:
        return torch.randn(rows, cols, generator=gen) * (gain / math.sqrt(cols))

    d, inter, head_dim = config.hidden_size, config.intermediate_size, config.head_dim
    q_rows, kv_rows = config.num_heads * head_dim, config.num_kv_heads * head_dim
    embed = torch.randn(config.vocab_size, d, generator=gen)
    weights = {"model.embed_tokens.weight": embed, "model.norm.weight": torch.ones(d)}
    for layer in range(config.num_layers):
        prefix = f"model.layers.{layer}."
        weights.update(
            {
                prefix + "input_layernorm.weight": torch.ones(d),
                prefix + "post_attention_layernorm.weight": torch.ones(d),
                prefix + "self_attn.q_proj.weight": normal(q_rows, d),
                prefix + "self_attn.k_proj.weight": normal(kv_rows, d),
                prefix + "self_attn.v_proj.weight": normal(kv_rows, d),
                prefix + "self_attn.o_proj.weight": normal(d, q_rows, config.update_gain),
                prefix + "mlp.gate_proj.weight": normal(inter, d),
                prefix + "mlp.up_proj.weight": normal(inter, d),
                prefix + "mlp.down_proj.weight": normal(d, inter, config.update_gain),
            }
        )
    permutation = torch.randperm(config.vocab_size, generator=gen)
    weights["lm_head.weight"] = embed[permutation] / math.sqrt(d)
    return weights


class _KVCache:
    """Keys and values of every layer for the positions processed so far."""

    def __init__(self, num_layers: int):
        self.keys: list[torch.Tensor | None] = [None] * num_layers
        self.values: list[torch.Tensor | None] = [None] * num_layers
        self.length = 0

    def extend(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.keys[layer] is not None:
            k = torch.cat([self.keys[layer], k], dim=2)
            v = torch.cat([self.values[layer], v], dim=2)
        self.keys[layer], self.values[layer] = k, v
        return k, v


class _RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


class _Rotary(nn.Module):
    def __init__(self, config: TinyLlamaConfig):
        super().__init__()
        exponents = torch.arange(0, config.head_dim, 2, dtype=torch.float32) / config.head_dim
        self.register_buffer("inv_freq", 1.0 / _ROPE_THETA**exponents, persistent=False)

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        freqs = positions.float()[:, None] * self.inv_freq.float()[None, :]
        angles = torch.cat((freqs, freqs), dim=-1)
        return angles.cos().to(x.dtype), angles.sin().to(x.dtype)


class _Attention(nn.Module):
    def __init__(self, config: TinyLlamaConfig):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = config.num_heads, config.num_kv_heads, config.head_dim
        d = config.hidden_size
        self.q_proj = nn.Linear(d, self.heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(d, self.kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(d, self.kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.heads * self.head_dim, d, bias=False)

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache: _KVCache | None, layer: int
    ) -> torch.Tensor:
        batch, length, _ = x.shape

        def split(t: torch.Tensor, heads: int) -> torch.Tensor:
            return t.view(batch, length, heads, self.head_dim).transpose(1, 2)

        q = split(self.q_proj(x), self.heads)
        k = split(self.k_proj(x), self.kv_heads)
        v = split(self.v_proj(x), self.kv_heads)
        q, k = q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin
        past = 0
        if cache is not None:
            past = cache.length
            k, v = cache.extend(layer, k, v)
        repeat = self.heads // self.kv_heads
        k, v = k.repeat_interleave(repeat, dim=1), v.repeat_interleave(repeat, dim=1)
        scores = (q @ k.transpose(2, 3)) / math.sqrt(self.head_dim)
        causal = torch.ones(length, past + length, dtype=torch.bool, device=x.device).triu(past + 1)
        probs = torch.softmax(scores.masked_fill(causal, float("-inf")).float(), dim=-1).to(q.dtype)
        out = (probs @ v).transpose(1, 2).reshape(batch, length, -1)
        return self.o_proj(out)


class _MLP(nn.Module):
    def __init__(self, config: TinyLlamaConfig):
        super().__init__()
        d, inter = config.hidden_size, config.intermediate_size
        self.gate_proj = nn.Linear(d, inter, bias=False)
        self.up_proj = nn.Linear(d, inter, bias=False)
        self.down_proj = nn.Linear(inter, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(nn.functional.silu(self.gate_proj(x)) * self.up_proj(x))


class _DecoderLayer(nn.Module):
    def __init__(self, config: TinyLlamaConfig):
        super().__init__()
        self.input_layernorm = _RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = _Attention(config)
        self.post_attention_layernorm = _RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = _MLP(config)

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache: _KVCache | None, layer: int
    ) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, cache, layer)
        return x + self.mlp(self.post_attention_layernorm(x))


class _LlamaModel(nn.Module):
    def __init__(self, config: TinyLlamaConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(_DecoderLayer(config) for _ in range(config.num_layers))
        self.norm = _RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.rotary_emb = _Rotary(config)

    def forward(self, input_ids: torch.Tensor, cache: _KVCache | None = None) -> torch.Tensor:
        x = self.embed_tokens(input_ids)
        start = 0 if cache is None else cache.length
        positions = torch.arange(start, start + input_ids.shape[-1], device=input_ids.device)
        cos, sin = self.rotary_emb(x, positions)
        for index, layer in enumerate(self.layers):
            x = layer(x, cos, sin, cache, index)
        if cache is not None:
            cache.length += input_ids.shape[-1]
        return self.norm(x)


class TinyLlamaForCausalLM(nn.Module):
    """Token ids (B, T) -> logits (B, T, vocab) with Hugging Face Llama names.

    Pass the cache of :meth:`new_cache` to decode incrementally (greedy
    generation then runs the GEMMs with M = batch rows per step, as a server does).
    """

    def __init__(self, config: TinyLlamaConfig):
        super().__init__()
        self.config = config
        self.model = _LlamaModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)

    def new_cache(self) -> _KVCache:
        return _KVCache(self.config.num_layers)

    def forward(self, input_ids: torch.Tensor, cache: _KVCache | None = None) -> torch.Tensor:
        return self.lm_head(self.model(input_ids, cache))


def _builtin_logits(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    return model(ids)


def _builtin_step(model: nn.Module, ids: torch.Tensor, cache: object) -> tuple[torch.Tensor, object]:
    if cache is None:
        cache = model.new_cache()
        return model(ids, cache)[:, -1], cache
    return model(ids[:, -1:], cache)[:, -1], cache


def _transformers_logits(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    return model(input_ids=ids, use_cache=False).logits


def _transformers_step(model: nn.Module, ids: torch.Tensor, past: object) -> tuple[torch.Tensor, object]:
    output = model(input_ids=ids if past is None else ids[:, -1:], past_key_values=past, use_cache=True)
    return output.logits[:, -1], output.past_key_values


@dataclass(frozen=True)
class TinyLlama:
    """The built model, which implementation it is, and how to call it.

    ``logits(model, ids)`` maps (B, T) ids to (B, T, vocab) logits without a
    cache; ``step(model, ids, state)`` is one greedy-decoding step with the KV
    cache (``state`` is ``None`` on the first, prompt-wide step).
    """

    model: nn.Module
    implementation: str
    logits: Callable[[nn.Module, torch.Tensor], torch.Tensor]
    step: Callable[[nn.Module, torch.Tensor, object], tuple[torch.Tensor, object]]


def _transformers_llama(config: TinyLlamaConfig) -> nn.Module | None:
    try:
        from transformers import LlamaConfig, LlamaForCausalLM
    except ImportError:
        return None
    return LlamaForCausalLM(
        LlamaConfig(
            vocab_size=config.vocab_size,
            hidden_size=config.hidden_size,
            intermediate_size=config.intermediate_size,
            num_hidden_layers=config.num_layers,
            num_attention_heads=config.num_heads,
            num_key_value_heads=config.num_kv_heads,
            max_position_embeddings=config.max_positions,
            rms_norm_eps=config.rms_norm_eps,
            tie_word_embeddings=False,
        )
    )


def build_tiny_llama(config: TinyLlamaConfig = TinyLlamaConfig(), use_transformers: bool = True) -> TinyLlama:
    """The seeded tiny decoder in fp32 and eval mode.

    ``transformers``' ``LlamaForCausalLM`` when importable and
    ``use_transformers``, else :class:`TinyLlamaForCausalLM`.
    """
    model = _transformers_llama(config) if use_transformers else None
    if model is None:
        built = TinyLlama(TinyLlamaForCausalLM(config), "builtin", _builtin_logits, _builtin_step)
    else:
        built = TinyLlama(model, "transformers", _transformers_logits, _transformers_step)
    built.model.load_state_dict(seeded_weights(config), strict=True)
    built.model.eval()
    return built
