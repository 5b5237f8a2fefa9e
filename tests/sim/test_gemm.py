"""GEMMs against fp64 references built from the quantized operands, per kernel layout."""

from __future__ import annotations

import pytest
import sim_refs as ref
import torch

M, N, K = 40, 256, 512


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _activations(rows=M, cols=K, seed=0):
    return (torch.randn(rows, cols, generator=_gen(seed)) * 2).to(torch.bfloat16)


def _block_weight(fp8, rows=N, cols=K, seed=1):
    """A (rows, cols) FP8 weight with fp32 128x128 block scales, and its fp64 value."""
    w = torch.randn(rows, cols, generator=_gen(seed)) * 0.05
    scale = w.view(rows // 128, 128, cols // 128, 128).abs().amax((1, 3)) / ref.FP8_MAX[fp8]
    expanded = ref.expand_blocks(scale, rows, cols, 128, 128).float()
    wq = (w / expanded).clamp(-ref.FP8_MAX[fp8], ref.FP8_MAX[fp8]).to(fp8)
    return wq, scale, ref.dequant_fp8(wq, fp8) * ref.expand_blocks(scale, rows, cols, 128, 128)


def _row_weight(fp8, rows=N, cols=K, seed=2):
    w = torch.randn(rows, cols, generator=_gen(seed)) * 0.05
    scale = w.abs().amax(1, keepdim=True) / ref.FP8_MAX[fp8]
    wq = (w / scale).clamp(-ref.FP8_MAX[fp8], ref.FP8_MAX[fp8]).to(fp8)
    return wq, scale, ref.dequant_fp8(wq, fp8) * scale.double()


def _block_activations(aiter, transpose_scale=False):
    x = _activations()
    xq, xs = aiter.per_group_quant_hip(x, quant_dtype=aiter.dtypes.fp8, group_size=128, transpose_scale=transpose_scale)
    row_major = xs.flatten().view(K // 128, M).T if transpose_scale else xs
    return xq, xs, ref.dequant_fp8(xq, aiter.dtypes.fp8) * ref.expand_blocks(row_major, M, K, 1, 128)


def _token_activations(aiter):
    xq, xs = aiter.per_token_quant_hip(_activations(), quant_dtype=aiter.dtypes.fp8)
    return xq, xs, ref.dequant_fp8(xq, aiter.dtypes.fp8) * xs.double()


# --------------------------------------------------------------------------- weight shuffle


@pytest.mark.parametrize(
    ("dtype", "layout"),
    [
        (torch.float8_e4m3fn, (16, 16)),
        (torch.float8_e4m3fn, (32, 16)),
        (torch.bfloat16, (16, 16)),
        (torch.uint8, (16, 16)),
    ],
)
def test_shuffle_weight_matches_reference_and_inverts(install, dtype, layout):
    install()
    from aiter.ops.shuffle import shuffle_weight

    from quantguard.sim._kernels.layout import unshuffle_weight

    weight = torch.randint(0, 255, (64, 64), dtype=torch.uint8, generator=_gen(3))
    weight = weight.view(dtype) if dtype != torch.bfloat16 else torch.randn(32, 64, generator=_gen(3)).to(dtype)
    shuffled = shuffle_weight(weight, layout=layout)
    assert shuffled.is_shuffled is True and shuffled.dtype == dtype
    expected = ref.shuffle_weight(weight.view(torch.uint8) if dtype != torch.bfloat16 else weight, layout)
    assert torch.equal(shuffled.view(expected.dtype), expected)
    assert torch.equal(unshuffle_weight(shuffled, layout).view(torch.uint8), weight.view(torch.uint8))


def test_shuffle_weight_on_fp4x2_shuffles_bytes(install):
    install("gfx950")
    from aiter.ops.shuffle import shuffle_weight

    raw = torch.randint(0, 255, (32, 64), dtype=torch.uint8, generator=_gen(4))
    shuffled = shuffle_weight(raw.view(torch.float4_e2m1fn_x2))
    assert shuffled.dtype == torch.float4_e2m1fn_x2
    assert torch.equal(shuffled.view(torch.uint8), ref.shuffle_weight(raw))


# --------------------------------------------------------------------------- per-token / per-tensor


def test_per_token_gemms(install, arch):
    install(arch)
    import aiter
    from aiter.ops.shuffle import shuffle_weight
    from aiter.ops.triton.gemm.basic.gemm_a8w8 import gemm_a8w8 as gemm_a8w8_triton

    fp8 = aiter.dtypes.fp8
    xq, xs, xd = _token_activations(aiter)
    wq, ws, wd = _row_weight(fp8)
    bias = torch.randn(N, generator=_gen(5))
    expected = xd @ wd.T
    ref.assert_gemm_close(aiter.gemm_a8w8(xq, wq, xs, ws), expected)
    ref.assert_gemm_close(aiter.gemm_a8w8_CK(xq, wq, xs, ws, bias, splitK=2), expected + bias.double())
    ref.assert_gemm_close(aiter.gemm_a8w8_bpreshuffle(xq, shuffle_weight(wq), xs, ws), expected)
    asm = aiter.gemm_a8w8_ASM(
        xq, shuffle_weight(wq, layout=(32, 16)), xs, ws.T.contiguous(), bias.view(1, N), check=True
    )
    ref.assert_gemm_close(asm, expected + bias.double())
    ref.assert_gemm_close(gemm_a8w8_triton(xq, wq, xs.view(-1), ws.view(-1), bias), expected + bias.double())


def test_bpreshuffle_asserts_on_a_foreign_fp8_dtype(install):
    install("gfx942")
    import aiter
    from aiter.ops.shuffle import shuffle_weight

    xq, xs, _ = _token_activations(aiter)
    wq, ws, _ = _row_weight(torch.float8_e4m3fn)
    with pytest.raises(AssertionError, match="only support fp8"):
        aiter.gemm_a8w8_bpreshuffle(xq, shuffle_weight(wq), xs, ws)


def test_triton_split_k_partials(install):
    install()
    import aiter
    from aiter.ops.triton.gemm.basic.gemm_a8w8 import gemm_a8w8 as gemm_a8w8_triton

    xq, xs, xd = _token_activations(aiter)
    wq, ws, wd = _row_weight(aiter.dtypes.fp8)
    parts = gemm_a8w8_triton(xq, wq, xs, ws, config={"NUM_KSPLIT": 3}, skip_reduce=True)
    assert parts.shape == (3, M, N) and parts.dtype == torch.float32
    ref.assert_gemm_close(parts.sum(0), xd @ wd.T)
    y = torch.empty(M, N, dtype=torch.bfloat16)
    assert gemm_a8w8_triton(xq, wq, xs, ws, y=y, config={"NUM_KSPLIT": 3}) is y


def test_tgemm_bf16_fp8_and_preshuffled(install, arch):
    install(arch)
    import aiter
    from aiter.ops.shuffle import shuffle_weight
    from aiter.tuned_gemm import tgemm

    fp8 = aiter.dtypes.fp8
    x = _activations()
    w = (torch.randn(N, K, generator=_gen(6)) * 0.05).to(torch.bfloat16)
    dense = x.double() @ w.double().T
    ref.assert_gemm_close(tgemm.mm(x, w, otype=torch.bfloat16), dense)
    ref.assert_gemm_close(tgemm.mm(x, shuffle_weight(w)), dense)
    xq, xs = aiter.per_tensor_quant_hip(x, quant_dtype=fp8)
    wq, ws = aiter.per_tensor_quant_hip(w, quant_dtype=fp8)
    got = tgemm.mm(xq, wq, otype=torch.bfloat16, scale_a=xs, scale_b=ws, scale_c=torch.tensor([0.5]))
    ref.assert_gemm_close(
        got, (ref.dequant_fp8(xq, fp8) * xs.double()) @ (ref.dequant_fp8(wq, fp8) * ws.double()).T * 0.5
    )


# --------------------------------------------------------------------------- blockscale


def test_blockscale_gemm_row_major_scale(install, arch):
    install(arch)
    import aiter
    from aiter.ops.triton.gemm.basic.gemm_a8w8_blockscale import gemm_a8w8_blockscale as triton_blockscale

    xq, xs, xd = _block_activations(aiter)
    wq, ws, wd = _block_weight(aiter.dtypes.fp8)
    ref.assert_gemm_close(aiter.gemm_a8w8_blockscale(xq, wq, xs, ws), xd @ wd.T)
    ref.assert_gemm_close(triton_blockscale(xq, wq, xs, ws), xd @ wd.T)
    ref.assert_gemm_close(triton_blockscale(xq, wq, xs.T.contiguous().T, ws), xd @ wd.T)


@pytest.mark.parametrize("scale_form", ["contiguous_transposed_bytes", "strided_view", "e8m0"])
def test_blockscale_bpreshuffle_transposed_scale(install, arch, scale_form):
    install(arch)
    import aiter
    from aiter.ops.shuffle import shuffle_weight

    wq, ws, wd = _block_weight(aiter.dtypes.fp8)
    if scale_form == "e8m0":
        x = _activations()
        xq, xs = aiter.per_group_quant_hip(
            x, quant_dtype=aiter.dtypes.fp8, transpose_scale=True, scale_type=aiter.dtypes.fp8_e8m0
        )
        row_major = torch.exp2(xs.view(torch.uint8).flatten().view(K // 128, M).T.double() - 127)
        xd = ref.dequant_fp8(xq, aiter.dtypes.fp8) * ref.expand_blocks(row_major, M, K, 1, 128)
    else:
        xq, xs, xd = _block_activations(aiter, transpose_scale=scale_form == "contiguous_transposed_bytes")
        if scale_form == "strided_view":
            xs = xs.T.contiguous().T
            assert xs.stride(0) == 1
    out = torch.empty(M, N, dtype=torch.bfloat16)
    y = aiter.gemm_a8w8_blockscale_bpreshuffle(xq, shuffle_weight(wq), xs, ws, out=out)
    assert y is out
    ref.assert_gemm_close(y, xd @ wd.T)


def test_tuned_bpreshuffle_routes_to_asm_and_triton(install, monkeypatch):
    install("gfx950")
    import aiter
    import aiter.ops.gemm_op_a8w8 as a8w8
    from aiter.ops.shuffle import shuffle_weight

    xq, xs, xd = _block_activations(aiter, transpose_scale=True)
    wq, ws, wd = _block_weight(aiter.dtypes.fp8)
    calls = []
    asm = a8w8.gemm_a8w8_blockscale_bpreshuffle_asm
    monkeypatch.setattr(a8w8, "gemm_a8w8_blockscale_bpreshuffle_asm", lambda *a, **k: calls.append(k) or asm(*a, **k))
    a8w8.TUNED_A8W8_BLOCKSCALE_BPRESHUFFLE[(None, N, K)] = {
        "libtype": "asm",
        "splitK": 3,
        "kernelName": a8w8.BLOCKSCALE_ASM_KERNELS[1],
    }
    ref.assert_gemm_close(aiter.gemm_a8w8_blockscale_bpreshuffle(xq, shuffle_weight(wq), xs, ws), xd @ wd.T)
    assert calls == [{"splitK": 3, "kernelName": a8w8.BLOCKSCALE_ASM_KERNELS[1]}]
    a8w8.TUNED_A8W8_BLOCKSCALE_BPRESHUFFLE[(None, N, K)] = {"libtype": "triton", "splitK": 0, "kernelName": ""}
    ref.assert_gemm_close(aiter.gemm_a8w8_blockscale_bpreshuffle(xq, shuffle_weight(wq), xs, ws), xd @ wd.T)
    assert len(calls) == 1


def test_asm_kernel_names_are_checked(install):
    install()
    import aiter

    xq, xs, _ = _block_activations(aiter, transpose_scale=True)
    wq, ws, _ = _block_weight(aiter.dtypes.fp8)
    with pytest.raises(RuntimeError, match="cannot find asm kernel"):
        aiter.gemm_a8w8_blockscale_bpreshuffle_asm(
            xq, wq, torch.empty(M, N, dtype=torch.bfloat16), xs, ws, kernelName="nope"
        )


def test_gfx950_isbpreshuffled_dispatches_through_the_module_global(install, monkeypatch):
    install("gfx950", release_build=True)
    import aiter
    import aiter.ops.gemm_op_a8w8 as a8w8
    from aiter.ops.shuffle import shuffle_weight

    xq, xs, xd = _block_activations(aiter)
    wq, ws, wd = _block_weight(aiter.dtypes.fp8)
    seen = []
    original = a8w8.gfx950_a8w8_blockscale_ASM
    monkeypatch.setattr(a8w8, "gfx950_a8w8_blockscale_ASM", lambda *a, **k: seen.append(a) or original(*a, **k))
    ref.assert_gemm_close(aiter.gemm_a8w8_blockscale(xq, shuffle_weight(wq), xs, ws, isBpreshuffled=True), xd @ wd.T)
    assert len(seen) == 1


def test_gfx950_blockscale_asm_is_undefined_at_head(install):
    """AITER HEAD's gfx950_a8w8_blockscale_ASM calls a kernel defined nowhere."""
    install("gfx950", release_build=False)
    import aiter
    import aiter.ops.gemm_op_a8w8 as a8w8
    from aiter.ops.shuffle import shuffle_weight

    xq, xs, _ = _block_activations(aiter)
    wq, ws, _ = _block_weight(aiter.dtypes.fp8)
    assert not hasattr(a8w8, "gfx950_a8w8_blockscale_asm")
    with pytest.raises(NameError, match="gfx950_a8w8_blockscale_asm"):
        aiter.gemm_a8w8_blockscale(xq, shuffle_weight(wq), xs, ws, isBpreshuffled=True)
    out = torch.empty(xq.shape[0], wq.shape[0], dtype=torch.bfloat16)
    with pytest.raises(NameError, match="gfx950_a8w8_blockscale_asm"):
        aiter.gfx950_a8w8_blockscale_ASM(xq, shuffle_weight(wq), xs, ws, out)


def test_isbpreshuffled_needs_gfx950(install):
    install("gfx942")
    import aiter

    xq, xs, _ = _block_activations(aiter)
    wq, ws, _ = _block_weight(aiter.dtypes.fp8)
    with pytest.raises(AssertionError, match="asm kernel only support"):
        aiter.gemm_a8w8_blockscale(xq, wq, xs, ws, isBpreshuffled=True)


def test_flatmm_and_preshuffle_triton(install, arch):
    install(arch)
    import aiter
    from aiter.ops.shuffle import shuffle_weight
    from aiter.ops.triton.gemm.basic.gemm_a8w8_blockscale import gemm_a8w8_blockscale_preshuffle

    xq, xs, xd = _block_activations(aiter)
    wq, ws, wd = _block_weight(aiter.dtypes.fp8)
    # The flat kernel's own layout: weight shuffled (16, 32), scales transposed in shape.
    flat = aiter.flatmm_a8w8_blockscale_ASM(
        xq, shuffle_weight(wq, layout=(16, 32)), xs.t().contiguous(), ws.t().contiguous()
    )
    assert flat.dtype == torch.float16
    ref.assert_gemm_close(flat, xd @ wd.T)
    preshuffled = shuffle_weight(wq).view(N // 16, K * 16)
    ref.assert_gemm_close(
        gemm_a8w8_blockscale_preshuffle(xq, preshuffled, xs, ws, is_x_scale_tranposed=False), xd @ wd.T
    )
    xq_t, xs_t, xd_t = _block_activations(aiter, transpose_scale=True)
    ref.assert_gemm_close(gemm_a8w8_blockscale_preshuffle(xq_t, preshuffled, xs_t, ws), xd_t @ wd.T)
    with pytest.raises(AssertionError, match="gfx1250"):
        gemm_a8w8_blockscale_preshuffle(xq_t, preshuffled, xs_t, ws, backend="gluon")


@pytest.mark.parametrize(
    ("arch", "foreign", "factor"), [("gfx942", torch.float8_e4m3fn, 0.5), ("gfx950", torch.float8_e4m3fnuz, 2.0)]
)
def test_kernels_read_fp8_bytes_in_the_arch_format(install, arch, foreign, factor):
    install(arch)
    import aiter

    xq, xs, xd = _block_activations(aiter)
    wq, ws, wd = _block_weight(foreign)
    wq = (wq.float() * 0.75).to(foreign)  # stay clear of codes that are NaN in the other format
    wd = ref.dequant_fp8(wq, foreign) * ref.expand_blocks(ws, N, K, 128, 128)
    ref.assert_gemm_close(aiter.gemm_a8w8_blockscale(xq, wq, xs, ws), factor * (xd @ wd.T))


@pytest.mark.parametrize(
    ("arch", "foreign", "nan_byte"), [("gfx942", torch.float8_e4m3fn, 0x80), ("gfx950", torch.float8_e4m3fnuz, 0x7F)]
)
def test_foreign_fp8_bytes_can_be_nan(install, arch, foreign, nan_byte):
    install(arch)
    import aiter

    xq, xs, _ = _block_activations(aiter)
    wq, ws, _ = _block_weight(foreign)
    wq = (wq.float() * 0.75).to(foreign)
    wq.view(torch.uint8)[0, 0] = nan_byte
    out = aiter.gemm_a8w8_blockscale(xq, wq, xs, ws)
    assert torch.isnan(out[:, 0]).all() and not torch.isnan(out[:, 1:]).any()


# --------------------------------------------------------------------------- MXFP4


def _mx_case(aiter, rows, shuffle):
    x = _activations(rows, K)
    w = (torch.randn(N, K, generator=_gen(7)) * 0.05).to(torch.bfloat16)
    xq, xs = aiter.per_1x32_mx_quant_hip(x, quant_dtype=aiter.dtypes.fp4x2, shuffle=shuffle)
    wq, ws = aiter.per_1x32_mx_quant_hip(w, quant_dtype=aiter.dtypes.fp4x2, shuffle=True)
    _, xs_plain = aiter.per_1x32_mx_quant_hip(x, quant_dtype=aiter.dtypes.fp4x2)
    _, ws_plain = aiter.per_1x32_mx_quant_hip(w, quant_dtype=aiter.dtypes.fp4x2)

    def dequant(q, scale, count):
        values = torch.tensor(
            [[ref.fp4_value(c) for b in row for c in (b & 15, b >> 4)] for row in q.view(torch.uint8).tolist()]
        )
        return values.double() * ref.expand_blocks(torch.exp2(scale.view(torch.uint8).double() - 127), count, K, 1, 32)

    expected = dequant(xq, xs_plain, rows) @ dequant(wq, ws_plain, N).T
    return xq, xs, wq, ws, expected


def test_gemm_a4w4_asm_by_default_and_ck_when_tuned(install, monkeypatch):
    install("gfx950")
    import aiter
    import aiter.ops.gemm_op_a4w4 as a4w4
    from aiter.ops.shuffle import shuffle_weight

    xq, xs, wq, ws, expected = _mx_case(aiter, M, shuffle=True)
    calls = []
    asm = a4w4.gemm_a4w4_asm
    monkeypatch.setattr(a4w4, "gemm_a4w4_asm", lambda *a, **k: calls.append(a) or asm(*a, **k))
    y = aiter.gemm_a4w4(xq, shuffle_weight(wq), xs, ws)
    assert y.shape == (M, N) and len(calls) == 1 and calls[0][4].shape == (64, N)
    ref.assert_gemm_close(y, expected)
    a4w4.TUNED_A4W4[(None, N, K)] = {"kernelName": "a4w4_blockscale_256x32x128x128", "splitK": 0}
    ref.assert_gemm_close(aiter.gemm_a4w4(xq, shuffle_weight(wq), xs, ws), expected)
    assert len(calls) == 1


def test_gemm_a4w4_does_not_exist_on_gfx942(install):
    install("gfx942")
    import aiter

    with pytest.raises(RuntimeError, match="not supported on gfx942"):
        aiter.gemm_a4w4(torch.zeros(32, 16, dtype=torch.uint8), torch.zeros(32, 16, dtype=torch.uint8), None, None)


@pytest.mark.parametrize("rows", [8, M])
def test_triton_fp4_gemms(install, rows):
    install("gfx950")
    import aiter
    from aiter.ops.shuffle import shuffle_weight
    from aiter.ops.triton.gemm.basic.gemm_afp4wfp4 import gemm_afp4wfp4, gemm_afp4wfp4_preshuffle

    shuffled = rows >= 32
    xq, xs, wq, ws, expected = _mx_case(aiter, rows, shuffle=shuffled)
    x_scales = xs.view(torch.uint8).view(xs.shape[0] // 32, -1) if shuffled else xs.view(torch.uint8)
    y = gemm_afp4wfp4_preshuffle(
        xq.view(torch.uint8),
        shuffle_weight(wq).view(torch.uint8).view(N // 16, -1),
        x_scales,
        ws.view(torch.uint8).view(ws.shape[0] // 32, -1),
    )
    ref.assert_gemm_close(y, expected)
    _, xs_plain = aiter.per_1x32_mx_quant_hip(_activations(rows, K), quant_dtype=aiter.dtypes.fp4x2)
    _, ws_plain = aiter.per_1x32_mx_quant_hip(
        (torch.randn(N, K, generator=_gen(7)) * 0.05).to(torch.bfloat16), quant_dtype=aiter.dtypes.fp4x2
    )
    ref.assert_gemm_close(gemm_afp4wfp4(xq.view(torch.uint8), wq.view(torch.uint8), xs_plain, ws_plain), expected)


def test_triton_fp4_needs_gfx950(install):
    install("gfx942")
    from aiter.ops.triton.gemm.basic.gemm_afp4wfp4 import gemm_afp4wfp4

    with pytest.raises(AssertionError, match="MXFP4 is not available"):
        gemm_afp4wfp4(*(torch.zeros(32, 16, dtype=torch.uint8),) * 4)


# --------------------------------------------------------------------------- batched


def test_batched_fp8_gemm(install, arch):
    install(arch)
    import aiter
    from aiter.ops.triton.batched_gemm_a8w8_a_per_token_group_prequant_w_per_batched_tensor_quant import (
        batched_gemm_a8w8_a_per_token_group_prequant_w_per_batched_tensor_quant as bmm,
    )

    fp8 = aiter.dtypes.fp8
    x = (torch.randn(6, 3, 256, generator=_gen(8))).to(torch.bfloat16)  # (M, B, K)
    w = torch.randn(3, 64, 256, generator=_gen(9)) * 0.1
    scale = w.abs().max() / ref.FP8_MAX[fp8]
    wq = (w / scale).to(fp8)
    y = bmm(x, wq, scale.reshape(1), group_size=128, transpose_bm=True, transpose_bm_in=True)
    assert y.shape == (6, 3, 64)
    xb = x.transpose(0, 1).reshape(-1, 256)
    values, x_scale = ref.fp8_quantize_groups(xb, 128, fp8)
    xd = (ref.dequant_fp8(values, fp8) * ref.expand_blocks(x_scale, xb.shape[0], 256, 1, 128)).view(3, 6, 256)
    expected = (xd @ (ref.dequant_fp8(wq, fp8) * scale.double()).transpose(1, 2)).transpose(0, 1)
    ref.assert_gemm_close(y, expected)
