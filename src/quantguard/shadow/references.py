"""Precision-matched and chain references for scaled GEMMs, on a subset of rows and columns.

Precision-matched: the kernel's own quantized inputs, dequantized exactly
(bytes read in the fp8 variant the arch's kernels use, scales read in the
memory layout the kernel claims to read), multiplied in fp32 (fp64 on
request) and cast to the kernel's output dtype.  Only some rows of x and some
output columns (16-row blocks of W, so preshuffled weights can be unshuffled
block by block) are computed, always over the whole K: the weight is never
dequantized whole.

Which rows and columns: a fault can be confined to one tile of the kernel
(the last, partial M or N tile is where boundary masks go wrong), so the
selection touches *every* ``M_TILE``-row and ``N_TILE``-column tile (tiles at
least as small as the kernels' blocks, so every kernel tile is touched too),
always includes the last row and the last column, and moves within the tiles
from one sampled call to the next (a random offset drawn from the seeded
sampler).  When there are more tiles than the budget (``MAX_ROWS``,
``MAX_COLUMNS``), a strided subset of tiles plus the last one is compared and
the subset rotates with the call's ``turn`` so that every tile is compared
within a few sampled calls.  Every selection is a slice plus at most one
extra index, so nothing needs an index tensor copied from the host.

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
from quantguard.numerics.formats import scale_storage
from quantguard.numerics.layouts import read_scales, unshuffle_weight

__all__ = [
    "Selection",
    "ColumnBlocks",
    "select_rows",
    "select_columns",
    "x_scale_read_layout",
    "dequantize_x_rows",
    "dequantize_w_columns",
    "output_columns",
    "matched_reference",
    "chain_reference",
    "SHADOW_COLUMNS",
    "M_TILE",
    "N_TILE",
    "MAX_ROWS",
    "MAX_COLUMNS",
    "pick",
]

#: Output columns compared per sampled call at least (unless N is smaller), unless ``shadow_full``.
SHADOW_COLUMNS = 256
#: Tile sizes the selection covers: no larger than the M and N blocks of AITER's GEMM kernels
#: (16..256 rows, 128..256 columns), so touching each of these tiles touches each kernel tile.
M_TILE = 32
N_TILE = 128
#: Budget per sampled call: beyond ``MAX_ROWS / M_TILE`` row tiles (``MAX_COLUMNS / N_TILE`` column
#: tiles) a rotating subset of tiles is compared, the last tile always.
MAX_ROWS = 128
MAX_COLUMNS = 1024


@dataclass(frozen=True)
class Selection:
    """Indices of ``0..total-1``: a strided slice, plus the last index when the slice misses it."""

    strided: slice
    total: int
    last: bool = False

    @classmethod
    def everything(cls, total: int) -> Selection:
        return cls(slice(0, total, 1), total)

    @property
    def parts(self) -> tuple[slice, ...]:
        if self.last:
            return self.strided, slice(self.total - 1, self.total)
        return (self.strided,)

    def indices(self) -> list[int]:
        """The selected indices, in the order ``take`` returns them (host side: for reports and tests)."""
        chosen = list(range(self.total))[self.strided]
        return chosen + [self.total - 1] if self.last else chosen

    def __len__(self) -> int:
        return len(range(self.total)[self.strided]) + int(self.last)

    def take(self, tensor: torch.Tensor, dim: int = 0) -> torch.Tensor:
        """The selected entries of ``tensor`` along ``dim`` (slices and one ``cat``; no index tensor)."""
        index: list[Any] = [slice(None)] * (dim % tensor.dim())
        pieces = [tensor[(*index, part)] for part in self.parts]
        return pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=dim)


def pick(tensor: torch.Tensor, selected: Selection | slice, dim: int = 0) -> torch.Tensor:
    """``tensor`` restricted to ``selected`` along ``dim`` (a plain slice or a :class:`Selection`)."""
    if isinstance(selected, Selection):
        return selected.take(tensor, dim)
    index: list[Any] = [slice(None)] * (dim % tensor.dim())
    return tensor[(*index, selected)]


def _cover(units: int, per_tile: int, minimum: int, budget: int, draw: float, turn: int, full: bool) -> Selection:
    """At least one unit in every tile of ``per_tile`` units (or a rotating share of tiles), the last unit always."""
    if units <= 0:
        return Selection(slice(0, 0, 1), 0)
    if full:
        return Selection.everything(units)
    per_tile = max(1, per_tile)
    tiles = -(-units // per_tile)
    if tiles <= budget:
        # every tile: a stride no longer than a tile, short enough for ``minimum`` units
        step = max(1, min(per_tile, units // max(1, minimum)))
        start = min(int(draw * step), step - 1)
    else:
        # a strided share of tiles, rotating with ``turn``; the position inside the tile from ``draw``
        tile_step = -(-tiles // max(1, budget - 1))
        step = tile_step * per_tile
        start = (turn % tile_step) * per_tile + min(int(draw * per_tile), per_tile - 1)
        start = min(start, units - 1)
    strided = slice(start, units, step)
    return Selection(strided, units, last=(units - 1 - start) % step != 0)


def select_rows(m: int, full: bool, draw: float, turn: int = 0, minimum: int = 16) -> Selection:
    """Rows of x (and of the output) to compare: every ``M_TILE``-row tile, the last row always."""
    return _cover(m, M_TILE, minimum, MAX_ROWS, draw, turn, full)


@dataclass(frozen=True)
class ColumnBlocks:
    """Output columns as ``blocks`` (a :class:`Selection`) of ``size``-row blocks of W."""

    size: int
    blocks: Selection
    total: int  # N

    def columns(self) -> list[int]:
        """The compared output columns, in the order the references produce them."""
        return [block * self.size + offset for block in self.blocks.indices() for offset in range(self.size)]


def select_columns(n: int, full: bool, draw: float, block_rows: int | None, turn: int = 0) -> ColumnBlocks:
    """Output columns to compare: every ``N_TILE``-column tile, the last column always.

    Whole preshuffle blocks (``block_rows``) when W is preshuffled, else 16-column blocks
    when N allows it (single columns otherwise).
    """
    size = block_rows if block_rows else (16 if n % 16 == 0 and n >= 16 else 1)
    count_blocks = n // size
    per_tile = max(1, N_TILE // size)
    blocks = _cover(
        count_blocks, per_tile, max(1, SHADOW_COLUMNS // size), max(1, MAX_COLUMNS // size), draw, turn, full
    )
    return ColumnBlocks(size, blocks, n)


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


def _multipliers(scales: torch.Tensor, layout: str, rows: int, groups: int, selected: Any) -> torch.Tensor | None:
    scales = scale_storage(scales)
    if scales.numel() == 1:
        return scale_values(scales.reshape(1, 1))
    parts = selected.parts if isinstance(selected, Selection) else (selected,)
    reads = [read_scales(scales, layout, rows, groups, part) for part in parts]
    if any(read is None for read in reads):
        return None
    return scale_values(reads[0] if len(reads) == 1 else torch.cat(reads))


def dequantize_x_rows(
    view: GemmView, x_rows: torch.Tensor, x_scale: torch.Tensor | None, selected: Selection | slice
) -> torch.Tensor | None:
    """Dequantized selected rows of x (all of K), read the way the kernel reads them."""
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
        return values * scale_values(pick(flat, selected)).reshape(-1, 1)
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
    blocks = columns.blocks.take(w.reshape(*w.shape[:-2], n // columns.size, columns.size, width), -3)
    layout = view.shuffle_layout
    if layout is not None and columns.size == layout[0]:
        blocks = unshuffle_weight(blocks.reshape(-1, layout[0], width), layout).reshape(blocks.shape)
    return blocks.reshape(*w.shape[:-2], -1, width)


def _column_index_rows(scales: torch.Tensor, columns: ColumnBlocks, repeat: int) -> torch.Tensor:
    """Per-output-channel rows of a per-channel (repeat=1) or per-block (repeat=128) scale tensor."""
    expanded = scales.repeat_interleave(repeat, dim=0)[: columns.total] if repeat > 1 else scales[: columns.total]
    blocks = expanded.reshape(columns.total // columns.size, columns.size, *expanded.shape[1:])
    return columns.blocks.take(blocks, 0).reshape(-1, *expanded.shape[1:])


def dequantize_w_columns(view: GemmView, columns: ColumnBlocks) -> torch.Tensor | None:
    w_rows = _w_rows(view, columns)
    values = unpack_fp4(w_rows) if view.scheme == "mx" else fp8_values(w_rows, view.fp8_read_as)
    if view.w_scale is None:
        return values
    scales = scale_storage(view.w_scale)
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
    blocks = out_rows[..., :n].reshape(*out_rows.shape[:-1], n // columns.size, columns.size)
    return columns.blocks.take(blocks, -2).reshape(*out_rows.shape[:-1], -1)


def _bias_columns(bias: torch.Tensor | None, columns: ColumnBlocks) -> torch.Tensor | None:
    if bias is None:
        return None
    flat = bias.reshape(-1)[: columns.total].to(torch.float32)
    return _column_index_rows(flat, columns, 1)


def matched_reference(
    view: GemmView,
    x_deq: torch.Tensor,
    w_deq: torch.Tensor,
    columns: ColumnBlocks,
    out_dtype: torch.dtype,
    precision: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``x @ w^T`` in ``precision`` (+ bias, x alpha), cast like the kernel casts its output."""
    product = torch.matmul(x_deq.to(precision), w_deq.to(precision).transpose(-1, -2)) * view.alpha
    bias = _bias_columns(view.bias, columns)
    if bias is not None:
        product = product + bias.to(precision)
    return product.to(out_dtype)


def chain_reference(
    x_high: torch.Tensor,
    w_deq: torch.Tensor,
    view: GemmView,
    columns: ColumnBlocks,
    precision: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The unquantized product ``x @ dequant(W)^T`` for the same rows (the whole quant→GEMM chain)."""
    product = torch.matmul(x_high.to(precision), w_deq.to(precision).transpose(-1, -2)) * view.alpha
    bias = _bias_columns(view.bias, columns)
    if bias is not None:
        product = product + bias.to(precision)
    return product
