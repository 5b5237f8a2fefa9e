"""Expected scales, the written-layout verdict and the bit views, on hand-made buffers."""

from __future__ import annotations

import pytest
import torch

from quantguard.numerics.formats import FP8_E4M3FN, INT8, e8m0_format, raw_bits, scale_storage
from quantguard.numerics.layouts import read_scales, scale_address_strides
from quantguard.numerics.scales import block_amax, expected_scales, fp32_scales, group_amax
from quantguard.numerics.written_layout import WrittenLayout, count_key, mismatch_counts, written_layout


def test_block_amax_pads_partial_blocks_and_keeps_bytes_as_bytes():
    values = torch.tensor([[1.0, -5.0, 2.0], [-3.0, 0.5, 4.0], [7.0, 0.0, -1.0]])
    assert block_amax(values, 2, 2).tolist() == [[5.0, 4.0], [7.0, 1.0]]
    codes = torch.tensor([[0, 3, 9], [200, 1, 0]], dtype=torch.uint8)
    assert block_amax(codes, 1, 2).dtype == torch.uint8
    assert block_amax(codes, 1, 2).tolist() == [[3, 9], [200, 0]]


def test_group_amax_follows_the_quant_view_group_conventions():
    x = torch.tensor([[1.0, -2.0, 3.0, -8.0], [0.5, 0.25, -0.125, 0.0]], dtype=torch.bfloat16)
    assert group_amax(x, 2).tolist() == [[2.0, 8.0], [0.5, 0.125]]
    assert group_amax(x, 3).tolist() == [[3.0, 8.0], [0.5, 0.0]]  # a partial last group
    assert group_amax(x, None).tolist() == [[8.0], [0.5]]
    assert group_amax(x, 0).tolist() == [[8.0]]
    assert group_amax(x, 2).dtype == torch.float32


def test_fp32_scales_floor_the_amax_or_write_one():
    amax = torch.tensor([0.0, 448.0])
    assert fp32_scales(amax, 448.0).tolist() == [pytest.approx(1e-10 / 448.0), 1.0]
    assert fp32_scales(amax, 448.0, "one").tolist() == [1.0, 1.0]


def test_expected_e8m0_scales_use_the_elements_constants_or_e4m3fn():
    assert e8m0_format(INT8) is FP8_E4M3FN and e8m0_format(None) is FP8_E4M3FN
    expected = expected_scales(torch.tensor([[448.0, 449.0]]), "e8m0", FP8_E4M3FN)
    assert set(expected) == {"up", "down", "even", "ceil"}
    assert expected["up"].tolist() == [[127, 128]]
    assert list(expected_scales(torch.ones(1, 1), "fp32", FP8_E4M3FN)) == ["fp32"]


def test_written_layout_prefers_the_declared_mode_then_the_candidate_order():
    values = {
        count_key("row_major", "up"): 0.0,
        count_key("transposed", "even"): 0.0,
        count_key("transposed", "up"): 3.0,
    }
    verdict = WrittenLayout.from_counts(values, ["row_major", "transposed"], ["up", "even", "ceil"], 12)
    assert verdict.matches == (("row_major", "up"), ("transposed", "even"))  # a pair with no count never matches
    assert verdict.layouts == ("row_major", "transposed") and verdict.encodings("transposed") == ("even",)
    assert verdict.best("even") == ("transposed", "even")
    assert verdict.best("ceil") == verdict.best() == ("row_major", "up")
    assert WrittenLayout.from_counts({}, ["row_major"], ["up"], 0).best() is None


def test_mismatch_counts_leave_out_unconsidered_groups_and_unreadable_layouts():
    expected = torch.arange(1.0, 7.0).view(3, 2)
    buffer = expected.t().contiguous().view(3, 2)  # (M, G) shape, (G, M) bytes
    buffer.view(-1)[1 * 3 + 2] = 99.0  # group (2, 1), at g * M + m
    considered = torch.ones(3, 2, dtype=torch.bool)
    considered[2, 1] = False
    layouts, counts = mismatch_counts(buffer, {"fp32": expected}, ["transposed", "mx_swizzle"], 3, 2, considered)
    assert layouts == ["transposed"]  # too small for an MX-swizzled buffer
    assert float(counts[count_key("transposed", "fp32")]) == 0.0
    considered[2, 1] = True
    _, counts = mismatch_counts(buffer, {"fp32": expected}, ["transposed"], 3, 2, considered)
    assert float(counts[count_key("transposed", "fp32")]) == 1.0


def test_a_single_scale_is_written_in_every_layout():
    x = torch.tensor([[2.0, -448.0]])
    verdict = written_layout(x, torch.tensor([1.0]), 0, "fp32", FP8_E4M3FN, ["transposed", "row_major"])
    assert verdict.layouts == ("transposed", "row_major") and verdict.compared == 1


def test_written_layout_reads_e8m0_scales_as_bytes():
    x = torch.tensor([[1.0, 448.0, 3.0, 896.0]])
    scales = torch.tensor([[127, 128]], dtype=torch.uint8).view(torch.float8_e8m0fnu)
    verdict = written_layout(x, scales, 2, "e8m0", FP8_E4M3FN, ["row_major"])
    assert verdict.best("up") == ("row_major", "up")
    assert scale_storage(scales).dtype == torch.uint8 and scale_storage(torch.ones(2)).dtype == torch.float32


def test_raw_bits_compare_nan_payloads_and_reject_odd_widths():
    nan = torch.tensor([float("nan"), -0.0, 0.0])
    other = nan.view(torch.int32).clone()
    other[0] += 1  # another NaN payload
    assert raw_bits(nan).dtype == torch.int32 and not torch.equal(raw_bits(nan), other)
    assert raw_bits(nan)[1] != raw_bits(nan)[2]
    assert raw_bits(torch.ones(2, dtype=torch.int8)).dtype == torch.int8
    with pytest.raises(ValueError, match="16 bytes"):
        raw_bits(torch.ones(2, dtype=torch.complex128))


@pytest.mark.parametrize("layout", ["row_major", "transposed", "logical"])
def test_scale_address_strides_address_what_read_scales_reads(layout):
    rows, groups = 5, 3
    buffer = torch.arange(rows * groups, dtype=torch.float32).view(rows, groups)
    if layout == "logical":
        buffer = buffer.t().contiguous().t()  # a column-major view
    per_row, per_group = scale_address_strides(layout, buffer, rows, groups)
    m, g = torch.arange(rows).view(-1, 1), torch.arange(groups).view(1, -1)
    addressed = torch.as_strided(buffer, (buffer.numel(),), (1,))[m * per_row + g * per_group]
    assert torch.equal(addressed, read_scales(buffer, layout, rows, groups))
    assert scale_address_strides("mx_swizzle", buffer, rows, groups) is None
