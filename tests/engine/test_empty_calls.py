"""Valid calls with no rows (an MoE expert that got no tokens, an empty batch) are quiet.

Every AITER path quantguard knows (``quantguard.contracts.aiter_paths``: the
quant producer, the weight preparation and the GEMM of each scheme x
backend) runs on the simulator with M = 0, with every call sampled.  The host
sees what it sees without quantguard, and quantguard logs no internal error
and no violation: with no rows there is nothing to measure.
"""

from __future__ import annotations

import pytest
import torch

import quantguard
import quantguard.sim as sim
from quantguard.contracts.aiter_paths import PATHS
from quantguard.testing import capture_events

ROWS = {path.name: path for path in PATHS}


def _run(path, rows: int):
    from quantguard.validate.quantize_kernels import KernelPath, quantize_weight

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(rows, 512, generator=generator).to(torch.bfloat16)
    weight = (torch.randn(256, 512, generator=generator) * 0.02).to(torch.bfloat16)
    runnable = KernelPath(path)
    try:
        return runnable.run(x, runnable.prepare(quantize_weight(path.scheme, weight)), torch.bfloat16), None
    except Exception as exc:  # noqa: BLE001 - compared with the quantguard-off run
        return None, exc


@pytest.fixture(scope="module")
def simulated():
    sim.install(arch="gfx950", release_build=True)  # every row's kernels exist and run there
    yield
    sim.uninstall()


def test_every_path_with_no_rows_is_quiet(simulated, quiet_log):
    """All rows under one enable (as a server runs them), each compared with its quantguard-off run."""
    baselines = {name: _run(path, 0) for name, path in ROWS.items()}
    assert sum(error is None for _, error in baselines.values()) >= len(ROWS) // 2  # most kernels take M = 0
    with capture_events() as events:
        quantguard.enable(log=quiet_log, sample_rate=1.0, on_block="log")
        try:
            guarded = {name: _run(path, 0) for name, path in ROWS.items()}
        finally:
            quantguard.disable()
    for name, (baseline, error) in baselines.items():
        out, guarded_error = guarded[name]
        assert type(guarded_error) is type(error), (name, repr(error), repr(guarded_error))
        assert error is not None or torch.equal(baseline, out), name
    assert not events.named("internal_error"), [(e["target"], e["error"]) for e in events.named("internal_error")]
    assert not events.violations(), [(e["target"], e["check"], e["message"]) for e in events.violations()]


def _moe(aiter, quant: str, tokens: int):
    """Routing then fused MoE for ``tokens`` tokens (0: the expert batch that got no tokens)."""
    from aiter.fused_moe import fused_moe
    from aiter.ops.shuffle import shuffle_weight

    experts, hidden, inter, topk = 8, 256, 256, 2
    generator = torch.Generator().manual_seed(3)
    w1 = torch.randn(experts, 2 * inter, hidden, generator=generator) / hidden**0.5
    w2 = torch.randn(experts, hidden, inter, generator=generator) / inter**0.5
    quant_type = getattr(aiter.QuantType, quant)
    scales = [None, None]
    if quant == "per_Token":
        fp8 = aiter.dtypes.fp8
        limit = torch.finfo(fp8).max
        scales = [w.abs().amax(-1, keepdim=True) / limit for w in (w1, w2)]
        w1, w2 = ((w / s).to(fp8) for w, s in zip((w1, w2), scales))
    else:
        w1, w2 = w1.bfloat16(), w2.bfloat16()
    logits = torch.randn(tokens, experts, generator=generator)
    weights = torch.empty(tokens, topk)
    ids = torch.empty(tokens, topk, dtype=torch.int32)
    aiter.biased_grouped_topk(logits, torch.zeros(experts), weights, ids, 2, 1, True, routed_scaling_factor=2.5)
    x = torch.randn(tokens, hidden, generator=generator).bfloat16()
    return fused_moe(
        x,
        shuffle_weight(w1),
        shuffle_weight(w2),
        weights,
        ids,
        quant_type=quant_type,
        w1_scale=scales[0],
        w2_scale=scales[1],
    )


@pytest.mark.parametrize("tokens", [0, 3])
@pytest.mark.parametrize("quant", ["No", "per_Token"])
def test_an_moe_batch_without_tokens_is_quiet(simulated, quant, tokens, quiet_log):
    import aiter

    try:
        baseline, error = _moe(aiter, quant, tokens), None
    except Exception as exc:  # noqa: BLE001 - compared with the quantguard-off run
        baseline, error = None, exc
    with capture_events() as events:
        quantguard.enable(log=quiet_log, sample_rate=1.0)
        try:
            guarded, guarded_error = _moe(aiter, quant, tokens), None
        except Exception as exc:  # noqa: BLE001
            guarded, guarded_error = None, exc
        finally:
            quantguard.disable()
    assert type(guarded_error) is type(error), (repr(error), repr(guarded_error))
    if error is None:
        assert torch.equal(baseline, guarded)
    assert not events.named("internal_error"), [e["error"] for e in events.named("internal_error")]
    assert not events.violations(), [(e["check"], e["message"]) for e in events.violations()]
