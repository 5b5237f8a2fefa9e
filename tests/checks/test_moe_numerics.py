"""``moe_numerics`` follows the requested activation: SiLU, or AITER's gpt-oss Swiglu.

The incident: ``fused_moe(activation=ActivationType.Swiglu)`` ran a kernel
that applied plain SiLU (simulated: ``moe_swiglu_runs_silu``), an amplitude
loss that a SiLU-only reference could never see.
"""

from __future__ import annotations

import pytest
import torch

import quantguard
import quantguard.sim as sim
from quantguard.checks.moe_numerics import gated_activation
from quantguard.contracts.views import MoeView
from quantguard.testing import capture_events

TOKENS, HIDDEN, INTER, EXPERTS, TOPK = 8, 256, 256, 4, 2


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _run_fused_moe(activation: str, quant: str):
    import aiter
    from aiter.fused_moe import fused_moe
    from aiter.ops.shuffle import shuffle_weight

    w1 = torch.randn(EXPERTS, 2 * INTER, HIDDEN, generator=_gen(1)) / HIDDEN**0.5
    w2 = torch.randn(EXPERTS, HIDDEN, INTER, generator=_gen(2)) / INTER**0.5
    scales = {}
    if quant == "per_1x128":
        fp8 = aiter.dtypes.fp8
        quantized = []
        for name, w in (("w1_scale", w1), ("w2_scale", w2)):
            e, rows, cols = w.shape
            scale = w.view(e, rows // 128, 128, cols // 128, 128).abs().amax((2, 4)) / 240.0
            quantized.append((w / scale.repeat_interleave(128, 1).repeat_interleave(128, 2)).to(fp8))
            scales[name] = scale
        w1, w2 = quantized
    else:
        w1, w2 = w1.bfloat16(), w2.bfloat16()
    ids = torch.stack([torch.randperm(EXPERTS, generator=_gen(10 + t))[:TOPK] for t in range(TOKENS)]).int()
    weights = torch.rand(TOKENS, TOPK, generator=_gen(3)) + 0.5
    x = torch.randn(TOKENS, HIDDEN, generator=_gen(4)).bfloat16()
    return fused_moe(
        x,
        shuffle_weight(w1),
        shuffle_weight(w2),
        weights,
        ids,
        activation=getattr(aiter.ActivationType, activation),
        quant_type=getattr(aiter.QuantType, quant),
        **scales,
    )


@pytest.mark.parametrize("quant", ["No", "per_1x128"])
@pytest.mark.parametrize(
    "activation, faults, flagged",
    [
        ("Silu", (), False),
        ("Swiglu", (), False),
        ("Silu", ("moe_swiglu_runs_silu",), False),  # the fault only touches Swiglu
        ("Swiglu", ("moe_swiglu_runs_silu",), True),
    ],
    ids=["silu", "swiglu", "silu-with-fault", "swiglu-runs-silu"],
)
def test_moe_reference_follows_the_activation(quiet_log, quant, activation, faults, flagged):
    sim.install("gfx942", faults=faults)
    with capture_events() as events:
        quantguard.enable(log=quiet_log, sample_rate=1.0, on_block="log")
        _run_fused_moe(activation, quant)
    shadows = [e for e in events.named("shadow") if e["target"] == "aiter.fused_moe.fused_moe"]
    found = events.violations(check="numerics", target="aiter.fused_moe.fused_moe")
    assert shadows and all(e["passed"] is not flagged for e in shadows)
    assert bool(found) is flagged
    if flagged:
        assert f"per-expert {activation.lower()} reference" in found[0]["message"]


def test_swiglu_reference_is_aiters_gpt_oss_swiglu():
    """alpha 1.702, gate clamped above at the limit, up clamped both ways, then ``up + 1``."""
    view = MoeView(None, None, None, None, None, None, "none", activation="swiglu")
    gate = torch.tensor([-2.0, 0.5, 9.0])
    up = torch.tensor([-9.0, 0.25, 3.0])
    expected = torch.tensor(
        [
            -2.0 * torch.sigmoid(torch.tensor(-3.404)) * (-7.0 + 1),
            0.5 * torch.sigmoid(torch.tensor(0.851)) * 1.25,
            7.0 * torch.sigmoid(torch.tensor(11.914)) * 4.0,
        ]
    )
    torch.testing.assert_close(gated_activation(view, gate, up), expected)
    silu = MoeView(None, None, None, None, None, None, "none")
    torch.testing.assert_close(gated_activation(silu, gate, up), torch.nn.functional.silu(gate) * up)
