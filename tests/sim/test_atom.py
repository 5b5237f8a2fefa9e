"""The ATOM-shaped package: gfx942 normalization, loaders, and per-quant-type dispatch."""

from __future__ import annotations

import pytest
import sim_refs as ref
import torch

N, K = 256, 256


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _ckpt_block(seed=0):
    """An e4m3fn checkpoint weight with fp32 128x128 block scales, as DeepSeek ships it."""
    w = torch.randn(N, K, generator=_gen(seed)) * 0.05
    scale = w.view(N // 128, 128, K // 128, 128).abs().amax((1, 3)) / 448.0
    q = (w / ref.expand_blocks(scale, N, K, 128, 128).float()).to(torch.float8_e4m3fn)
    return q, scale, ref.dequant_fp8(q, torch.float8_e4m3fn) * ref.expand_blocks(scale, N, K, 128, 128)


@pytest.fixture
def atom(install, monkeypatch, request):
    """Install with ATOM; ``request.param`` is (arch, env overrides)."""
    arch, env = getattr(request, "param", ("gfx942", {}))
    for name in ("ATOM_USE_TRITON_GEMM", "ATOM_CK_FREE", "ATOM_FP8_BLOCKSCALE_WEIGHT_PRESHUFFLE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    install(arch, atom=True, ck_free=env.get("ATOM_CK_FREE") == "1")
    import aiter
    import atom.model_ops.linear as linear

    return aiter, linear


# --------------------------------------------------------------------------- normalization


def test_normalize_e4m3fn_to_e4m3fnuz_is_value_preserving(atom):
    from atom.model_ops.utils import normalize_e4m3fn_to_e4m3fnuz

    weight, scale, dequantized = _ckpt_block()
    weight.view(torch.uint8)[0, :4] = 0x80
    original = weight.view(torch.uint8).clone()
    input_scale = torch.tensor([0.25])
    new_weight, new_scale, new_input = normalize_e4m3fn_to_e4m3fnuz(weight, scale, input_scale)
    assert new_weight.dtype == torch.float8_e4m3fnuz
    raw = new_weight.view(torch.uint8)
    assert torch.equal(raw, torch.where(original == 0x80, 0, original))
    assert torch.equal(weight.view(torch.uint8), raw)  # rewritten in place, like ATOM
    assert torch.equal(new_scale, scale * 2) and torch.equal(new_input, input_scale * 2)
    kept = original != 0x80
    redone = ref.dequant_fp8(new_weight, torch.float8_e4m3fnuz) * ref.expand_blocks(new_scale, N, K, 128, 128)
    assert torch.equal(redone[kept], dequantized[kept])


def test_normalize_bumps_e8m0_scales_except_zero_and_nan(atom):
    from atom.model_ops.utils import normalize_e4m3fn_to_e4m3fnuz

    scale = torch.tensor([0, 1, 127, 254, 255], dtype=torch.uint8).view(torch.float8_e8m0fnu)
    _, doubled, none = normalize_e4m3fn_to_e4m3fnuz(torch.zeros(2, 2, dtype=torch.float8_e4m3fn), scale)
    assert doubled.view(torch.uint8).tolist() == [0, 2, 128, 254, 255] and none is None


# --------------------------------------------------------------------------- switches and bindings


def test_use_triton_gemm_reads_the_environment_at_call_time(atom, monkeypatch):
    """ATOM main (no ATOM_CK_FREE at import): only ATOM_USE_TRITON_GEMM counts."""
    _, linear = atom
    assert linear.use_triton_gemm() is False
    monkeypatch.setenv("ATOM_CK_FREE", "1")
    assert linear.use_triton_gemm() is False  # main has no such switch
    monkeypatch.setenv("ATOM_USE_TRITON_GEMM", "1")
    assert linear.use_triton_gemm() is True
    assert linear.gemm_a8w8_blockscale_triton is None  # bound at import only


@pytest.mark.parametrize("atom", [("gfx942", {"ATOM_CK_FREE": "0"})], indirect=True)
def test_ck_free_branch_use_triton_gemm_follows_atom_ck_free(atom, monkeypatch):
    _, linear = atom
    assert linear.use_triton_gemm() is False
    monkeypatch.setenv("ATOM_CK_FREE", "1")
    assert linear.use_triton_gemm() is True


@pytest.mark.parametrize("atom", [("gfx950", {"ATOM_CK_FREE": "1"})], indirect=True)
def test_triton_aliases_are_bound_at_import(atom):
    aiter, linear = atom
    from aiter.ops.triton.gemm.basic import gemm_a8w8, gemm_a8w8_blockscale, gemm_afp4wfp4

    assert linear.gemm_a8w8_blockscale_triton is gemm_a8w8_blockscale.gemm_a8w8_blockscale
    assert linear.gemm_a8w8_triton is gemm_a8w8.gemm_a8w8
    assert linear.gemm_afp4wfp4_preshuffle is gemm_afp4wfp4.gemm_afp4wfp4_preshuffle
    assert linear.gemm_a8w8_blockscale is aiter.gemm_a8w8_blockscale


def test_layers_store_the_quant_function_at_construction(atom):
    aiter, linear = atom
    layer = linear.LinearBase(K, N, quant_type=aiter.QuantType.per_1x128, params_dtype=aiter.dtypes.fp8)
    assert layer.quant_func is aiter.get_hip_quant(aiter.QuantType.per_1x128)


# --------------------------------------------------------------------------- loading and dispatch


def _loaded_block_layer(aiter, linear):
    weight, scale, dequantized = _ckpt_block()
    layer = linear.LinearBase(K, N, quant_type=aiter.QuantType.per_1x128, params_dtype=aiter.dtypes.fp8)
    layer.weight_loader(layer.weight, weight)
    layer.weight_loader(layer.weight_scale, scale)
    layer.process_weights_after_loading()
    return layer, dequantized


_BLOCKSCALE_PATHS = [
    (("gfx942", {}), "gemm_a8w8_blockscale_bpreshuffle", True),
    (("gfx950", {"ATOM_FP8_BLOCKSCALE_WEIGHT_PRESHUFFLE": "0"}), "gemm_a8w8_blockscale", False),
    (
        ("gfx950", {"ATOM_USE_TRITON_GEMM": "1", "ATOM_FP8_BLOCKSCALE_WEIGHT_PRESHUFFLE": "0"}),
        "gemm_a8w8_blockscale_triton",
        False,
    ),
]


@pytest.mark.parametrize(("atom", "kernel", "shuffled"), _BLOCKSCALE_PATHS, indirect=["atom"])
def test_per_1x128_dispatch(atom, monkeypatch, kernel, shuffled):
    aiter, linear = atom
    layer, dequantized = _loaded_block_layer(aiter, linear)
    assert getattr(layer.weight, "is_shuffled", False) is shuffled
    if aiter.dtypes.fp8 == torch.float8_e4m3fnuz:
        assert layer.weight.dtype == torch.float8_e4m3fnuz
    calls = []
    original = getattr(linear, kernel)
    monkeypatch.setattr(linear, kernel, lambda *a, **k: calls.append(a[2]) or original(*a, **k))
    x = torch.randn(6, K, generator=_gen(1)).bfloat16()
    y = layer(x)
    assert len(calls) == 1
    assert calls[0].stride() == (2, 1)  # (M, G) strides either way: only provenance tells the layout
    assert ref.cosine(y, x.double() @ dequantized.T) > 0.998


@pytest.mark.parametrize(
    ("atom", "scheme", "kernel"),
    [
        (("gfx942", {}), "per_Token", "gemm_a8w8_bpreshuffle"),
        (("gfx942", {"ATOM_USE_TRITON_GEMM": "1"}), "per_Token", "gemm_a8w8_triton"),
        (("gfx950", {}), "per_Tensor", "tgemm"),
        (("gfx950", {"ATOM_USE_TRITON_GEMM": "1"}), "per_Tensor", "gemm_a8w8_triton"),
        (("gfx950", {}), "per_1x32", "gemm_a4w4"),
        (("gfx950", {"ATOM_USE_TRITON_GEMM": "1"}), "per_1x32", "gemm_afp4wfp4_preshuffle"),
    ],
    indirect=["atom"],
)
def test_other_quant_type_dispatch(atom, monkeypatch, scheme, kernel):
    aiter, linear = atom
    from quantguard.sim.workload._checkpoint import _quantize

    master = torch.randn(N, K, generator=_gen(2)) * 0.05
    scheme_name = {"per_Token": "fp8_per_token", "per_Tensor": "fp8_per_tensor", "per_1x32": "mxfp4"}[scheme]
    weight, scale = _quantize(master, scheme_name)
    params_dtype = aiter.dtypes.fp4x2 if scheme == "per_1x32" else aiter.dtypes.fp8
    layer = linear.LinearBase(K, N, quant_type=getattr(aiter.QuantType, scheme), params_dtype=params_dtype)
    layer.weight_loader(layer.weight, weight)
    layer.weight_loader(layer.weight_scale, scale.reshape(layer.weight_scale.shape) if scheme != "per_1x32" else scale)
    layer.process_weights_after_loading()
    calls = []
    target = linear.tgemm if kernel == "tgemm" else linear
    name = "mm" if kernel == "tgemm" else kernel
    original = getattr(target, name)
    monkeypatch.setattr(target, name, lambda *a, **k: calls.append(1) or original(*a, **k))
    for rows in (4, 40):
        x = torch.randn(rows, K, generator=_gen(rows)).bfloat16()
        assert ref.cosine(layer(x), x.double() @ master.double().T) > 0.98
    assert len(calls) == 2


def test_e8m0_checkpoint_scales_are_copied_as_bytes(atom):
    _, linear = atom
    param = torch.nn.Parameter(torch.zeros(4, dtype=torch.uint8), requires_grad=False)
    scale = torch.tensor([119, 120, 127, 130], dtype=torch.uint8).view(torch.float8_e8m0fnu)
    linear.weight_loader_process(param, scale)
    assert param.data.view(torch.uint8).tolist() == [119, 120, 127, 130]


def test_dense_layer_dequantizes_an_fp8_checkpoint(atom):
    aiter, linear = atom
    weight, scale, dequantized = _ckpt_block()
    layer = linear.LinearBase(K, N, source_quant_dtype=aiter.dtypes.fp8)
    layer.weight_loader(layer.weight, weight)
    layer.weight_loader(layer.weight_scale, scale)
    layer.process_weights_after_loading()
    assert layer.weight.dtype == torch.bfloat16 and layer.weight_scale is None
    torch.testing.assert_close(layer.weight.double(), dequantized.bfloat16().double())


@pytest.mark.parametrize("atom", [("gfx942", {}), ("gfx950", {"ATOM_USE_TRITON_GEMM": "1"})], indirect=True)
def test_moe_triton_and_fused_paths_agree(atom):
    aiter, _ = atom
    from aiter.fused_moe import fused_moe
    from atom.model_loader.loader import process_weights_after_loading
    from atom.model_ops.moe import FusedMoE

    moe = FusedMoE(
        8,
        2,
        K,
        256,
        4,
        2,
        routed_scaling_factor=2.5,
        quant_type=aiter.QuantType.per_1x128,
        params_dtype=aiter.dtypes.fp8,
    )
    for name, rows, cols in (("w13", 512, K), ("w2", K, 256)):
        w = torch.randn(8, rows, cols, generator=_gen(rows)) * 0.05
        s = w.view(8, rows // 128, 128, cols // 128, 128).abs().amax((2, 4)) / 448.0
        q = (w / s.repeat_interleave(128, 1).repeat_interleave(128, 2)).to(torch.float8_e4m3fn)
        moe.weight_loader(getattr(moe, f"{name}_weight"), q)
        moe.weight_loader(getattr(moe, f"{name}_weight_scale"), s)
    process_weights_after_loading(moe)  # the layer's step, then its quant method's (ATOM main order)
    x = torch.randn(10, K, generator=_gen(3)).bfloat16()
    logits = torch.randn(10, 8, generator=_gen(4))
    weights, ids = moe.select_experts(
        x, logits, 2, True, True, 2, 4, None, "sigmoid", moe.e_score_correction_bias, routed_scaling_factor=2.5
    )
    torch.testing.assert_close(weights.sum(1), torch.full((10,), 2.5))
    expected = fused_moe(
        x,
        moe.w13_weight,
        moe.w2_weight,
        weights,
        ids,
        quant_type=aiter.QuantType.per_1x128,
        w1_scale=moe.w13_weight_scale,
        w2_scale=moe.w2_weight_scale,
    )
    got = moe(x, logits)
    assert ref.cosine(got, expected) > 0.999 and got.abs().sum() > 0
