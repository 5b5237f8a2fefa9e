"""The sampled precision-matched reference in two kernel launches (Triton), statistics included.

The torch reference (:mod:`quantguard.shadow.references`) gathers rows,
dequantizes column blocks, multiplies and reduces in ~60 small launches; on
a GPU each costs 5-9 us of host time, which is what made a sampled call cost
~1 ms.  Here one kernel reads the sampled rows of x and output columns of W
straight from their quantized bytes and scales, forms the reference, rounds
it to the output dtype and reduces the comparison statistics; a second pools
the partials into exactly the vector :func:`~quantguard.numerics.metrics.comparison_tensors`
and :func:`~quantguard.numerics.metrics.slice_tensors` produce, so the
verdicts are the same code.  Rows and columns are the same selections
(:class:`~quantguard.shadow.references.Selection`), passed as a few integers:
no index tensor, no host copy.
"""

from __future__ import annotations

from typing import Any

import torch

from quantguard.contracts.views import GemmView
from quantguard.shadow.operands import GemmOperands, describe, scale_args
from quantguard.shadow.references import ColumnBlocks, Selection
from quantguard.shadow.triton_kernels import available, gemm_stats_kernels

__all__ = ["fused_operands", "fused_stats", "split_stats"]

_BLOCK_C = 64
_BLOCK_K = 64


def fused_operands(view: GemmView, out: torch.Tensor, precision: torch.dtype) -> GemmOperands | str:
    """The operands as the fused reference addresses them, or why it cannot serve this call."""
    if precision != torch.float32:
        return "fp64 references use torch"
    if not available(out.device):
        return "Triton kernels are not available on this device"
    return describe(view, out)


def _selection_args(selection: Selection) -> tuple[int, int, int]:
    """``(start, step, count of the strided part)``; the optional last index is implied by the total."""
    strided = selection.strided
    count = len(range(selection.total)[strided])
    return strided.start or 0, strided.step or 1, count


def fused_stats(
    view: GemmView, out: torch.Tensor, rows: Selection, columns: ColumnBlocks, operands: GemmOperands | None = None
) -> torch.Tensor | None:
    """Statistics of ``out`` against the precision-matched reference on the selection, on ``out``'s device.

    Returns the 18-value float64 vector (``comparison_tensors`` then ``slice_tensors``
    order), or ``None`` when the view cannot be described.  Enqueued on the
    current stream: call it where the operands are still intact.
    """
    described = describe(view, out) if operands is None else operands
    if isinstance(described, str):
        return None
    operands = described
    rows_total, cols_total = len(rows), len(columns.blocks) * columns.size
    if rows_total == 0 or cols_total == 0:
        return None
    block_r = 16 if rows_total <= 16 else 32
    row_programs = -(-rows_total // block_r)
    col_programs = -(-cols_total // _BLOCK_C)
    programs = row_programs * col_programs
    device = out.device
    # one allocation: partials, per-row and per-column partials, then the result
    sizes = (programs * 12, col_programs * 2 * rows_total, row_programs * 2 * cols_total, 18)
    buffer = torch.empty(sum(sizes), dtype=torch.float64, device=device)
    parts, row_parts, col_parts, result = torch.split(buffer, sizes)
    stats, reduce = gemm_stats_kernels()
    x, w = operands.x, operands.w
    xs, xs_row, xs_group = scale_args(operands.x_scale, x.tensor)
    ws, ws_row, ws_group = scale_args(operands.w_scale, w.tensor)
    bias = view.bias
    has_bias = isinstance(bias, torch.Tensor)
    r_start, r_step, r_count = _selection_args(rows)
    cb_start, cb_step, cb_count = _selection_args(columns.blocks)
    stats[(row_programs, col_programs)](
        x.tensor,
        x.row_stride,
        x.element_stride,
        xs,
        xs_row,
        xs_group,
        operands.x_scale.group if operands.x_scale else 1,
        w.tensor,
        w.row_stride,
        w.element_stride,
        ws,
        ws_row,
        ws_group,
        operands.w_scale.group if operands.w_scale else 1,
        operands.w_scale.row_div if operands.w_scale else 1,
        operands.out,
        operands.out.stride(0),
        operands.out.stride(1),
        bias.reshape(-1) if has_bias else out,
        float(view.alpha),
        parts,
        row_parts,
        col_parts,
        int(x.tensor.shape[0]),
        operands.k,
        rows_total,
        cols_total,
        r_start,
        r_step,
        r_count,
        columns.size,
        cb_start,
        cb_step,
        cb_count,
        columns.blocks.total,
        X_KIND=x.kind,
        W_KIND=w.kind,
        XS_KIND=operands.x_scale.kind if operands.x_scale else 0,
        WS_KIND=operands.w_scale.kind if operands.w_scale else 0,
        OUT_KIND=operands.out_kind,
        HAS_BIAS=has_bias,
        BLOCK_R=block_r,
        BLOCK_C=_BLOCK_C,
        BLOCK_K=_BLOCK_K,
    )
    reduce[(1,)](
        parts,
        row_parts,
        col_parts,
        result,
        programs,
        row_programs,
        col_programs,
        rows_total,
        cols_total,
        BLOCK_P=32,
        BLOCK=128,
    )
    return result


def split_stats(result: Any, prefix: str = "m_") -> dict[str, Any]:
    """The vector as the measurement entries the torch path produces."""
    return {prefix + "stats": result[:14], prefix + "slices": result[14:18]}
