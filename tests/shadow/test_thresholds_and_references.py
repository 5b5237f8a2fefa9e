"""Tolerances (most specific override wins) and the row/column-subset GEMM references."""

from __future__ import annotations

import torch

from quantguard.contracts.views import GemmView
from quantguard.numerics.layouts import shuffle_weight
from quantguard.shadow.references import (
    chain_reference,
    dequantize_w_columns,
    dequantize_x_rows,
    matched_reference,
    output_columns,
    select_columns,
)
from quantguard.shadow.thresholds import tolerance_for


def test_threshold_overrides_most_specific_wins():
    overrides = {"fp8": 0.99, "aiter.ops.gemm_op_a8w8.*": 0.98, "aiter.ops.gemm_op_a8w8.*@model.layers.3.*": 0.9}
    target = "aiter.ops.gemm_op_a8w8.gemm_a8w8_blockscale"
    assert tolerance_for("chain", "fp8", target, "model.layers.3.mlp", overrides).cosine == 0.9
    assert tolerance_for("chain", "fp8", target, "model.layers.1.mlp", overrides).cosine == 0.98
    assert tolerance_for("chain", "fp8", "torch._scaled_mm", None, overrides).cosine == 0.99
    assert tolerance_for("chain", "int4", "torch._scaled_mm", None, {}).cosine == 0.99
    assert tolerance_for("matched", "fp8", target, None, {}).cosine == 0.9995


def test_tolerance_names_every_failed_metric():
    tolerance = tolerance_for("chain", "fp8", "t", None, {})
    failures = tolerance.failures(0.5, 2.0, 3.0)
    assert [f.split()[0] for f in failures] == ["cosine", "norm", "SQNR"]


def _view(w, w_layout="plain"):
    m, k = 20, 256
    x = torch.randn(m, k).to(torch.float8_e4m3fn)
    x_scale = torch.rand(m, 1) + 0.5
    w_scale = torch.rand(w.shape[0], 1) + 0.5
    return GemmView(
        "k",
        x,
        w,
        x_scale,
        w_scale,
        scheme="per_token",
        w_layout=w_layout,
        fp8_read_as=torch.float8_e4m3fn,
        m=m,
        n=w.shape[0],
        k=k,
    )


def test_row_and_column_subset_reference_matches_full_product():
    w = (torch.randn(64, 256) * 4).to(torch.float8_e4m3fn)
    view = _view(w)
    full = (view.x.float() * view.x_scale) @ (w.float() * view.w_scale).t()
    rows = slice(1, 20, 3)
    columns = select_columns(64, False, 0.3, None)
    reference = matched_reference(
        view,
        dequantize_x_rows(view, view.x[rows], view.x_scale, rows),
        dequantize_w_columns(view, columns),
        columns,
        torch.float32,
    )
    assert torch.allclose(reference, output_columns(full[rows], columns), rtol=1e-5, atol=1e-4)


def test_preshuffled_weight_is_unshuffled_block_by_block():
    w = (torch.randn(64, 256) * 4).to(torch.float8_e4m3fn)
    plain, shuffled = _view(w), _view(shuffle_weight(w), "preshuffle_16x16")
    shuffled.x, shuffled.x_scale, shuffled.w_scale = plain.x, plain.x_scale, plain.w_scale
    columns = select_columns(64, False, 0.7, 16)
    assert torch.equal(dequantize_w_columns(plain, columns), dequantize_w_columns(shuffled, columns))


def test_chain_reference_is_the_unquantized_product():
    w = (torch.randn(32, 256) * 4).to(torch.float8_e4m3fn)
    view = _view(w)
    x = torch.randn(5, 256)
    columns = select_columns(32, True, 0.0, None)
    expected = x @ (w.float() * view.w_scale).t()
    assert torch.allclose(chain_reference(x, dequantize_w_columns(view, columns), view, columns), expected, atol=1e-4)
