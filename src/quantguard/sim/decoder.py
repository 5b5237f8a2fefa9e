"""Decoder building blocks shared by the simulated ATOM workload and ``validate accuracy``'s tiny Llama.

Both test models are pre-norm residual decoders. The blocks here hold the
math once; each model supplies its parts (:class:`Parts` builds its linear
layers: ATOM layers, dense BF16 ones or ``nn.Linear``) and the names of its
modules (:class:`LayerNames`, :class:`StackNames`), so each keeps the
qualified names its checkpoint loads by and its forward hooks compare
(``layers.0.attn.q_proj``, ``model.layers.0.self_attn.q_proj``).

Where the two models round differently, a flag says which way and why
(:class:`RMSNorm`, :class:`GatedMLP`): ATOM's fused kernels round once from
fp32, Hugging Face Llama rounds to the model dtype between steps.

The module lives in :mod:`quantguard.sim`, which the runtime never imports
(pyproject ``[tool.importlinter]``); :mod:`quantguard.validate` may.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, TypeAlias

import torch
from torch import nn

__all__ = [
    "DecoderLayer",
    "DecoderStack",
    "GatedMLP",
    "GroupedQueryAttention",
    "KVCache",
    "LayerNames",
    "Loadable",
    "Parts",
    "RMSNorm",
    "Rope",
    "Rotary",
    "StackNames",
    "apply_rotary",
]

#: ``(cos, sin)`` of every position's rotary angles, or ``None`` without rotary positions.
Rope: TypeAlias = tuple[torch.Tensor, torch.Tensor] | None


class Parts(Protocol):
    """What a model variant builds its linear layers with.

    ``name`` is the layer's qualified name, for parts that configure layers by
    name (the quantized workload picks each layer's quant scheme by it).
    """

    def linear(self, name: str, in_features: int, out_features: int) -> nn.Module: ...


class Loadable(nn.Module):
    """A module ATOM's checkpoint loader can fill: it calls ``weight_loader(param, tensor)`` per tensor."""

    def weight_loader(self, param: nn.Parameter, loaded_weight: torch.Tensor) -> None:
        param.data.copy_(loaded_weight)


class RMSNorm(Loadable):
    """RMSNorm with fp32 statistics; the output has the input's dtype.

    ``scale_in_fp32``: multiply by the weight in fp32 and round once (ATOM's
    fused RMSNorm); otherwise round the normalised input to its dtype first
    and scale in the weight's dtype (Hugging Face ``LlamaRMSNorm``). The two
    agree in fp32; in BF16 they can differ by one rounding step.
    """

    def __init__(self, dim: int, eps: float = 1e-6, dtype: torch.dtype = torch.float32, scale_in_fp32: bool = True):
        super().__init__()
        self.eps = eps
        self.scale_in_fp32 = scale_in_fp32
        self.weight = nn.Parameter(torch.ones(dim, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        if self.scale_in_fp32:
            return (h * self.weight.float()).to(x.dtype)
        return self.weight * h.to(x.dtype)


class KVCache:
    """Per-layer cached tensors and the number of positions already processed.

    What a layer caches is its attention's choice (keys and values, or MLA's
    compressed latent); :meth:`extend` appends along the sequence dimension.
    """

    __slots__ = ("entries", "length")

    def __init__(self, num_layers: int) -> None:
        self.entries: list[tuple[torch.Tensor, ...] | None] = [None] * num_layers
        self.length = 0

    def extend(self, layer: int, *tensors: torch.Tensor, dim: int = 0) -> tuple[torch.Tensor, ...]:
        """Append this step's ``tensors`` to ``layer``'s cache along ``dim``; returns the whole cache."""
        past = self.entries[layer]
        if past is not None:
            tensors = tuple(torch.cat([old, new], dim=dim) for old, new in zip(past, tensors))
        self.entries[layer] = tensors
        return tensors


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` (..., T, head_dim) by its positions' angles, rotate-half style (Llama's)."""
    return x * cos + _rotate_half(x) * sin


class Rotary(nn.Module):
    """Rotary position angles: ``(cos, sin)`` of shape (T, head_dim) in the input's dtype."""

    def __init__(self, head_dim: int, theta: float):
        super().__init__()
        exponents = torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim
        self.register_buffer("inv_freq", 1.0 / theta**exponents, persistent=False)

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        freqs = positions.float()[:, None] * self.inv_freq.float()[None, :]
        angles = torch.cat((freqs, freqs), dim=-1)
        return angles.cos().to(x.dtype), angles.sin().to(x.dtype)


class GroupedQueryAttention(nn.Module):
    """Causal self-attention over (B, T, hidden) with rotary positions and shared K/V heads (Llama's).

    The softmax runs in fp32; everything else in the input's dtype.
    """

    def __init__(self, parts: Parts, name: str, hidden: int, heads: int, kv_heads: int, head_dim: int):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, head_dim
        self.q_proj = parts.linear(f"{name}.q_proj", hidden, heads * head_dim)
        self.k_proj = parts.linear(f"{name}.k_proj", hidden, kv_heads * head_dim)
        self.v_proj = parts.linear(f"{name}.v_proj", hidden, kv_heads * head_dim)
        self.o_proj = parts.linear(f"{name}.o_proj", heads * head_dim, hidden)

    def forward(self, x: torch.Tensor, cache: KVCache | None, layer: int, rope: Rope) -> torch.Tensor:
        batch, length, _ = x.shape
        cos, sin = rope

        def split(t: torch.Tensor, heads: int) -> torch.Tensor:
            return t.view(batch, length, heads, self.head_dim).transpose(1, 2)

        q = split(self.q_proj(x), self.heads)
        k = split(self.k_proj(x), self.kv_heads)
        v = split(self.v_proj(x), self.kv_heads)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        past = 0
        if cache is not None:
            past = cache.length
            k, v = cache.extend(layer, k, v, dim=2)
        repeat = self.heads // self.kv_heads
        k, v = k.repeat_interleave(repeat, dim=1), v.repeat_interleave(repeat, dim=1)
        scores = (q @ k.transpose(2, 3)) / math.sqrt(self.head_dim)
        causal = torch.ones(length, past + length, dtype=torch.bool, device=x.device).triu(past + 1)
        probs = torch.softmax(scores.masked_fill(causal, float("-inf")).float(), dim=-1).to(q.dtype)
        out = (probs @ v).transpose(1, 2).reshape(batch, length, -1)
        return self.o_proj(out)


class GatedMLP(nn.Module):
    """SiLU-gated MLP: ``down_proj(silu(gate) * up)``.

    ``fused``: one ``gate_up_proj`` layer (ATOM's merged projection) instead
    of ``gate_proj`` and ``up_proj`` (Hugging Face's). ``fp32_activation``:
    the SiLU and product in fp32, rounded once before ``down_proj`` (ATOM's
    fused ``silu_and_mul``); otherwise in the projections' dtype.
    """

    def __init__(self, parts: Parts, name: str, hidden: int, intermediate: int, fused: bool, fp32_activation: bool):
        super().__init__()
        self.fused, self.fp32_activation = fused, fp32_activation
        if fused:
            self.gate_up_proj = parts.linear(f"{name}.gate_up_proj", hidden, 2 * intermediate)
        else:
            self.gate_proj = parts.linear(f"{name}.gate_proj", hidden, intermediate)
            self.up_proj = parts.linear(f"{name}.up_proj", hidden, intermediate)
        self.down_proj = parts.linear(f"{name}.down_proj", intermediate, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused:
            gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
        else:
            gate, up = self.gate_proj(x), self.up_proj(x)
        if not self.fp32_activation:
            return self.down_proj(nn.functional.silu(gate) * up)
        return self.down_proj((nn.functional.silu(gate.float()) * up.float()).to(x.dtype))


@dataclass(frozen=True)
class LayerNames:
    """The attribute names of a layer's four blocks: part of every qualified name below the layer."""

    input_norm: str
    attention: str
    post_norm: str
    mlp: str


class DecoderLayer(nn.Module):
    """Pre-norm residual layer: ``x + attention(input_norm(x))``, then ``x + mlp(post_norm(x))``.

    The attention is called as ``attention(x, cache, index, rope)``; the
    blocks are registered under ``names``, in that order.
    """

    def __init__(
        self,
        index: int,
        names: LayerNames,
        input_norm: nn.Module,
        attention: nn.Module,
        post_norm: nn.Module,
        mlp: nn.Module,
    ):
        super().__init__()
        self.index, self.names = index, names
        self.add_module(names.input_norm, input_norm)
        self.add_module(names.attention, attention)
        self.add_module(names.post_norm, post_norm)
        self.add_module(names.mlp, mlp)

    def forward(self, x: torch.Tensor, cache: KVCache | None, rope: Rope) -> torch.Tensor:
        names = self.names
        x = x + getattr(self, names.attention)(getattr(self, names.input_norm)(x), cache, self.index, rope)
        return x + getattr(self, names.mlp)(getattr(self, names.post_norm)(x))


@dataclass(frozen=True)
class StackNames:
    """The attribute names of a stack's token embedding and position modules (``None``: not used).

    The layers and the final norm are always ``layers`` and ``norm``.
    """

    embed: str
    position_embed: str | None = None
    rotary: str | None = None


class DecoderStack(nn.Module):
    """Token ids (..., T) -> final-norm hidden states (..., T, hidden); pass a :class:`KVCache` to decode.

    Positions are learned (``position_embed``, added to the token embedding),
    rotary (``rotary``, applied in attention) or both; they continue from the
    cache's length. Modules are registered in the order embed, position
    embed, layers, norm, rotary.
    """

    def __init__(
        self,
        names: StackNames,
        embed: nn.Module,
        layers: nn.ModuleList,
        norm: nn.Module,
        position_embed: nn.Module | None = None,
        rotary: Rotary | None = None,
    ):
        super().__init__()
        if (position_embed is None) != (names.position_embed is None) or (rotary is None) != (names.rotary is None):
            raise ValueError(f"{names} does not match the position modules given (position_embed, rotary)")
        self.names = names
        self.add_module(names.embed, embed)
        if position_embed is not None:
            self.add_module(names.position_embed, position_embed)
        self.layers = layers
        self.norm = norm
        if rotary is not None:
            self.add_module(names.rotary, rotary)

    def new_cache(self) -> KVCache:
        return KVCache(len(self.layers))

    def forward(self, input_ids: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        names = self.names
        length = input_ids.shape[-1]
        start = 0 if cache is None else cache.length
        positions = torch.arange(start, start + length, device=input_ids.device)
        x = getattr(self, names.embed)(input_ids)
        if names.position_embed is not None:
            x = x + getattr(self, names.position_embed)(positions)
        rope = None if names.rotary is None else getattr(self, names.rotary)(x, positions)
        for layer in self.layers:
            x = layer(x, cache, rope)
        if cache is not None:
            cache.length += length
        return self.norm(x)
