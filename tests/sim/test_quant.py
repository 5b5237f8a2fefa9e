"""Quant kernels against independent references: bitwise where the format defines the result."""

from __future__ import annotations

import functools

import pytest
import sim_refs as ref
import torch

from quantguard.sim._kernels import e8m0 as sim_e8m0


def _x(rows: int, cols: int, seed: int = 0, dtype=torch.bfloat16) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(rows, cols, generator=gen) * torch.rand(rows, 1, generator=gen) * 4).to(dtype)


# --------------------------------------------------------------------------- fp4


def test_fp4_packing_hand_cases(install):
    install("gfx950")
    from aiter.utility import fp4_utils

    values = torch.tensor([[0.25, 0.75, -0.1, 5.0, 7.0, -6.5, 1.25, 2.5]])
    packed = fp4_utils.f32_to_mxfp4(values).view(torch.uint8)
    assert packed.tolist() == [[0x20, 0x68, 0xF7, 0x42]]


def test_fp4_encode_matches_brute_force_nearest(install):
    install("gfx950")
    from aiter.utility import fp4_utils

    values = torch.cat([torch.randn(2, 64) * 3, torch.tensor([[0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, -0.0] * 8])])
    packed = fp4_utils.f32_to_mxfp4(values).view(torch.uint8)
    expected = ref.fp4_pack([[ref.fp4_code(v) for v in row] for row in values.tolist()])
    assert torch.equal(packed, expected)


def test_fp4_unpack_every_byte(install):
    install("gfx950")
    from aiter.utility import fp4_utils

    every = torch.arange(256, dtype=torch.uint8).view(1, 256)
    unpacked = fp4_utils.mxfp4_to_f32(every)
    expected = [[v for byte in range(256) for v in (ref.fp4_value(byte & 0xF), ref.fp4_value(byte >> 4))]]
    assert unpacked.tolist() == expected


# --------------------------------------------------------------------------- e8m0

_HAND = [
    # amax, format, {mode: byte}
    (5.0, "fp4", {"round_down": 127, "round_up": 127, "even": 127, "ceil": 128}),
    (6.0, "fp4", {"round_down": 127, "round_up": 127, "even": 127, "ceil": 128}),
    (7.0, "fp4", {"round_down": 127, "round_up": 128, "even": 128, "ceil": 128}),
    (448.0, "e4m3fn", {"round_down": 127, "round_up": 127, "even": 127, "ceil": 128}),
    (240.0, "e4m3fnuz", {"round_down": 127, "round_up": 127, "even": 127, "ceil": 128}),
    (250.0, "e4m3fnuz", {"round_down": 127, "round_up": 128, "even": 128, "ceil": 128}),
    (0.0, "fp4", {"round_down": 0, "round_up": 0, "even": 0, "ceil": 0}),
]


@pytest.mark.parametrize(("amax", "fmt", "expected"), _HAND)
def test_e8m0_modes_hand_cases(amax, fmt, expected):
    for mode, byte in expected.items():
        got = sim_e8m0.encode(torch.tensor([amax]), sim_e8m0.MODES[mode], fmt)
        assert got.item() == byte == ref.e8m0_byte(amax, mode, fmt), mode


@pytest.mark.parametrize("fmt", list(ref.MX_FORMATS))
@pytest.mark.parametrize("mode", list(sim_e8m0.MODES))
def test_e8m0_modes_match_reference(mode, fmt):
    gen = torch.Generator().manual_seed(1)
    amax = (torch.rand(400, generator=gen) * 2.0 ** torch.randint(-20, 20, (400,), generator=gen)).float()
    got = sim_e8m0.encode(amax, sim_e8m0.MODES[mode], fmt).tolist()
    assert got == [ref.e8m0_byte(a, mode, fmt) for a in amax.tolist()]


def test_e8m0_decode_is_two_to_the_byte_minus_127(install):
    install("gfx950")
    from aiter.utility import fp4_utils

    values = fp4_utils.e8m0_to_f32(torch.arange(256, dtype=torch.uint8))
    assert values[0].item() == 2.0**-127 and torch.isnan(values[255])
    assert values[1:255].tolist() == [2.0 ** (b - 127) for b in range(1, 255)]


@pytest.mark.parametrize("release_build", [False, True], ids=["head", "release"])
@pytest.mark.parametrize("mode", list(sim_e8m0.MODES))
def test_triton_mxfp4_quant_modes_and_layout(install, mode, release_build):
    """A release build rounds with ``scaling_mode``; HEAD never reads it and always rounds Even."""
    install("gfx950", release_build=release_build)
    from aiter.ops.triton.quant import dynamic_mxfp4_quant

    x = _x(8, 128)
    values, scale = dynamic_mxfp4_quant(x, scaling_mode=mode)
    assert values.dtype == scale.dtype == torch.uint8
    assert values.shape == (8, 64) and scale.shape == (8, 4) and scale.stride() == (1, 8)
    amax = x.float().view(8, 4, 32).abs().amax(-1)
    applied = mode if release_build else "even"
    assert scale.tolist() == [[ref.e8m0_byte(a, applied, "fp4") for a in row] for row in amax.tolist()]
    divided = x.float().view(8, 4, 32) / torch.exp2(scale.float() - 127).unsqueeze(-1)
    codes = [[ref.fp4_code(v) for v in row] for row in divided.view(8, 128).tolist()]
    assert torch.equal(values, ref.fp4_pack(codes))


def test_triton_mxfp4_rejects_unknown_mode_in_a_release_build(install):
    install("gfx950", release_build=True)
    from aiter.ops.triton.quant import dynamic_mxfp4_quant

    with pytest.raises(ValueError, match="even"):
        dynamic_mxfp4_quant(_x(2, 64), scaling_mode="stochastic")


def test_triton_mxfp4_at_head_never_reads_scaling_mode(install):
    install("gfx950", release_build=False)
    from aiter.ops.triton.quant import dynamic_mxfp4_quant

    assert ref.unread_parameters(dynamic_mxfp4_quant) == {"scaling_mode"}
    x = _x(4, 64)
    assert torch.equal(dynamic_mxfp4_quant(x, scaling_mode="stochastic")[1], dynamic_mxfp4_quant(x)[1])


# --------------------------------------------------------------------------- MXFP4 HIP quant and the swizzle


@pytest.mark.parametrize("scale_dtype", [torch.uint8, torch.float32])
@pytest.mark.parametrize("shuffle", [False, True])
def test_per_token_scaled_quant_with_fp4_output_writes_round_up_e8m0_bytes(install, shuffle, scale_dtype):
    """AITER HEAD: the grouped fp4x2 path writes e8m0 RoundUp bytes (MX-swizzled with shuffle), never fp32."""
    install("gfx950")
    import aiter

    rows, cols = 40, 256
    x = _x(rows, cols)
    groups = cols // 32
    padded_rows, padded_groups = (256, 8) if shuffle else (rows, groups)
    out = torch.empty(rows, cols // 2, dtype=aiter.dtypes.fp4x2)
    scales = torch.zeros(
        padded_rows * padded_groups // scale_dtype.itemsize
        if scale_dtype.itemsize > 1
        else padded_rows * padded_groups,
        dtype=scale_dtype,
    )
    aiter.dynamic_per_token_scaled_quant(out, x.view(-1, 32), scales, shuffle_scale=shuffle)
    written = scales.view(torch.uint8)
    amax = x.float().view(rows, groups, 32).abs().amax(-1)
    for m in range(rows):
        for g in range(groups):
            at = ref.mx_swizzle_index(m, g, padded_groups) if shuffle else m * groups + g
            assert int(written[at]) == ref.e8m0_byte(float(amax[m, g]), "round_up", "fp4"), (m, g)
    values, _ = aiter.per_1x32_mx_quant_hip(x, quant_dtype=aiter.dtypes.fp4x2)
    assert torch.equal(out.view(torch.uint8), values.view(torch.uint8))


def test_hip_mxfp4_uses_round_up_scales(install):
    install("gfx950")
    import aiter

    x = _x(4, 128)
    values, scale = aiter.per_1x32_mx_quant_hip(x, quant_dtype=aiter.dtypes.fp4x2)
    assert values.dtype == aiter.dtypes.fp4x2 and scale.dtype == aiter.dtypes.fp8_e8m0
    amax = x.float().view(4, 4, 32).abs().amax(-1)
    expected = [[ref.e8m0_byte(a, "round_up", "fp4") for a in row] for row in amax.tolist()]
    assert scale.view(torch.uint8).tolist() == expected
    divided = x.float().view(4, 4, 32) / torch.exp2(scale.view(torch.uint8).float() - 127).unsqueeze(-1)
    codes = [[ref.fp4_code(v) for v in row] for row in divided.view(4, 128).tolist()]
    assert torch.equal(values.view(torch.uint8), ref.fp4_pack(codes))


@pytest.mark.parametrize(("rows", "cols"), [(5, 64), (40, 320), (300, 96)])
def test_mx_swizzle_follows_the_index_formula(install, rows, cols):
    install("gfx950")
    import aiter
    from aiter.ops.shuffle import shuffle_scale

    x = _x(rows, cols)
    _, plain = aiter.per_1x32_mx_quant_hip(x, quant_dtype=aiter.dtypes.fp4x2, shuffle=False)
    _, swizzled = aiter.per_1x32_mx_quant_hip(x, quant_dtype=aiter.dtypes.fp4x2, shuffle=True)
    groups = cols // 32
    padded = (groups + 7) // 8 * 8
    assert swizzled.shape == ((rows + 255) // 256 * 256, padded)
    flat = swizzled.view(torch.uint8).flatten()
    plain_bytes = plain.view(torch.uint8)
    for m in range(rows):
        for g in range(groups):
            assert flat[ref.mx_swizzle_index(m, g, padded)] == plain_bytes[m, g]
    permuted = shuffle_scale(plain).view(torch.uint8).flatten()
    index = torch.tensor([ref.mx_swizzle_index(m, g, padded) for m in range(rows) for g in range(groups)])
    assert torch.equal(permuted[index], flat[index])


def test_swizzle_leaves_padding_bytes_as_they_were(install):
    install("gfx950")
    import aiter

    x = _x(3, 64)
    scales = torch.full((256, 8), 0xAB, dtype=torch.uint8)
    out = torch.empty(3, 32, dtype=aiter.dtypes.fp4x2)
    aiter.dynamic_per_group_scaled_quant(out, x, scales, 32, shuffle_scale=True)
    written = {ref.mx_swizzle_index(m, g, 8) for m in range(3) for g in range(2)}
    flat = scales.flatten().tolist()
    assert all(byte == 0xAB for i, byte in enumerate(flat) if i not in written)
    assert any(flat[i] != 0xAB for i in written)


def test_e8m0_shuffle_other_than_group_32_is_group_major(install):
    install("gfx950")
    import aiter

    x = _x(3, 256)
    scales = torch.empty(3, 4, dtype=torch.uint8)
    out = torch.empty(3, 256, dtype=aiter.dtypes.fp8)
    aiter.dynamic_per_group_scaled_quant(out, x, scales, 64, shuffle_scale=True)
    plain = torch.empty(3, 4, dtype=torch.uint8)
    aiter.dynamic_per_group_scaled_quant(torch.empty_like(out), x, plain, 64, shuffle_scale=False)
    assert torch.equal(scales.flatten(), plain.T.flatten())


# --------------------------------------------------------------------------- FP8 per token / per group


@pytest.mark.parametrize("ck_free", [False, True])
def test_per_group_quant_values_and_scale_layouts(install, arch, ck_free):
    install(arch, ck_free=ck_free)
    import aiter

    fp8 = aiter.dtypes.fp8
    x = _x(6, 384)
    values, scale = ref.fp8_quantize_groups(x, 128, fp8)
    q, s = aiter.per_group_quant_hip(x, quant_dtype=fp8, group_size=128)
    assert torch.equal(q.view(torch.uint8), values.view(torch.uint8))
    assert s.shape == (6, 3) and torch.equal(s, scale)
    qt, st = aiter.per_group_quant_hip(x, quant_dtype=fp8, group_size=128, transpose_scale=True)
    assert torch.equal(qt.view(torch.uint8), values.view(torch.uint8))
    assert st.shape == (6, 3) and st.stride() == (3, 1)
    assert torch.equal(st.flatten(), scale.T.flatten())


def test_grouped_regime_with_num_rows_uses_the_valid_row_count(install):
    install()
    import aiter

    fp8 = aiter.dtypes.fp8
    x = _x(6, 256)
    _, scale = ref.fp8_quantize_groups(x[:4], 128, fp8)
    out = torch.zeros(6, 256, dtype=fp8)
    scales = torch.full((6, 2), -1.0)
    aiter.dynamic_per_token_scaled_quant(
        out,
        x.view(-1, 128),
        scales,
        shuffle_scale=True,
        num_rows=torch.tensor([2], dtype=torch.int32),
        num_rows_factor=2,
    )
    assert torch.equal(scales.flatten()[:8], scale.T.flatten())
    assert (scales.flatten()[8:] == -1).all()
    assert (out[4:].view(torch.uint8) == 0).all()


@pytest.mark.parametrize("ck_free", [False, True])
def test_per_token_regime(install, arch, ck_free):
    install(arch, ck_free=ck_free)
    import aiter

    fp8 = aiter.dtypes.fp8
    x = _x(5, 320)
    values, scale = ref.fp8_quantize_groups(x, 320, fp8)
    q, s = aiter.per_token_quant_hip(x, quant_dtype=fp8)
    assert s.shape == (5, 1)
    assert torch.equal(q.view(torch.uint8), values.view(torch.uint8)) and torch.equal(s, scale)


def test_scale_ub_caps_the_amax(install):
    install()
    import aiter

    fp8 = aiter.dtypes.fp8
    x = _x(3, 320)
    out = torch.empty(3, 320, dtype=fp8)
    scales = torch.empty(3, 1)
    aiter.dynamic_per_token_scaled_quant(out, x, scales, scale_ub=torch.tensor([0.5]))
    assert torch.equal(scales, torch.minimum(x.float().abs().amax(1, keepdim=True), torch.tensor(0.5)) / 240.0)


def test_e8m0_fp8_group_quant_uses_the_arch_format(install, arch):
    install(arch)
    import aiter

    x = _x(4, 256)
    q, s = aiter.per_group_quant_hip(x, quant_dtype=aiter.dtypes.fp8, group_size=128, scale_type=aiter.dtypes.fp8_e8m0)
    fmt = "e4m3fnuz" if arch == "gfx942" else "e4m3fn"
    amax = x.float().view(4, 2, 128).abs().amax(-1)
    assert s.view(torch.uint8).tolist() == [[ref.e8m0_byte(a, "round_up", fmt) for a in row] for row in amax.tolist()]
    limit = ref.FP8_MAX[aiter.dtypes.fp8]
    divided = x.float().view(4, 2, 128) / torch.exp2(s.view(torch.uint8).float() - 127).unsqueeze(-1)
    expected = divided.clamp(-limit, limit).view(4, 256).to(aiter.dtypes.fp8)
    assert torch.equal(q.view(torch.uint8), expected.view(torch.uint8))


def test_per_tensor_quant(install):
    install()
    import aiter

    fp8 = aiter.dtypes.fp8
    x = _x(4, 64)
    q, s = aiter.per_tensor_quant_hip(x, quant_dtype=fp8)
    assert s.item() == (x.float().abs().max() / 240.0).item()
    assert torch.equal(q.view(torch.uint8), (x.float() / s).clamp(-240, 240).to(fp8).view(torch.uint8))
    q2, s2 = aiter.per_tensor_quant_hip(x, scale=torch.tensor([0.01]), quant_dtype=fp8)
    assert s2.item() == pytest.approx(0.01)
    assert torch.equal(q2.view(torch.uint8), (x.float() / 0.01).clamp(-240, 240).to(fp8).view(torch.uint8))


# --------------------------------------------------------------------------- partial transpose


@pytest.mark.parametrize("ck_free", [False, True])
def test_partial_transpose(install, ck_free):
    install(ck_free=ck_free)
    import aiter

    source = torch.arange(24, dtype=torch.float32).view(6, 4)
    out = torch.full((6, 4), -1.0)
    aiter.partial_transpose(out, source, torch.tensor([3], dtype=torch.int32))
    flat = out.flatten()
    for row in range(3):
        for col in range(4):
            assert flat[col * 3 + row] == source[row, col]
    assert (flat[12:] == -1).all()


# --------------------------------------------------------------------------- Triton FP8 quant


def test_fused_flatten_fp8_group_quant(install, arch):
    install(arch)
    import aiter
    from aiter.ops.triton.quant import fused_flatten_fp8_group_quant

    fp8 = aiter.dtypes.fp8
    x = _x(3, 2 * 128).view(3, 2, 128)
    out, scale = fused_flatten_fp8_group_quant(x, 64)
    values, expected = ref.fp8_quantize_groups(x.reshape(3, 256), 64, fp8)
    assert out.dtype == fp8 and torch.equal(out.view(torch.uint8), values.view(torch.uint8))
    assert torch.equal(scale, expected) and scale.stride() == (4, 1)
    _, transposed = fused_flatten_fp8_group_quant(x, 64, transpose_scale=True)
    assert torch.equal(transposed, expected) and transposed.stride() == (1, 3)


def test_triton_per_token_fp8(install):
    install("gfx950")
    import aiter
    from aiter.ops.triton.quant import dynamic_per_token_quant_fp8_i8

    x = _x(4, 96)
    qx = torch.empty(4, 96, dtype=aiter.dtypes.fp8)
    scale = torch.empty(4)
    dynamic_per_token_quant_fp8_i8(qx, x, scale)
    assert torch.equal(scale, x.float().abs().amax(1) / 448.0)
    assert torch.equal(qx.float(), (x.float() * (1 / scale.unsqueeze(1))).to(aiter.dtypes.fp8).float())


# --------------------------------------------------------------------------- front ends


def test_get_hip_quant_table_is_cached(install):
    install()
    import aiter

    per_1x128 = aiter.get_hip_quant(aiter.QuantType.per_1x128)
    assert isinstance(per_1x128, functools.partial)
    assert per_1x128.func is aiter.per_group_quant_hip and per_1x128.keywords == {"group_size": 128}
    assert aiter.get_hip_quant(aiter.QuantType.per_1x128) is per_1x128
    assert aiter.get_hip_quant(aiter.QuantType.per_Token) is aiter.per_token_quant_hip
    assert aiter.get_hip_quant(aiter.QuantType.per_1x32) is aiter.per_1x32_mx_quant_hip
    with pytest.raises(NotImplementedError):
        aiter.get_hip_quant(aiter.QuantType.per_256x128)()


def test_torch_reference_quants(install):
    install()
    import aiter

    x = _x(4, 256)
    y, s = aiter.get_torch_quant(aiter.QuantType.per_Token)(x, quant_dtype=aiter.dtypes.fp8)
    assert torch.equal(s, x.float().abs().amax(-1, keepdim=True) / 240.0)
    y_block, s_block = aiter.get_torch_quant(aiter.QuantType.per_1x128)(x, quant_dtype=aiter.dtypes.fp8)
    assert s_block.shape == (4, 2)
    assert torch.equal(
        y_block.view(torch.uint8)[:, :128],
        aiter.pertoken_quant(x[:, :128], quant_dtype=aiter.dtypes.fp8)[0].view(torch.uint8),
    )
