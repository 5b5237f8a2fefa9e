"""Fused norm/activation + quant producers are observed like the plain ones: the GEMM they feed gets the chain.

The simulator's Triton fused producers feed the GEMMs ATOM pairs them with;
a clean chain is quiet, and a wrong x_scale handed to the GEMM downstream
(ones, another activation's) fails the unquantized quant→GEMM chain
reference, which names the fused producer.
"""

from __future__ import annotations

import pytest
import torch

import quantguard
import quantguard.sim as sim
from quantguard.contracts.aiter import fused_table
from quantguard.contracts.aiter.fused_adapters import rms_norm, silu_mul
from quantguard.testing import capture_events

N, K = 256, 512


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _x(m: int, cols: int = K, seed: int = 0) -> torch.Tensor:
    x = torch.randn(m, cols, generator=_gen(seed)) * 2
    x[:, 5] *= 30  # an outlier channel
    return x.to(torch.bfloat16)


def _norm_weight() -> torch.Tensor:
    return (torch.rand(K, generator=_gen(7)) + 0.5).to(torch.bfloat16)


def _weights(fp8):
    top = torch.finfo(fp8).max
    w = torch.randn(N, K, generator=_gen(1)) * 0.05
    row = w.abs().amax(1, keepdim=True) / top
    block = w.view(N // 128, 128, K // 128, 128).abs().amax((1, 3)) / top
    return (w / row).to(fp8), row, (w / block.repeat_interleave(128, 0).repeat_interleave(128, 1)).to(fp8), block


def _static_scale(x: torch.Tensor, fp8) -> torch.Tensor:
    """A calibrated static per-tensor scale (covers the activation with a little headroom)."""
    return (x.float().abs().amax() * 1.25 / torch.finfo(fp8).max).reshape(1)


def _rms_static(a, m, wrong):
    from aiter.ops.triton.quant import fused_fp8_quant as ff
    from aiter.tuned_gemm import tgemm

    wq, _, _, _ = _weights(a.dtypes.fp8)
    w_scale = _weights(a.dtypes.fp8)[1].max().reshape(1)
    x = _x(m)
    scale = _static_scale(rms_norm(x, _norm_weight(), 1e-6), a.dtypes.fp8)
    q, *_ = ff.fused_rms_fp8_per_tensor_static_quant(x, _norm_weight(), 1e-6, scale, dtype_quant=a.dtypes.fp8)
    return tgemm.mm(q, wq, None, torch.bfloat16, wrong(scale), w_scale)


def _silu_static(a, m, wrong):
    from aiter.ops.triton.quant import fused_fp8_quant as ff
    from aiter.tuned_gemm import tgemm

    wq, _, _, _ = _weights(a.dtypes.fp8)
    w_scale = _weights(a.dtypes.fp8)[1].max().reshape(1)
    inp = _x(m, 2 * K)
    scale = _static_scale(silu_mul(inp), a.dtypes.fp8)
    q = ff.fused_silu_mul_fp8_per_tensor_static_quant(inp, scale, dtype_quant=a.dtypes.fp8)
    return tgemm.mm(q, wq, None, torch.bfloat16, wrong(scale), w_scale)


def _reduce_rms_group(a, m, wrong):
    from aiter.ops.triton.gemm.basic.gemm_a8w8_blockscale import gemm_a8w8_blockscale
    from aiter.ops.triton.quant import fused_fp8_quant as ff

    _, _, wq, w_scale = _weights(a.dtypes.fp8)
    partials = torch.stack([_x(m, seed=s) for s in (0, 1)])  # split-K partial sums
    (q, scale), *_ = ff.fused_reduce_rms_fp8_group_quant(
        partials, _norm_weight(), 1e-6, group_size=128, dtype_quant=a.dtypes.fp8
    )
    return gemm_a8w8_blockscale(q, wq, wrong(scale), w_scale)


def _reduce_rms_group_transposed(a, m, wrong):
    """transpose_scale=True: (G, M) bytes in an (M, G) tensor, read by the bpreshuffle GEMM."""
    from aiter.ops.shuffle import shuffle_weight
    from aiter.ops.triton.quant import fused_fp8_quant as ff

    _, _, wq, w_scale = _weights(a.dtypes.fp8)
    (q, scale), *_ = ff.fused_reduce_rms_fp8_group_quant(
        _x(m), _norm_weight(), 1e-6, group_size=128, dtype_quant=a.dtypes.fp8, transpose_scale=True
    )
    return a.gemm_a8w8_blockscale_bpreshuffle(q, shuffle_weight(wq, layout=(16, 16)), wrong(scale), w_scale)


def _flatten_group(a, m, wrong):
    from aiter.ops.triton.gemm.basic.gemm_a8w8_blockscale import gemm_a8w8_blockscale
    from aiter.ops.triton.quant import fused_fp8_quant as ff

    _, _, wq, w_scale = _weights(a.dtypes.fp8)
    x = _x(m).reshape(m, 4, K // 4)  # (M, heads, head_dim) flattened to (M, K)
    q, scale = ff.fused_flatten_fp8_group_quant(x, group_size=128, dtype_quant=a.dtypes.fp8)
    return gemm_a8w8_blockscale(q, wq, wrong(scale), w_scale)


CHAINS = {
    "fused_rms_fp8_per_tensor_static_quant": _rms_static,
    "fused_silu_mul_fp8_per_tensor_static_quant": _silu_static,
    "fused_reduce_rms_fp8_group_quant": _reduce_rms_group,
    "fused_reduce_rms_fp8_group_quant(transpose_scale=True)": _reduce_rms_group_transposed,
    "fused_flatten_fp8_group_quant": _flatten_group,
}


def _another_activations(scale: torch.Tensor) -> torch.Tensor:
    """Another activation's scale of the same shape and layout (a different magnitude per row)."""
    factors = torch.linspace(0.2, 3.0, scale.numel()).reshape(scale.shape)
    return (scale * factors).as_strided(scale.shape, scale.stride()) if scale.numel() > 1 else scale * 3.0


WRONG = {
    "ones": lambda s: torch.ones_like(s).as_strided(s.shape, s.stride()),
    "another_activation": _another_activations,
}


def test_every_fused_producer_is_observed():
    """Each fused producer contract records provenance; static ones (no scales written) record their input too."""
    for contract in fused_table.CONTRACTS:
        assert "provenance_record" in contract.checks, contract.target
        if "static" in contract.target:
            assert "static_producer_record" in contract.checks, contract.target


@pytest.mark.parametrize("arch", sim.ARCHS)
@pytest.mark.parametrize("m", [1, 7, 257, 300])
@pytest.mark.parametrize("chain", sorted(CHAINS))
def test_clean_fused_chains_are_quiet(tmp_path, arch, m, chain):
    sim.install(arch)
    import aiter

    with capture_events() as events:
        quantguard.enable(log=str(tmp_path / "log.jsonl"), sample_rate=1.0)
        out = CHAINS[chain](aiter, m, lambda s: s)
    assert out.shape == (m, N)
    assert not events.violations(), [(e["check"], e["message"]) for e in events.violations()]


@pytest.mark.parametrize("arch", sim.ARCHS)
@pytest.mark.parametrize("wrong", sorted(WRONG))
@pytest.mark.parametrize("chain", sorted(CHAINS))
def test_wrong_x_scale_downstream_of_a_fused_producer(tmp_path, arch, wrong, chain):
    sim.install(arch)
    import aiter

    with capture_events() as events:
        quantguard.enable(log=str(tmp_path / "log.jsonl"), sample_rate=1.0)
        CHAINS[chain](aiter, 40, WRONG[wrong])
    failed = [e for e in events.violations(check="numerics") if e["details"]["reference"] == "chain"]
    assert failed, [(e["check"], e["message"]) for e in events.violations()]
    assert "unquantized quant→GEMM chain" in failed[0]["message"]
    produced_by = [e["producer"] for e in events.named("shadow") if e.get("reference") == "chain"]
    assert produced_by and chain.split("(")[0] in produced_by[0]


@pytest.mark.parametrize("fault", [False, True], ids=["exact", "scale-ignored"])
def test_a_static_quantizer_is_judged_against_its_own_scale_not_the_calibration(tmp_path, monkeypatch, fault):
    """Rows far below a static per-tensor scale land in fp8's subnormal steps, so q * scale reproduces
    them poorly although the kernel did exactly its job (x / scale, rounded): quiet. A kernel that does
    not divide by the scale is caught."""
    sim.install("gfx950")
    import aiter
    from aiter.ops.triton.quant import fused_fp8_quant as ff

    inp = _x(32, 2 * K)
    # calibrated on a batch 5000x larger: this batch sits in fp8's lowest binades
    scale = _static_scale(silu_mul(inp) * 5000, aiter.dtypes.fp8)
    if fault:
        exact = ff._static_quant
        monkeypatch.setattr(ff, "_static_quant", lambda x, s, dtype: exact(x, torch.ones_like(s), dtype))
    with capture_events() as events:
        quantguard.enable(log=str(tmp_path / "log.jsonl"), sample_rate=1.0, shadow_full=True)
        ff.fused_silu_mul_fp8_per_tensor_static_quant(inp, scale, dtype_quant=aiter.dtypes.fp8)
        quantguard.disable()
    found = {e["check"] for e in events.violations()}
    assert found == ({"numerics"} if fault else set()), found
