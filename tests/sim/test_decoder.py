"""The workload's decoder blocks: ATOM's single rounding, the cache, module names, and cached decoding."""

from __future__ import annotations

import math

import torch
from torch import nn

from quantguard.sim import decoder


class _LinearParts:
    def __init__(self) -> None:
        self.names: list[str] = []

    def linear(self, name: str, in_features: int, out_features: int) -> nn.Module:
        self.names.append(name)
        return nn.Linear(in_features, out_features, bias=False)


class _CausalAttention(nn.Module):
    """Single-head causal attention over (T, hidden) that caches its keys and values, as the workload's MLA is called."""

    def __init__(self, parts: _LinearParts, name: str, hidden: int):
        super().__init__()
        self.q_proj = parts.linear(f"{name}.q_proj", hidden, hidden)
        self.k_proj = parts.linear(f"{name}.k_proj", hidden, hidden)
        self.v_proj = parts.linear(f"{name}.v_proj", hidden, hidden)

    def forward(self, x: torch.Tensor, cache: decoder.KVCache, layer: int) -> torch.Tensor:
        past, length = cache.length, x.shape[0]
        k, v = cache.extend(layer, self.k_proj(x), self.v_proj(x))
        scores = self.q_proj(x) @ k.T / math.sqrt(x.shape[-1])
        future = torch.ones(length, past + length, dtype=torch.bool).triu(past + 1)
        return torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1) @ v


def _stack(parts: _LinearParts, hidden: int = 32, layers: int = 2) -> decoder.DecoderStack:
    def layer(index: int) -> decoder.DecoderLayer:
        name = f"layers.{index}"
        return decoder.DecoderLayer(
            index,
            input_norm=decoder.RMSNorm(hidden),
            attn=_CausalAttention(parts, f"{name}.attn", hidden),
            post_norm=decoder.RMSNorm(hidden),
            mlp=decoder.GatedMLP(parts, f"{name}.mlp", hidden, 64),
        )

    torch.manual_seed(0)
    return decoder.DecoderStack(
        embed=nn.Embedding(50, hidden),
        pos_embed=nn.Embedding(16, hidden),
        layers=nn.ModuleList(layer(i) for i in range(layers)),
        norm=decoder.RMSNorm(hidden),
    ).eval()


def test_rms_norm_scales_in_fp32_and_rounds_once():
    x = torch.randn(64, 256, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    norm = decoder.RMSNorm(256, dtype=torch.bfloat16)
    norm.weight.data = (torch.rand(256, generator=torch.Generator().manual_seed(1)) + 0.5).to(torch.bfloat16)
    normalised = x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + 1e-6)
    out = norm(x)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, (normalised * norm.weight.float()).to(torch.bfloat16))
    # Hugging Face's order (round, then scale in BF16) differs: the test sees a second rounding
    assert not torch.equal(out, norm.weight * normalised.to(torch.bfloat16))


def test_kv_cache_appends_along_the_given_dimension():
    cache = decoder.KVCache(2)
    first = torch.ones(1, 2, 3, 4)
    k, v = cache.extend(1, first, 2 * first, dim=2)
    assert k is first and torch.equal(v, 2 * first)  # the first step is stored as is
    k, v = cache.extend(1, 3 * first, 4 * first, dim=2)
    assert k.shape == (1, 2, 6, 4) and torch.equal(v[:, :, 3:], 4 * first)
    assert cache.entries[0] is None and cache.length == 0


def test_gated_mlp_splits_the_merged_projection_and_rounds_the_activation_once():
    mlp = decoder.GatedMLP(_LinearParts(), "mlp", 16, 32).to(torch.bfloat16)
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(3)).to(torch.bfloat16)
    merged = mlp.gate_up_proj(x)
    gate, up = merged[:, :32], merged[:, 32:]  # gate first: ATOM's merged gate_up layout
    once = (nn.functional.silu(gate.float()) * up.float()).to(torch.bfloat16)
    assert torch.equal(mlp(x), mlp.down_proj(once))
    assert not torch.equal(mlp(x), mlp.down_proj(nn.functional.silu(gate) * up))  # BF16 activation rounds more


def test_blocks_register_the_workload_names_in_order():
    parts = _LinearParts()
    modules = [name for name, _ in _stack(parts).named_modules()]
    assert modules[:10] == [
        "",
        "embed",
        "pos_embed",
        "layers",
        "layers.0",
        "layers.0.input_norm",
        "layers.0.attn",
        "layers.0.attn.q_proj",
        "layers.0.attn.k_proj",
        "layers.0.attn.v_proj",
    ]
    assert modules[-5:] == [
        "layers.1.post_norm",
        "layers.1.mlp",
        "layers.1.mlp.gate_up_proj",
        "layers.1.mlp.down_proj",
        "norm",
    ]
    assert [name for name in modules if name.endswith("_proj")] == parts.names  # parts saw the qualified names


def test_cached_decoding_matches_a_full_recompute():
    stack = _stack(_LinearParts())
    ids = torch.randint(0, 50, (9,), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full = stack(ids, stack.new_cache())
        cache = stack.new_cache()
        steps = [stack(ids[:5], cache)] + [stack(ids[t : t + 1], cache) for t in range(5, 9)]
        prefix = stack(ids[:5], stack.new_cache())
    assert cache.length == 9
    torch.testing.assert_close(torch.cat(steps), full)  # positions continue from the cache's length
    torch.testing.assert_close(prefix, full[:5])  # causal: later tokens do not change earlier rows
