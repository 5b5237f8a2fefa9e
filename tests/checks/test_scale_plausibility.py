"""x_scale plausibility for GEMMs whose activation no guarded producer wrote: a weaker verdict, as a warning."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import quantguard
import quantguard.sim as sim
from quantguard.contracts import aiter as aiter_contracts
from quantguard.testing import capture_events

N, K = 256, 512
FP8 = torch.float8_e4m3fn  # gfx950


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _activation(m: int, seed: int = 0, outliers: bool = True) -> torch.Tensor:
    x = torch.randn(m, K, generator=_gen(seed)) * 2
    if outliers:
        x[:, 5] *= 60  # outlier channel, as after attention in real models
    return x


def _per_token(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantized by code quantguard does not guard: no producer is observed."""
    scale = x.abs().amax(-1, keepdim=True).clamp(min=1e-10) / 448.0
    return (x / scale).to(FP8), scale


def _per_group(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    groups = x.reshape(x.shape[0], -1, 128)
    scale = groups.abs().amax(-1).clamp(min=1e-10) / 448.0
    return (groups / scale.unsqueeze(-1)).reshape(x.shape).to(FP8), scale


def _weights():
    w = torch.randn(N, K, generator=_gen(1)) * 0.05
    row = w.abs().amax(1, keepdim=True) / 448.0
    block = w.view(N // 128, 128, K // 128, 128).abs().amax((1, 3)) / 448.0
    return (w / row).to(FP8), row, (w / block.repeat_interleave(128, 0).repeat_interleave(128, 1)).to(FP8), block


def _gemms():
    from aiter.ops.triton.gemm.basic import gemm_a8w8, gemm_a8w8_blockscale

    return gemm_a8w8.gemm_a8w8, gemm_a8w8_blockscale.gemm_a8w8_blockscale


@pytest.fixture
def guarded(tmp_path):
    """The Triton GEMMs with scale_plausibility added to their bundle (the lead's one-line change)."""
    sim.install("gfx950")
    for contract in aiter_contracts.CONTRACTS:
        if contract.kind == "gemm":
            quantguard.register(dataclasses.replace(contract, checks=contract.checks + ("scale_plausibility",)))
    quantguard.enable(log=str(tmp_path / "log.jsonl"), sample_rate=1.0)
    return _gemms()


def _run(gemm, scheme, xq, xs, weights):
    wq_row, w_row, wq_block, w_block = weights
    if scheme == "per_token":
        return gemm[0](xq, wq_row, xs, w_row)
    return gemm[1](xq, wq_block, xs, w_block)


@pytest.mark.parametrize("m", [1, 7, 257, 300])
@pytest.mark.parametrize("scheme", ["per_token", "block"])
@pytest.mark.parametrize("outliers", [False, True])
def test_clean_producer_less_gemms_are_quiet(guarded, m, scheme, outliers):
    x = _activation(m, outliers=outliers)
    xq, xs = (_per_token if scheme == "per_token" else _per_group)(x)
    with capture_events() as events:
        _run(guarded, scheme, xq, xs, _weights())
    assert not events.violations(), [e["message"] for e in events.violations()]


@pytest.mark.parametrize("m", [7, 300])
@pytest.mark.parametrize("scheme", ["per_token", "block"])
def test_scale_of_ones_is_a_weaker_warning(guarded, m, scheme):
    xq, xs = (_per_token if scheme == "per_token" else _per_group)(_activation(m))
    with capture_events() as events:
        _run(guarded, scheme, xq, torch.ones_like(xs), _weights())
    [warning] = events.violations(check="scale_plausibility")
    assert warning["severity"] == "warning"
    assert warning["details"]["weaker"] is True and warning["details"]["verdict"] == "plausibility"
    assert warning["details"]["producer"] is None and warning["details"]["diagnosis"] == "ones"
    assert "x_scale is 1.0 for every sampled row/group" in warning["message"]


@pytest.mark.parametrize("m", [1, 7, 300])
def test_dynamic_scale_for_bytes_it_did_not_quantize(guarded, m):
    """Bytes from a static per-tensor quantization read with another activation's dynamic group scales."""
    x = _activation(m)
    static = (x / 0.5).clamp(-448, 448).to(FP8)  # a calibrated static scale leaves the groups far below 448
    _, other = _per_group(_activation(m, seed=3))
    with capture_events() as events:
        _run(guarded, "block", static, other, _weights())
    [warning] = events.violations(check="scale_plausibility")
    assert warning["details"]["diagnosis"] == "maxima_far_from_format_max"
    assert "were not quantized with this x_scale" in warning["message"]


def test_scale_written_for_another_activation(guarded):
    """A guarded producer wrote the scale, alongside other bytes; the activation itself has no producer."""
    import aiter

    xq, _ = _per_group(_activation(40))
    _, other_scale = aiter.per_group_quant_hip(_activation(40, seed=4).bfloat16(), quant_dtype=aiter.dtypes.fp8)
    with capture_events() as events:
        _run(guarded, "block", xq, other_scale, _weights())
    [warning] = events.violations(check="scale_plausibility")
    assert warning["details"]["diagnosis"] == "another_activation"
    assert "per_group_quant_hip" in warning["message"] and "another activation's scale" in warning["message"]


def test_an_observed_producer_leaves_it_to_the_chain_reference(guarded):
    """With a producer the chain reference judges the scale; no weaker verdict is added."""
    import aiter

    with capture_events() as events:
        xq, xs = aiter.per_group_quant_hip(_activation(40).bfloat16(), quant_dtype=aiter.dtypes.fp8)
        _run(guarded, "block", xq, torch.ones_like(xs), _weights())
    assert not events.violations(check="scale_plausibility")
    chain = [e for e in events.violations(check="numerics") if e["details"]["reference"] == "chain"]
    assert chain and chain[0]["severity"] == "error"
