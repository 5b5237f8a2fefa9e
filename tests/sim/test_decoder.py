"""The shared decoder blocks: rounding variants, the cache, names, and cached decoding."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from quantguard.sim import decoder


class _LinearParts:
    def __init__(self) -> None:
        self.names: list[str] = []

    def linear(self, name: str, in_features: int, out_features: int) -> nn.Module:
        self.names.append(name)
        return nn.Linear(in_features, out_features, bias=False)


def _stack(parts: _LinearParts, names: decoder.LayerNames, hidden: int = 32, layers: int = 2) -> decoder.DecoderStack:
    def layer(index: int) -> decoder.DecoderLayer:
        name = f"layers.{index}"
        return decoder.DecoderLayer(
            index,
            names,
            input_norm=decoder.RMSNorm(hidden),
            attention=decoder.GroupedQueryAttention(parts, f"{name}.{names.attention}", hidden, 4, 2, hidden // 4),
            post_norm=decoder.RMSNorm(hidden),
            mlp=decoder.GatedMLP(parts, f"{name}.{names.mlp}", hidden, 64, fused=False, fp32_activation=False),
        )

    torch.manual_seed(0)
    return decoder.DecoderStack(
        decoder.StackNames(embed="tok", rotary="rope"),
        embed=nn.Embedding(50, hidden),
        layers=nn.ModuleList(layer(i) for i in range(layers)),
        norm=decoder.RMSNorm(hidden),
        rotary=decoder.Rotary(hidden // 4, 10000.0),
    ).eval()


def _random_weight(norm: decoder.RMSNorm) -> decoder.RMSNorm:
    norm.weight.data = torch.rand(norm.weight.shape, generator=torch.Generator().manual_seed(1)) + 0.5
    return norm


def test_rms_norm_rounds_once_or_before_the_scale():
    x = torch.randn(64, 256, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    once = _random_weight(decoder.RMSNorm(256, scale_in_fp32=True))
    twice = _random_weight(decoder.RMSNorm(256, scale_in_fp32=False))
    exact = once(x.float())
    assert torch.equal(exact, twice(x.float()))  # fp32 in: the two orders agree
    assert torch.equal(once(x), exact.to(torch.bfloat16))
    twice.to(torch.bfloat16)
    assert twice(x).dtype == torch.bfloat16 and not torch.equal(twice(x), once(x))


def test_kv_cache_appends_along_the_given_dimension():
    cache = decoder.KVCache(2)
    first = torch.ones(1, 2, 3, 4)
    k, v = cache.extend(1, first, 2 * first, dim=2)
    assert k is first and torch.equal(v, 2 * first)  # the first step is stored as is
    k, v = cache.extend(1, 3 * first, 4 * first, dim=2)
    assert k.shape == (1, 2, 6, 4) and torch.equal(v[:, :, 3:], 4 * first)
    assert cache.entries[0] is None and cache.length == 0


def test_fused_and_separate_gate_up_compute_the_same_mlp():
    separate = decoder.GatedMLP(_LinearParts(), "mlp", 16, 32, fused=False, fp32_activation=False)
    fused = decoder.GatedMLP(_LinearParts(), "mlp", 16, 32, fused=True, fp32_activation=True)
    fused.gate_up_proj.weight.data = torch.cat([separate.gate_proj.weight, separate.up_proj.weight])
    fused.down_proj.weight.data = separate.down_proj.weight.data
    x = torch.randn(5, 16)
    torch.testing.assert_close(fused(x), separate(x), rtol=0, atol=0)


def test_blocks_keep_the_names_they_are_given():
    parts = _LinearParts()
    names = decoder.LayerNames(input_norm="ln1", attention="attn", post_norm="ln2", mlp="ffn")
    stack = _stack(parts, names)
    modules = [name for name, _ in stack.named_modules()]
    assert modules[:4] == ["", "tok", "layers", "layers.0"]
    assert {"layers.1.ln1", "layers.1.attn.k_proj", "layers.1.ln2", "layers.1.ffn.up_proj", "norm", "rope"} <= set(
        modules
    )
    assert [name for name in modules if name.endswith("_proj")] == parts.names  # parts saw the qualified names
    with pytest.raises(ValueError, match="position modules"):
        decoder.DecoderStack(
            decoder.StackNames(embed="tok", rotary="rope"), nn.Embedding(2, 2), nn.ModuleList(), nn.Identity()
        )


def test_cached_decoding_matches_a_full_recompute():
    stack = _stack(_LinearParts(), decoder.LayerNames("input_norm", "attn", "post_norm", "mlp"))
    ids = torch.randint(0, 50, (3, 9), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full = stack(ids)
        cache = stack.new_cache()
        steps = [stack(ids[:, :5], cache)] + [stack(ids[:, t : t + 1], cache) for t in range(5, 9)]
        prefix = stack(ids[:, :5])
    assert cache.length == 9
    torch.testing.assert_close(torch.cat(steps, dim=1), full)
    torch.testing.assert_close(prefix, full[:, :5])  # causal: later tokens do not change earlier rows
