"""Numerics references: exact e8m0 modes, fp4 unpacking, MX swizzle, preshuffle, metrics."""

from __future__ import annotations

import math

import pytest
import torch

from quantguard.numerics.dequant import unpack_fp4
from quantguard.numerics.formats import FP4_E2M1, FP8_E4M3FN, FP8_E4M3FNUZ, e8m0_decode, e8m0_encode
from quantguard.numerics.layouts import mx_swizzle_index, read_scales, shuffle_weight, unshuffle_weight
from quantguard.numerics.metrics import comparison_tensors, summarize


@pytest.mark.parametrize(
    "amax, fmt, mode, exponent",
    [
        # RoundUp: ceil_pow2(amax / max_pos)
        (6.0, FP4_E2M1, "up", 0),
        (6.1, FP4_E2M1, "up", 1),
        (3.0, FP4_E2M1, "up", -1),
        (448.0, FP8_E4M3FN, "up", 0),
        (240.0, FP8_E4M3FNUZ, "up", 0),
        (241.0, FP8_E4M3FNUZ, "up", 1),
        # RoundDown: floor_pow2(amax) / 2^t
        (6.0, FP4_E2M1, "down", 0),
        (7.9, FP4_E2M1, "down", 0),
        (8.0, FP4_E2M1, "down", 1),
        (448.0, FP8_E4M3FN, "down", 0),
        (240.0, FP8_E4M3FNUZ, "down", 0),
        # Even: round the mantissa at mbits+1, floor, / 2^t
        (6.0, FP4_E2M1, "even", 0),
        (7.0, FP4_E2M1, "even", 1),
        (5.9, FP4_E2M1, "even", 0),
        (496.0, FP8_E4M3FN, "even", 1),
        (495.0, FP8_E4M3FN, "even", 0),
        (480.0, FP8_E4M3FN, "even", 0),
        # Ceil: ceil_pow2(amax) / 2^t
        (4.0, FP4_E2M1, "ceil", 0),
        (4.5, FP4_E2M1, "ceil", 1),
        (256.0, FP8_E4M3FN, "ceil", 0),
        (300.0, FP8_E4M3FN, "ceil", 1),
    ],
)
def test_e8m0_modes_match_aiter_definitions(amax, fmt, mode, exponent):
    byte = int(e8m0_encode(torch.tensor([amax]), mode, fmt)[0])
    assert byte - 127 == exponent


def test_e8m0_decode_and_nan():
    decoded = e8m0_decode(torch.tensor([127, 128, 0, 255]))
    assert decoded[:2].tolist() == [1.0, 2.0] and decoded[2] == 2.0**-127 and math.isnan(decoded[3])


def test_fp4_unpack_low_nibble_first_with_sign():
    packed = torch.tensor([[0x21, 0xF9]], dtype=torch.uint8)  # elements: 0x1, 0x2, 0x9, 0xF
    assert unpack_fp4(packed).tolist() == [[0.5, 1.0, -0.5, -6.0]]


def test_mx_swizzle_index_is_the_documented_formula_and_a_bijection():
    rows, groups = 300, 13
    index = mx_swizzle_index(rows, groups)
    padded_groups = 16
    for x, y in [(0, 0), (17, 5), (255, 12), (299, 9), (33, 7)]:
        expected = (
            (x // 32 * padded_groups) * 32
            + (y // 8) * 256
            + (y % 4) * 64
            + (x % 16) * 4
            + ((y % 8) // 4) * 2
            + (x % 32) // 16
        )
        assert int(index[x, y]) == expected
    assert index.unique().numel() == rows * groups
    assert int(index.max()) < 512 * padded_groups


@pytest.mark.parametrize("layout", ["row_major", "transposed", "mx_swizzle", "logical"])
def test_read_scales_inverts_writes(layout):
    rows, groups = 40, 6
    logical = torch.arange(rows * groups, dtype=torch.float32).view(rows, groups)
    if layout == "row_major":
        buffer = logical.clone()
    elif layout == "transposed":
        buffer = logical.t().contiguous().view(rows, groups)  # (M, G) shape, (G, M) bytes
    elif layout == "logical":
        buffer = torch.full((groups + 2, rows), -1.0).t()  # a wider column-major view: strides tell
        buffer[:rows, :groups] = logical
    else:
        buffer = torch.full((256, 8), -1.0)
        buffer.view(-1)[mx_swizzle_index(rows, groups).view(-1)] = logical.view(-1)
    assert torch.equal(read_scales(buffer, layout, rows, groups), logical)
    assert torch.equal(read_scales(buffer, layout, rows, groups, slice(3, 30, 5)), logical[3:30:5])


@pytest.mark.parametrize("layout", [(16, 16), (32, 16)])
def test_unshuffle_inverts_shuffle(layout):
    weight = torch.randint(0, 255, (64, 128), dtype=torch.uint8)
    shuffled = shuffle_weight(weight, layout)
    assert not torch.equal(shuffled, weight)
    assert torch.equal(unshuffle_weight(shuffled, layout), weight)


def test_cosine_is_float64_and_never_above_one():
    x = torch.full((4096,), 1e-3, dtype=torch.float32) + torch.randn(4096) * 1e-9
    metrics = summarize({k: v.tolist() for k, v in comparison_tensors(x, x.clone()).items()})
    assert metrics.cosine <= 1.0 and metrics.cosine > 1 - 1e-12 and metrics.norm_ratio == 1.0
    assert metrics.sqnr_db == math.inf


def test_metrics_catch_magnitude_and_nonfinite():
    reference = torch.randn(100)
    doubled = summarize({k: v.tolist() for k, v in comparison_tensors(reference * 2, reference).items()})
    assert doubled.cosine == pytest.approx(1.0) and doubled.norm_ratio == pytest.approx(2.0)
    broken = reference.clone()
    broken[:3] = float("nan")
    metrics = summarize({k: v.tolist() for k, v in comparison_tensors(broken, reference).items()})
    assert metrics.nan == 3 and metrics.count == 100
