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
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["TinyLlamaConfig", "TinyLlamaForCausalLM", "build_tiny_llama", "seeded_weights"]

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
        weights.update({
            prefix + "input_layernorm.weight": torch.ones(d),
            prefix + "post_attention_layernorm.weight": torch.ones(d),
            prefix + "self_attn.q_proj.weight": normal(q_rows, d),
            prefix + "self_attn.k_proj.weight": normal(kv_rows, d),
            prefix + "self_attn.v_proj.weight": normal(kv_rows, d),
            prefix + "self_attn.o_proj.weight": normal(d, q_rows, config.update_gain),
            prefix + "mlp.gate_proj.weight": normal(inter, d),
            prefix + "mlp.up_proj.weight": normal(inter, d),
            prefix + "mlp.down_proj.weight": normal(d, inter, config.update_gain),
        })
    permutation = torch.randperm(config.vocab_size, generator=gen)
    weights["lm_head.weight"] = embed[permutation] / math.sqrt(d)
    return weights


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
        self.register_buffer("inv_freq", 1.0 / _ROPE_THETA ** exponents, persistent=False)

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

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape

        def split(t: torch.Tensor, heads: int) -> torch.Tensor:
            return t.view(batch, length, heads, self.head_dim).transpose(1, 2)

        q = split(self.q_proj(x), self.heads)
        k = split(self.k_proj(x), self.kv_heads)
        v = split(self.v_proj(x), self.kv_heads)
        q, k = q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin
        repeat = self.heads // self.kv_heads
        k, v = k.repeat_interleave(repeat, dim=1), v.repeat_interleave(repeat, dim=1)
        scores = (q @ k.transpose(2, 3)) / math.sqrt(self.head_dim)
        causal = torch.ones(length, length, dtype=torch.bool, device=x.device).triu(1)
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

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class _LlamaModel(nn.Module):
    def __init__(self, config: TinyLlamaConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(_DecoderLayer(config) for _ in range(config.num_layers))
        self.norm = _RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.rotary_emb = _Rotary(config)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.embed_tokens(input_ids)
        cos, sin = self.rotary_emb(x, torch.arange(input_ids.shape[-1], device=input_ids.device))
        for layer in self.layers:
            x = layer(x, cos, sin)
        return self.norm(x)


class TinyLlamaForCausalLM(nn.Module):
    """Token ids (B, T) -> logits (B, T, vocab), Hugging Face Llama names, no KV cache."""

    def __init__(self, config: TinyLlamaConfig):
        super().__init__()
        self.config = config
        self.model = _LlamaModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.model(input_ids))


def _transformers_llama(config: TinyLlamaConfig) -> nn.Module | None:
    try:
        from transformers import LlamaConfig, LlamaForCausalLM
    except ImportError:
        return None
    return LlamaForCausalLM(LlamaConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_kv_heads,
        max_position_embeddings=config.max_positions,
        rms_norm_eps=config.rms_norm_eps,
        tie_word_embeddings=False,
    ))


def build_tiny_llama(
    config: TinyLlamaConfig = TinyLlamaConfig(), use_transformers: bool = True
) -> tuple[nn.Module, str]:
    """The seeded tiny decoder in fp32, eval mode, and which implementation it is.

    Returns ``(model, "transformers")`` when transformers is importable and
    ``use_transformers``, else ``(model, "builtin")``.
    """
    model = _transformers_llama(config) if use_transformers else None
    implementation = "transformers"
    if model is None:
        model, implementation = TinyLlamaForCausalLM(config), "builtin"
    model.load_state_dict(seeded_weights(config), strict=True)
    return model.eval(), implementation
