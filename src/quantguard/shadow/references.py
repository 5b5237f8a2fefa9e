"""Precision-matched and chain references for scaled GEMMs, on a subset of rows and columns.

Precision-matched: the kernel's own quantized inputs, dequantized exactly
(bytes read in the fp8 variant the arch's kernels use, scales read in the
memory layout the kernel claims to read), multiplied in fp32 (fp64 on
request) and cast to the kernel's output dtype.  Only the sampled rows of x
and a subset of output columns (16-row blocks of W, so preshuffled weights
can be unshuffled block by block) are computed: the cost does not grow with
batch size and does not dequantize the whole weight.  Every selection is a
slice, so nothing needs an index tensor copied from the host.

Chain: the high-precision activation the guarded producer quantized (its
sampled rows, remembered by provenance) times the dequantized weight — the
whole quant→GEMM chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from quantguard.contracts.views import GemmView
from quantguard.numerics.dequant import expand_groups, fp8_values, scale_values, unpack_fp4
from quantguard.numerics.layouts import read_scales, unshuffle_weight

__all__ = ["ColumnBlocks", "select_columns", "x_scale_read_layout", "scale_address_strides", "dequantize_x_rows",
           "dequantize_w_columns", "output_columns", "matched_reference", "chain_reference",
           "SHADOW_COLUMNS"]

#: Output columns compared per sampled call unless ``shadow_full``.
SHADOW_COLUMNS = 256


@dataclass(frozen=True)
class ColumnBlocks:
    """Output columns as ``blocks`` (a slice) of ``size``-row blocks of W."""

    size: int
    blocks: slice
    total: int  # N


def select_columns(n: int, full: bool, draw: float, block_rows: int | None) -> ColumnBlocks:
    """Output columns to compare; whole preshuffle blocks (``block_rows``) when W is preshuffled."""
    size = block_rows if block_rows else (16 if n % 16 == 0 and n >= 16 else 1)
    count_blocks = n // size
    wanted = count_blocks if full else max(1, min(count_blocks, SHADOW_COLUMNS // size))
    step = max(1, count_blocks // wanted)
    start = int(draw * step) if step > 1 else 0
    return ColumnBlocks(size, slice(start, start + step * wanted, step), n)


def x_scale_read_layout(view: GemmView, x_scale: torch.Tensor) -> str:
    """How the kernel reads x_scale: ``logical`` (by its strides) or a raw memory layout.

    Stride-aware kernels (Triton) always read logically; kernels that accept a
    transposed *view* (``x_scale_strided_ok``) read one with ``stride(0) == 1``
    by its strides too.
    """
    layout = view.x_scale_layout
    strided_view = x_scale.dim() == 2 and x_scale.stride(0) == 1 and not x_scale.is_contiguous()
    if layout == "logical" or (view.x_scale_strided_ok and strided_view):
        return "logical"
    return layout


def scale_address_strides(layout: str, tensor: torch.Tensor, rows: int, groups: int) -> tuple[int, int] | None:
    """Element offsets ``(per row, per group)`` at which a reader (or writer) finds group ``(m, g)``."""
    if layout == "logical":
        return (tensor.stride(0), tensor.stride(1)) if tensor.dim() == 2 else None
    if layout == "row_major":
        return (groups, 1)
    if layout == "transposed":
        return (1, rows)
    return None


def _multipliers(scales: torch.Tensor, layout: str, rows: int, groups: int, selected: Any) -> torch.Tensor | None:
    if scales.element_size() == 1:
        scales = scales.view(torch.uint8)
    if scales.numel() == 1:
        return scale_values(scales.reshape(1, 1))
    read = read_scales(scales, layout, rows, groups, selected)
    return None if read is None else scale_values(read)


def dequantize_x_rows(view: GemmView, x_rows: torch.Tensor, x_scale: torch.Tensor | None,
                      selected: slice) -> torch.Tensor | None:
    """Dequantized sampled rows of x, read the way the kernel reads them."""
    values = unpack_fp4(x_rows) if view.scheme == "mx" else fp8_values(x_rows, view.fp8_read_as)
    if x_scale is None:
        return values
    k = values.shape[-1]
    if view.scheme in ("per_token", "per_tensor"):
        flat = x_scale.reshape(-1)
        if flat.numel() == 1:
            return values * scale_values(flat).reshape(1, 1)
        if flat.numel() != view.m:
            return None
        return values * scale_values(flat[selected]).reshape(-1, 1)
    group = view.block_k if view.scheme == "block" else view.mx_group
    groups = -(-k // group)
    layout = x_scale_read_layout(view, x_scale)
    if layout == "kernel_specific":
        return None
    multipliers = _multipliers(x_scale, layout, view.m, groups, selected)
    if multipliers is None:
        return None
    return values * expand_groups(multipliers, group, k)


def _w_rows(view: GemmView, columns: ColumnBlocks) -> torch.Tensor:
    """The selected output channels of W in plain ``(n_sel, K_bytes)`` layout (unshuffled if needed)."""
    w = view.w.reshape(-1, view.w.shape[-1]) if view.w.dim() > 2 and view.batch is None else view.w
    n, width = int(w.shape[-2]), int(w.shape[-1])
    blocks = w.reshape(*w.shape[:-2], n // columns.size, columns.size, width)[..., columns.blocks, :, :]
    layout = view.shuffle_layout
    if layout is not None and columns.size == layout[0]:
        blocks = unshuffle_weight(blocks.reshape(-1, layout[0], width), layout).reshape(blocks.shape)
    return blocks.reshape(*w.shape[:-2], -1, width)


def _column_index_rows(scales: torch.Tensor, columns: ColumnBlocks, repeat: int) -> torch.Tensor:
    """Per-output-channel rows of a per-channel (repeat=1) or per-block (repeat=128) scale tensor."""
    expanded = scales.repeat_interleave(repeat, dim=0)[: columns.total] if repeat > 1 else scales[: columns.total]
    blocks = expanded.reshape(columns.total // columns.size, columns.size, *expanded.shape[1:])
    return blocks[columns.blocks].reshape(-1, *expanded.shape[1:])


def dequantize_w_columns(view: GemmView, columns: ColumnBlocks) -> torch.Tensor | None:
    w_rows = _w_rows(view, columns)
    values = unpack_fp4(w_rows) if view.scheme == "mx" else fp8_values(w_rows, view.fp8_read_as)
    scales = view.w_scale
    if scales is None:
        return values
    if scales.element_size() == 1:
        scales = scales.view(torch.uint8)
    k = values.shape[-1]
    if scales.numel() == 1:
        return values * scale_values(scales.reshape(1, 1))
    if view.scheme in ("per_token", "per_tensor"):
        flat = scales.reshape(-1)
        if flat.numel() != columns.total:
            return None
        return values * scale_values(_column_index_rows(flat, columns, 1)).reshape(-1, 1)
    if view.scheme == "block":
        per_channel = _column_index_rows(scales, columns, view.block_n)
        return values * expand_groups(scale_values(per_channel), view.block_k, k)
    if view.scheme == "mx":
        groups = -(-k // view.mx_group)
        layout = "row_major" if view.w_scale_layout == "logical" else view.w_scale_layout
        if layout == "kernel_specific":
            return None
        full = read_scales(scales, layout, columns.total, groups)
        if full is None:
            return None
        per_channel = _column_index_rows(full, columns, 1)
        return values * expand_groups(scale_values(per_channel), view.mx_group, k)
    return None


def output_columns(out_rows: torch.Tensor, columns: ColumnBlocks) -> torch.Tensor:
    n = columns.total
    return out_rows[..., :n].reshape(*out_rows.shape[:-1], n // columns.size, columns.size)[..., columns.blocks, :] \
        .reshape(*out_rows.shape[:-1], -1)


def _bias_columns(bias: torch.Tensor | None, columns: ColumnBlocks) -> torch.Tensor | None:
    if bias is None:
        return None
    flat = bias.reshape(-1)[: columns.total].to(torch.float32)
    return _column_index_rows(flat, columns, 1)


def matched_reference(view: GemmView, x_deq: torch.Tensor, w_deq: torch.Tensor, columns: ColumnBlocks,
                      out_dtype: torch.dtype, precision: torch.dtype = torch.float32) -> torch.Tensor:
    """``x @ w^T`` in ``precision`` (+ bias, x alpha), cast like the kernel casts its output."""
    product = torch.matmul(x_deq.to(precision), w_deq.to(precision).transpose(-1, -2)) * view.alpha
    bias = _bias_columns(view.bias, columns)
    if bias is not None:
        product = product + bias.to(precision)
    return product.to(out_dtype)


def chain_reference(x_high: torch.Tensor, w_deq: torch.Tensor, view: GemmView, columns: ColumnBlocks,
                    precision: torch.dtype = torch.float32) -> torch.Tensor:
    """The unquantized product ``x @ dequant(W)^T`` for the same rows (the whole quant→GEMM chain)."""
    product = torch.matmul(x_high.to(precision), w_deq.to(precision).transpose(-1, -2)) * view.alpha
    bias = _bias_columns(view.bias, columns)
    if bias is not None:
        product = product + bias.to(precision)
    return product
