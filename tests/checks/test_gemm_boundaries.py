"""GEMM boundaries: scale shapes/dtypes/layouts, producer→consumer provenance, FP8 variants, magnitudes."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import quantguard
import quantguard.sim as sim
from quantguard.contracts import aiter as aiter_contracts
from quantguard.testing import capture_events

M, N, K = 40, 256, 512


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _x() -> torch.Tensor:
    return (torch.randn(M, K, generator=_gen(0)) * 2).to(torch.bfloat16)


def _block_weight(fp8: torch.dtype):
    w = torch.randn(N, K, generator=_gen(1)) * 0.05
    scale = w.view(N // 128, 128, K // 128, 128).abs().amax((1, 3)) / torch.finfo(fp8).max
    expanded = scale.repeat_interleave(128, 0).repeat_interleave(128, 1)
    return (w / expanded).to(fp8), scale


def _row_weight(fp8: torch.dtype):
    w = torch.randn(N, K, generator=_gen(2)) * 0.05
    scale = w.abs().amax(1, keepdim=True) / torch.finfo(fp8).max
    return (w / scale).to(fp8), scale


def _enable(tmp_path, **options):
    quantguard.enable(log=str(tmp_path / "log.jsonl"), sample_rate=1.0, **options)


def _triton(name: str):
    module, _, function = name.rpartition(".")
    return getattr(__import__(f"aiter.ops.triton.gemm.basic.{module}", fromlist=["_"]), function)


def _per_token(a):
    xq, xs = a.per_token_quant_hip(_x(), quant_dtype=a.dtypes.fp8)
    wq, ws = _row_weight(a.dtypes.fp8)
    return xq, xs, wq, ws


def _blocks(a, transpose=False):
    xq, xs = a.per_group_quant_hip(_x(), quant_dtype=a.dtypes.fp8, transpose_scale=transpose)
    wq, ws = _block_weight(a.dtypes.fp8)
    return xq, xs, wq, ws


def _shuffle(a, w, layout=(16, 16)):
    from aiter.ops.shuffle import shuffle_weight

    return shuffle_weight(w, layout=layout)


CLEAN = {
    "gemm_a8w8_CK": lambda a: (lambda xq, xs, wq, ws: a.gemm_a8w8_CK(xq, wq, xs, ws))(*_per_token(a)),
    "gemm_a8w8_bpreshuffle": lambda a: (lambda xq, xs, wq, ws: a.gemm_a8w8_bpreshuffle(xq, _shuffle(a, wq), xs, ws))(
        *_per_token(a)
    ),
    "gemm_a8w8_blockscale": lambda a: (lambda xq, xs, wq, ws: a.gemm_a8w8_blockscale(xq, wq, xs, ws))(*_blocks(a)),
    "blockscale_bpreshuffle_transposed_bytes": lambda a: (
        lambda xq, xs, wq, ws: a.gemm_a8w8_blockscale_bpreshuffle(xq, _shuffle(a, wq), xs, ws)
    )(*_blocks(a, True)),
    "blockscale_bpreshuffle_strided_view": lambda a: (
        lambda xq, xs, wq, ws: a.gemm_a8w8_blockscale_bpreshuffle(xq, _shuffle(a, wq), xs.t().contiguous().t(), ws)
    )(*_blocks(a)),
    "triton_gemm_a8w8": lambda a: (lambda xq, xs, wq, ws: _triton("gemm_a8w8.gemm_a8w8")(xq, wq, xs, ws))(
        *_per_token(a)
    ),
    "triton_blockscale": lambda a: (
        lambda xq, xs, wq, ws: _triton("gemm_a8w8_blockscale.gemm_a8w8_blockscale")(xq, wq, xs, ws)
    )(*_blocks(a)),
    "triton_blockscale_preshuffle_transposed": lambda a: (
        lambda xq, xs, wq, ws: _triton("gemm_a8w8_blockscale.gemm_a8w8_blockscale_preshuffle")(
            xq, _shuffle(a, wq).reshape(N // 16, K * 16), xs, ws, is_x_scale_tranposed=True
        )
    )(*_blocks(a, True)),
    "triton_blockscale_preshuffle_view": lambda a: (
        lambda xq, xs, wq, ws: _triton("gemm_a8w8_blockscale.gemm_a8w8_blockscale_preshuffle")(
            xq, _shuffle(a, wq).reshape(N // 16, K * 16), xs.t().contiguous().t(), ws, is_x_scale_tranposed=False
        )
    )(*_blocks(a)),
    "hipblaslt_per_tensor": lambda a: __import__("aiter.tuned_gemm", fromlist=["_"]).tgemm.mm(
        *(lambda xq, s, wq, ws: (xq, wq, None, torch.bfloat16, s, ws.max().reshape(1)))(
            *a.per_tensor_quant_hip(_x(), quant_dtype=a.dtypes.fp8), *_row_weight(a.dtypes.fp8)
        )
    ),
}


@pytest.mark.parametrize("arch", sim.ARCHS)
@pytest.mark.parametrize("name", sorted(CLEAN))
def test_clean_gemms_are_quiet(tmp_path, arch, name):
    sim.install(arch)
    import aiter

    with capture_events() as events:
        _enable(tmp_path)
        out = CLEAN[name](aiter)
    assert out.shape[-1] == N
    assert not events.violations(), [e["message"] for e in events.violations()]
    shadows = [e for e in events.named("shadow") if "gemm" in e["target"] or "tgemm" in e["target"]]
    assert shadows and all(e["passed"] for e in shadows)
    assert min(e["cosine"] for e in shadows if e["reference"] == "matched") > 0.9999


@pytest.mark.parametrize(
    "mutate, check, fragment",
    [
        (
            lambda a, xq, xs, wq, ws: (xq, wq, torch.ones(M, K // 128 + 1), ws),
            "scale_shape",
            "expected (M, ceil(K/128))",
        ),
        (lambda a, xq, xs, wq, ws: (xq, wq, xs.to(torch.bfloat16), ws), "scale_dtype", "reads float32"),
        (lambda a, xq, xs, wq, ws: (xq, wq, xs.t().contiguous().t(), ws), "scale_layout", "column-major view"),
        (lambda a, xq, xs, wq, ws: (xq, wq, xs, ws[:1]), "scale_shape", "w_scale is [1, 4]"),
    ],
)
def test_malformed_scales_at_the_gemm_boundary(tmp_path, mutate, check, fragment):
    sim.install("gfx942")
    import aiter

    args = mutate(aiter, *_blocks(aiter))
    with capture_events() as events:
        _enable(tmp_path)
        try:
            aiter.gemm_a8w8_blockscale(*args)
        except Exception:
            pass  # the kernel may reject it too; the guard reported before the call
    assert any(fragment in e["message"] for e in events.violations(check=check)), [
        (e["check"], e["message"]) for e in events.violations()
    ]


@pytest.mark.parametrize(
    "transpose, consumer, expected",
    [
        (True, "gemm_a8w8_blockscale", "reads it row-major (M, G)"),
        (False, "gemm_a8w8_blockscale_bpreshuffle", "reads it column-major: (G, M) bytes"),
    ],
)
def test_producer_layout_against_consumer_expectation(tmp_path, transpose, consumer, expected):
    """Strides look plausible either way; only provenance knows what the producer wrote."""
    sim.install("gfx942")
    import aiter

    xq, xs, wq, ws = _blocks(aiter, transpose)
    assert xs.is_contiguous() and xs.shape == (M, K // 128)
    weight = _shuffle(aiter, wq) if consumer.endswith("bpreshuffle") else wq
    with capture_events() as events:
        _enable(tmp_path)
        xq, xs = aiter.per_group_quant_hip(_x(), quant_dtype=aiter.dtypes.fp8, transpose_scale=transpose)
        getattr(aiter, consumer)(xq, weight, xs, ws)
    [layout] = events.violations(check="scale_layout")
    assert layout["message"].endswith(expected) and "per_group_quant_hip(transpose_scale=" in layout["message"]
    chain = [e for e in events.violations(check="numerics") if e["details"]["reference"] == "chain"]
    assert chain and chain[0]["details"]["cosine"] < 0.99


def test_wrong_fp8_variant_on_gfx942(tmp_path):
    sim.install("gfx942")
    import aiter

    xq, xs, _, ws = _per_token(aiter)
    wq, _ = _row_weight(torch.float8_e4m3fn)
    with capture_events() as events:
        _enable(tmp_path)
        aiter.gemm_a8w8_CK(xq, wq, xs, ws)
    [variant] = events.violations(check="fp8_variant")
    assert variant["message"].startswith("w is float8_e4m3fn but gfx942 kernels read float8_e4m3fnuz")


def test_magnitude_error_with_perfect_cosine_is_caught(tmp_path, make_module):
    """A dropped per-tensor scale leaves cosine at 1.0: the norm ratio must catch it."""
    sim.install("gfx942")
    import aiter

    module = make_module(
        "qgt_double",
        """
        import aiter
        def gemm_a8w8_CK(XQ, WQ, x_scale, w_scale, bias=None, dtype=None, splitK=None):
            return aiter.gemm_a8w8_CK(XQ, WQ, x_scale, w_scale) * 2
    """,
    )
    template = next(c for c in aiter_contracts.CONTRACTS if c.target.endswith(".gemm_a8w8_CK"))
    quantguard.register(dataclasses.replace(template, target="qgt_double.gemm_a8w8_CK"))
    with capture_events() as events:
        _enable(tmp_path, targets="qgt_double.*")
        module.gemm_a8w8_CK(*(lambda xq, xs, wq, ws: (xq, wq, xs, ws))(*_per_token(aiter)))
    [numerics] = [e for e in events.violations(check="numerics") if e["count"] == 1]
    assert numerics["details"]["cosine"] > 0.9999
    assert "norm ratio 2.00" in numerics["message"] and "cosine" not in numerics["message"].split(":")[1]


def test_preshuffled_weight_read_as_plain(tmp_path):
    sim.install("gfx942")
    import aiter

    xq, xs, wq, ws = _per_token(aiter)
    with capture_events() as events:
        _enable(tmp_path)
        shuffled = _shuffle(aiter, wq)
        aiter.gemm_a8w8_CK(xq, shuffled, xs, ws)
    [layout] = events.violations(check="weight_layout")
    assert "preshuffled by aiter.ops.shuffle.shuffle_weight" in layout["message"]
    assert layout["message"].endswith("reads a plain (N, K) weight")
