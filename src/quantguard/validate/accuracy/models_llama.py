"""``--model tiny-llama``: a small Llama-architecture decoder with seeded weights.

Nothing is downloaded. With ``transformers`` installed the model is
``LlamaForCausalLM(LlamaConfig(...))``; without it, :class:`TinyLlamaForCausalLM`
is a plain-torch decoder with the same module names
(``model.layers.N.self_attn.q_proj``, ``model.layers.N.mlp.down_proj``,
``lm_head`` ...) and the same math (RMSNorm in fp32, rotate-half RoPE,
grouped-query causal attention, SiLU-gated MLP), built from
:mod:`quantguard.sim.decoder`'s blocks. Both load one seeded state dict.

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

from quantguard.sim.decoder import (
    DecoderLayer,
    DecoderStack,
    GatedMLP,
    GroupedQueryAttention,
    KVCache,
    LayerNames,
    RMSNorm,
    Rotary,
    StackNames,
)

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


class _LlamaParts:
    """Plain ``nn.Linear`` layers, as Hugging Face builds them (``validate.quantize`` swaps exactly these)."""

    def linear(self, name: str, in_features: int, out_features: int) -> nn.Module:
        return nn.Linear(in_features, out_features, bias=False)


_PARTS = _LlamaParts()
_LAYER_NAMES = LayerNames(
    input_norm="input_layernorm", attention="self_attn", post_norm="post_attention_layernorm", mlp="mlp"
)
_STACK_NAMES = StackNames(embed="embed_tokens", rotary="rotary_emb")


def _norm(config: TinyLlamaConfig) -> RMSNorm:
    # LlamaRMSNorm: fp32 weight, the normalised input rounded before the scale.
    return RMSNorm(config.hidden_size, config.rms_norm_eps, scale_in_fp32=False)


def _layer(config: TinyLlamaConfig, index: int) -> DecoderLayer:
    name, d = f"model.layers.{index}", config.hidden_size
    return DecoderLayer(
        index,
        _LAYER_NAMES,
        input_norm=_norm(config),
        attention=GroupedQueryAttention(
            _PARTS, f"{name}.self_attn", d, config.num_heads, config.num_kv_heads, config.head_dim
        ),
        post_norm=_norm(config),
        mlp=GatedMLP(_PARTS, f"{name}.mlp", d, config.intermediate_size, fused=False, fp32_activation=False),
    )


class TinyLlamaForCausalLM(nn.Module):
    """Token ids (B, T) -> logits (B, T, vocab) with Hugging Face Llama names.

    Pass the cache of :meth:`new_cache` to decode incrementally (greedy
    generation then runs the GEMMs with M = batch rows per step, as a server does).
    """

    def __init__(self, config: TinyLlamaConfig):
        super().__init__()
        self.config = config
        self.model = DecoderStack(
            _STACK_NAMES,
            embed=nn.Embedding(config.vocab_size, config.hidden_size),
            layers=nn.ModuleList(_layer(config, i) for i in range(config.num_layers)),
            norm=_norm(config),
            rotary=Rotary(config.head_dim, _ROPE_THETA),
        )
        self.lm_head = _PARTS.linear("lm_head", config.hidden_size, config.vocab_size)

    def new_cache(self) -> KVCache:
        return self.model.new_cache()

    def forward(self, input_ids: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
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
