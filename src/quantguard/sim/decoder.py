"""Decoder building blocks of the simulated ATOM workload (:mod:`quantguard.sim.workload`).

The workload's decoder is a pre-norm residual stack with learned absolute
positions. Its quantized (ATOM) model and its references are one decoder
built with different parts: :class:`Parts` builds each linear layer (an ATOM
layer, a dense BF16 one, ...), so every module keeps the same qualified name
(``layers.0.attn.q_proj``) in all of them, which the checkpoint loads by and
forward hooks compare by. The blocks round as ATOM's fused kernels do: once,
from fp32 (:class:`RMSNorm`, :class:`GatedMLP`).

The module lives in :mod:`quantguard.sim`, which the runtime never imports
(pyproject ``[tool.importlinter]``).
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

__all__ = [
    "DecoderLayer",
    "DecoderStack",
    "GatedMLP",
    "KVCache",
    "Loadable",
    "Parts",
    "RMSNorm",
]


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
    """RMSNorm as ATOM's fused kernel computes it: fp32 statistics and scale, rounded once to the input's dtype."""

    def __init__(self, dim: int, eps: float = 1e-6, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return (h * self.weight.float()).to(x.dtype)


class KVCache:
    """Per-layer cached tensors and the number of positions already processed.

    What a layer caches is its attention's choice (MLA caches its compressed
    latent); :meth:`extend` appends along the sequence dimension.
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


class GatedMLP(nn.Module):
    """SiLU-gated MLP as ATOM runs it: ``down_proj(silu(gate) * up)``.

    ``gate`` and ``up`` come from one merged ``gate_up_proj``; the SiLU and the
    product run in fp32 and are rounded once before ``down_proj`` (ATOM's
    fused ``silu_and_mul``).
    """

    def __init__(self, parts: Parts, name: str, hidden: int, intermediate: int):
        super().__init__()
        self.gate_up_proj = parts.linear(f"{name}.gate_up_proj", hidden, 2 * intermediate)
        self.down_proj = parts.linear(f"{name}.down_proj", intermediate, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
        return self.down_proj((nn.functional.silu(gate.float()) * up.float()).to(x.dtype))


class DecoderLayer(nn.Module):
    """Pre-norm residual layer: ``x + attn(input_norm(x))``, then ``x + mlp(post_norm(x))``.

    The attention is called as ``attn(x, cache, index)``; the blocks are
    registered in that order, under those names.
    """

    def __init__(self, index: int, input_norm: nn.Module, attn: nn.Module, post_norm: nn.Module, mlp: nn.Module):
        super().__init__()
        self.index = index
        self.input_norm, self.attn, self.post_norm, self.mlp = input_norm, attn, post_norm, mlp

    def forward(self, x: torch.Tensor, cache: KVCache) -> torch.Tensor:
        x = x + self.attn(self.input_norm(x), cache, self.index)
        return x + self.mlp(self.post_norm(x))


class DecoderStack(nn.Module):
    """Token ids (..., T) -> final-norm hidden states (..., T, hidden), extending ``cache``.

    Positions are learned (``pos_embed``, added to the token embedding) and
    continue from the cache's length. Modules are registered in the order
    ``embed``, ``pos_embed``, ``layers``, ``norm``.
    """

    def __init__(self, embed: nn.Module, pos_embed: nn.Module, layers: nn.ModuleList, norm: nn.Module):
        super().__init__()
        self.embed, self.pos_embed, self.layers, self.norm = embed, pos_embed, layers, norm

    def new_cache(self) -> KVCache:
        return KVCache(len(self.layers))

    def forward(self, input_ids: torch.Tensor, cache: KVCache) -> torch.Tensor:
        length = input_ids.shape[-1]
        positions = torch.arange(cache.length, cache.length + length, device=input_ids.device)
        x = self.embed(input_ids) + self.pos_embed(positions)
        for layer in self.layers:
            x = layer(x, cache)
        cache.length += length
        return self.norm(x)
