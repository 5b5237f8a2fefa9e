"""Routing kernels and fused MoE against straightforward per-token references."""

from __future__ import annotations

import pytest
import sim_refs as ref
import torch

TOKENS, HIDDEN, INTER, EXPERTS, TOPK = 12, 256, 256, 8, 2


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _reference_biased_topk(logits, bias, groups, topk_group, topk, factor):
    weights, ids = [], []
    for row in torch.sigmoid(logits.double()):
        choice = row + bias.double()
        per = len(row) // groups
        group_score = [sorted(choice[g * per : (g + 1) * per].tolist())[-2:] for g in range(groups)]
        kept = sorted(range(groups), key=lambda g: -sum(group_score[g]))[:topk_group]
        allowed = [e for e in range(len(row)) if e // per in kept]
        chosen = sorted(allowed, key=lambda e: -choice[e].item())[:topk]
        w = row[chosen]
        weights.append((w / w.sum() * factor).tolist())
        ids.append(chosen)
    return torch.tensor(weights, dtype=torch.float64), torch.tensor(ids)


def test_biased_grouped_topk_matches_reference(install):
    install()
    import aiter

    logits = torch.randn(TOKENS, EXPERTS, generator=_gen(0))
    bias = torch.randn(EXPERTS, generator=_gen(1)) * 0.1
    weights = torch.empty(TOKENS, TOPK)
    ids = torch.empty(TOKENS, TOPK, dtype=torch.int32)
    aiter.biased_grouped_topk(logits, bias, weights, ids, 4, 2, True, 2.5)
    expected_w, expected_ids = _reference_biased_topk(logits, bias, 4, 2, TOPK, 2.5)
    assert torch.equal(ids.long(), expected_ids)
    torch.testing.assert_close(weights.double(), expected_w, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(weights.sum(1), torch.full((TOKENS,), 2.5))


def test_grouped_topk_and_topk_gating_apply_the_scaling_factor(install):
    install()
    import aiter

    logits = torch.randn(TOKENS, EXPERTS, generator=_gen(2))
    weights = torch.empty(TOKENS, TOPK)
    ids = torch.empty(TOKENS, TOPK, dtype=torch.int32)
    aiter.grouped_topk(logits, weights, ids, 4, 2, True, is_softmax=True, routed_scaling_factor=1.5)
    torch.testing.assert_close(weights.sum(1), torch.full((TOKENS,), 1.5))
    groups = torch.softmax(logits, -1).view(TOKENS, 4, 2).amax(-1).topk(2, dim=-1).indices
    assert all(set((ids[t] // 2).tolist()) <= set(groups[t].tolist()) for t in range(TOKENS))
    aiter.topk_gating(weights, ids, logits, None, False, 3.0, score_func="sigmoid")
    top = torch.sigmoid(logits).topk(TOPK, dim=-1)
    assert torch.equal(ids.long(), top.indices)
    torch.testing.assert_close(weights, top.values * 3.0)


def _experts(aiter, quant_type):
    from aiter.ops.shuffle import shuffle_weight

    w1 = torch.randn(EXPERTS, 2 * INTER, HIDDEN, generator=_gen(3)) / HIDDEN**0.5
    w2 = torch.randn(EXPERTS, HIDDEN, INTER, generator=_gen(4)) / INTER**0.5
    if quant_type == aiter.QuantType.No:
        return (
            shuffle_weight(w1.bfloat16()),
            shuffle_weight(w2.bfloat16()),
            None,
            None,
            w1.bfloat16().double(),
            w2.bfloat16().double(),
        )
    fp8 = aiter.dtypes.fp8
    limit = ref.FP8_MAX[fp8]
    quantized = []
    for w in (w1, w2):
        if quant_type == aiter.QuantType.per_Token:
            scale = w.abs().amax(-1, keepdim=True) / limit
            expanded = scale
        else:
            e, rows, cols = w.shape
            scale = w.view(e, rows // 128, 128, cols // 128, 128).abs().amax((2, 4)) / limit
            expanded = scale.repeat_interleave(128, 1).repeat_interleave(128, 2)
        q = (w / expanded).clamp(-limit, limit).to(fp8)
        quantized.append((shuffle_weight(q), scale, ref.dequant_fp8(q, fp8) * expanded.double()))
    (q1, s1, d1), (q2, s2, d2) = quantized
    return q1, q2, s1, s2, d1, d2


def _swiglu(gate, up):
    """AITER's gpt-oss Swiglu (``aiter.fused_moe.swiglu``): alpha 1.702, limit 7, ``up + 1``."""
    gate, up = gate.clamp(max=7.0), up.clamp(-7.0, 7.0)
    return gate * torch.sigmoid(1.702 * gate) * (up + 1)


def _reference_moe(x, d1, d2, weights, ids, mask=None, activation="Silu"):
    out = torch.zeros(x.shape[0], HIDDEN, dtype=torch.float64)
    act = _swiglu if activation == "Swiglu" else (lambda gate, up: torch.nn.functional.silu(gate) * up)
    for t in range(x.shape[0]):
        for w, e in zip(weights[t].tolist(), ids[t].tolist()):
            if mask is not None and not mask[e]:
                continue
            gate, up = (x[t].double() @ d1[e].T).chunk(2)
            out[t] += w * (act(gate, up) @ d2[e].T)
    return out


def _routing():
    ids = torch.stack([torch.randperm(EXPERTS, generator=_gen(10 + t))[:TOPK] for t in range(TOKENS)]).int()
    weights = torch.rand(TOKENS, TOPK, generator=_gen(5)) + 0.5
    return weights, ids


@pytest.mark.parametrize("activation", ["Silu", "Swiglu"])
@pytest.mark.parametrize("quant", ["No", "per_Token", "per_1x128"])
def test_fused_moe_matches_reference(install, arch, quant, activation):
    install(arch)
    import aiter
    from aiter.fused_moe import fused_moe

    quant_type = getattr(aiter.QuantType, quant)
    w1, w2, s1, s2, d1, d2 = _experts(aiter, quant_type)
    x = torch.randn(TOKENS, HIDDEN, generator=_gen(6)).bfloat16()
    weights, ids = _routing()
    act = getattr(aiter.ActivationType, activation)
    out = fused_moe(x, w1, w2, weights, ids, activation=act, quant_type=quant_type, w1_scale=s1, w2_scale=s2)
    expected = _reference_moe(x, d1, d2, weights, ids, activation=activation)
    assert out.dtype == torch.bfloat16 and out.shape == (TOKENS, HIDDEN)
    assert ref.cosine(out, expected) > 0.998
    assert float((out.double() - expected).norm() / expected.norm()) < (0.01 if quant == "No" else 0.06)


def test_fused_moe_options(install):
    install()
    import aiter
    from aiter.fused_moe import fused_moe

    w1, w2, s1, s2, d1, d2 = _experts(aiter, aiter.QuantType.per_Token)
    x = torch.randn(TOKENS, HIDDEN, generator=_gen(7)).bfloat16()
    weights, ids = _routing()
    mask = torch.tensor([1, 0, 1, 1, 0, 1, 1, 1], dtype=torch.int32)
    base = dict(quant_type=aiter.QuantType.per_Token, w1_scale=s1, w2_scale=s2)
    masked = fused_moe(x, w1, w2, weights, ids, expert_mask=mask, **base)
    assert ref.cosine(masked, _reference_moe(x, d1, d2, weights, ids, mask)) > 0.998
    early = fused_moe(x, w1, w2, weights, ids, doweight_stage1=True, **base)
    assert ref.cosine(early, _reference_moe(x, d1, d2, weights, ids)) > 0.998
    partial = fused_moe(
        x, w1, w2, weights, ids, num_local_tokens=torch.tensor([5], dtype=torch.int32), dtype=torch.float16, **base
    )
    assert partial.dtype == torch.float16 and (partial[5:] == 0).all()
    assert ref.cosine(partial[:5], _reference_moe(x[:5], d1, d2, weights[:5], ids[:5])) > 0.998
    with pytest.raises(ValueError, match="a2_scale"):
        fused_moe(x, w1, w2, weights, ids, a2_scale=torch.ones(1), **base)


def test_prequantized_per_1x128_input_uses_partial_transpose(install, monkeypatch):
    install()
    import aiter
    from aiter.fused_moe import fused_moe

    w1, w2, s1, s2, d1, d2 = _experts(aiter, aiter.QuantType.per_1x128)
    x = torch.randn(TOKENS, HIDDEN, generator=_gen(8)).bfloat16()
    weights, ids = _routing()
    xq, xs = aiter.per_group_quant_hip(x, quant_dtype=aiter.dtypes.fp8, group_size=128)
    calls = []
    original = aiter.partial_transpose
    monkeypatch.setattr(aiter, "partial_transpose", lambda *a, **k: calls.append(k) or original(*a, **k))
    kwargs = dict(quant_type=aiter.QuantType.per_1x128, w1_scale=s1, w2_scale=s2)
    prequantized = fused_moe(xq, w1, w2, weights, ids, a1_scale=xs, **kwargs)
    assert len(calls) == 1 and int(calls[0]["num_rows"]) == TOKENS
    torch.testing.assert_close(prequantized, fused_moe(x, w1, w2, weights, ids, **kwargs))


def test_fused_moe_needs_ck(install):
    install(ck_free=True)
    import aiter
    from aiter.fused_moe import fused_moe

    w1, w2, s1, s2, _, _ = _experts(aiter, aiter.QuantType.No)
    weights, ids = _routing()
    with pytest.raises(RuntimeError, match=r"build \[module_moe_ck2stages\]"):
        fused_moe(torch.randn(TOKENS, HIDDEN).bfloat16(), w1, w2, weights, ids)
