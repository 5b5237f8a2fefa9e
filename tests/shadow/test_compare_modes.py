"""``shadow_compare``: exact and allclose verdicts for bit-reproducible precision-matched references."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import quantguard
import quantguard.sim as sim
from quantguard.config import resolve_config
from quantguard.contracts import aiter as aiter_contracts
from quantguard.errors import ConfigError
from quantguard.shadow.thresholds import ALLCLOSE_DEFAULTS, Comparison, compare_tensors, comparison_for
from quantguard.testing import capture_events

M, N, K = 40, 256, 512

#: The sim's CK per-token GEMM wrapped so that one output element moves by one bf16 ulp.
ONE_ULP = """
import torch
import aiter
def gemm_a8w8_CK(XQ, WQ, x_scale, w_scale, bias=None, dtype=torch.bfloat16, splitK=None):
    out = aiter.gemm_a8w8_CK(XQ, WQ, x_scale, w_scale, bias, dtype, splitK)
    bits = out.view(torch.int16)
    bits[3, 5] += 1
    return out
"""


def _operands(aiter):
    gen = torch.Generator().manual_seed(0)
    xq, xs = aiter.per_token_quant_hip((torch.randn(M, K, generator=gen) * 2).bfloat16(), quant_dtype=aiter.dtypes.fp8)
    w = torch.randn(N, K, generator=gen) * 0.05
    ws = w.abs().amax(1, keepdim=True) / torch.finfo(aiter.dtypes.fp8).max
    return xq, (w / ws).to(aiter.dtypes.fp8), xs, ws


def _run(tmp_path, module, aiter, **options):
    with capture_events() as events:
        quantguard.enable(log=str(tmp_path / "log.jsonl"), sample_rate=1.0, shadow_full=True, **options)
        module.gemm_a8w8_CK(*_operands(aiter))
        quantguard.disable()
    return events


@pytest.fixture
def one_ulp(make_module):
    sim.install("gfx942")
    import aiter

    module = make_module("qgt_one_ulp", ONE_ULP)
    template = next(c for c in aiter_contracts.CONTRACTS if c.target.endswith(".gemm_a8w8_CK"))
    quantguard.register(dataclasses.replace(template, target="qgt_one_ulp.gemm_a8w8_CK"))
    return module, aiter


def _matched(events, target):
    return [e for e in events.named("shadow") if e["target"] == target and e["reference"] == "matched"]


def test_one_ulp_passes_cosine_but_not_exact(tmp_path, one_ulp):
    module, aiter = one_ulp
    target = "qgt_one_ulp.gemm_a8w8_CK"
    cosine = _run(tmp_path, module, aiter, targets="qgt_one_ulp.*")
    [result] = _matched(cosine, target)
    assert result["passed"] and result["cosine"] > 0.9999 and "compare" not in result
    assert not cosine.violations(check="numerics")

    exact = _run(tmp_path, module, aiter, targets="qgt_one_ulp.*", shadow_compare="gemm_a8w8_CK=exact")
    [result] = _matched(exact, target)
    assert not result["passed"]
    assert (result["compare"], result["mismatches"], result["compared"]) == ("exact", 1, M * N)
    assert 0 < result["max_abs_diff"] < 0.1
    [violation] = exact.violations(check="numerics")
    assert "1 of 10240 outputs not bit-identical" in violation["message"]
    assert violation["details"]["mismatches"] == 1

    # one ulp is within allclose's default bf16 bound (one rounding unit)
    close = _run(tmp_path, module, aiter, targets="qgt_one_ulp.*", shadow_compare="allclose")
    [result] = _matched(close, target)
    assert result["passed"] and result["compare"] == "allclose" and result["mismatches"] == 0
    assert (result["rtol"], result["atol"]) == ALLCLOSE_DEFAULTS["bfloat16"]


def test_clean_sim_kernel_is_quiet_in_exact_mode(tmp_path):
    """The sim's GEMMs dequantize, multiply in fp32 and cast exactly like the matched reference."""
    sim.install("gfx942")
    import aiter

    with capture_events() as events:
        quantguard.enable(log=str(tmp_path / "log.jsonl"), sample_rate=1.0, shadow_compare="exact")
        aiter.gemm_a8w8_CK(*_operands(aiter))
        quantguard.disable()
    results = [e for e in events.named("shadow") if e["reference"] == "matched"]
    assert results and all(e["compare"] == "exact" and e["mismatches"] == 0 and e["passed"] for e in results)
    assert not events.violations()


def test_most_specific_compare_key_wins():
    modes = {"*": "exact", "gemm_a8w8*": "allclose", "aiter.*@model.layers.3.*": "cosine"}
    target = "aiter.ops.gemm_op_a8w8.gemm_a8w8_CK"
    assert comparison_for(modes, target, "model.layers.1.mlp").mode == "allclose"
    assert comparison_for(modes, target, "model.layers.3.mlp").mode == "cosine"
    assert comparison_for(modes, "aiter.gemm_a16w16", None).mode == "exact"
    assert comparison_for({}, target, None).mode == "cosine"
    custom = comparison_for({"*": "allclose"}, target, None, torch.float16, {"float16": (0.1, 0.2)})
    assert (custom.rtol, custom.atol) == (0.1, 0.2)


def test_compare_tensors_counts_bits_and_bounds():
    ref = torch.tensor([1.0, -2.0, 0.0, 4.0], dtype=torch.bfloat16)
    out = ref.clone()
    out[2] = -0.0  # equal values, different bits
    exact = compare_tensors(out, ref, Comparison("exact", "test"))["compare"].tolist()
    assert exact == [1.0, 0.0, 4.0]
    out[3] = 4.5
    close = compare_tensors(out, ref, Comparison("allclose", "test", 0.01, 0.0))["compare"].tolist()
    assert close == [1.0, 0.5, 4.0]


@pytest.mark.parametrize(
    ("option", "value", "accepted"),
    [
        ("QUANTGUARD_SHADOW_COMPARE", "bitwise", "cosine, allclose, exact"),
        ("QUANTGUARD_SHADOW_COMPARE", "gemm_a8w8*=close", "GLOB=MODE"),
        ("QUANTGUARD_SHADOW_ALLCLOSE", "int8=0.1:0.1", "DTYPE one of bf16, fp16, fp32"),
        ("QUANTGUARD_SHADOW_ALLCLOSE", "bf16=0.1", "DTYPE=RTOL:ATOL"),
    ],
)
def test_bad_compare_values_name_what_is_accepted(option, value, accepted):
    with pytest.raises(ConfigError, match=f"{option}=.*accepted: .*{accepted}"):
        resolve_config({}, {option: value})


def test_compare_values_parse():
    config = resolve_config({}, {"QUANTGUARD_SHADOW_COMPARE": "Exact", "QUANTGUARD_SHADOW_ALLCLOSE": "bf16=0:0.5"})
    assert config.shadow_compare == {"*": "exact"}
    assert config.shadow_allclose == {"bfloat16": (0.0, 0.5)}
    config = resolve_config({"shadow_compare": {"gemm_a8w8*@model.*": "allclose"}}, {})
    assert config.shadow_compare == {"gemm_a8w8*@model.*": "allclose"}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_allclose_on_a_real_cuda_gemm_without_host_sync(tmp_path):
    """``torch._scaled_mm`` (cuBLASLt): allclose within one bf16 rounding unit, measured off the host's path."""
    x, w = torch.randn(64, 512, device="cuda"), torch.randn(256, 512, device="cuda") * 0.05
    scale_a, scale_b = x.abs().amax(1, keepdim=True) / 448, w.abs().amax(1, keepdim=True).t() / 448
    a, b = (x / scale_a).to(torch.float8_e4m3fn), (w / scale_b.t()).to(torch.float8_e4m3fn).t()
    with capture_events() as events:
        quantguard.enable(
            sample_rate=1.0, thorough_interval=0, shadow_compare="allclose", log=str(tmp_path / "log.jsonl")
        )
        torch.cuda.set_sync_debug_mode("error")
        try:
            for _ in range(3):
                torch._scaled_mm(a, b, scale_a=scale_a, scale_b=scale_b.contiguous(), out_dtype=torch.bfloat16)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        quantguard.disable()
    results = [e for e in events.named("shadow") if e["reference"] == "matched"]
    assert results and all(e["compare"] == "allclose" and e["passed"] for e in results), results
    assert not events.violations()
