"""A GEMM's sampled snapshot inside a CUDA graph: its layout, the gated copy, and the reference on the host.

A captured call cannot be checked when it runs: a replay runs no Python.  So
at capture, one gated kernel is recorded after the GEMM
(:func:`~quantguard.shadow.triton_kernels.graph_snapshot`): on one replay in
``period`` it copies R rows of x (raw bytes) and their scale groups, C rows of
W (C output channels, raw bytes, a whole preshuffle block when W is
preshuffled) and their scale groups, and the R x C outputs, into a slot of a
buffer quantguard owns; on the other replays it only counts.  After replays
the slot is copied to pinned host memory and :func:`slot_values` computes the
precision-matched reference of those R x C outputs on the CPU and the same
statistics vector the eager check produces.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import torch

from quantguard.contracts.views import GemmView
from quantguard.numerics.dequant import expand_groups, fp8_values, scale_values, unpack_fp4
from quantguard.numerics.formats import raw_bits
from quantguard.numerics.layouts import unshuffle_weight
from quantguard.numerics.metrics import batched_statistics
from quantguard.shadow.operands import GemmOperands, describe, scale_args

__all__ = [
    "SnapshotLayout",
    "plan_snapshot",
    "launch_snapshot",
    "slot_values",
    "batch_key",
    "snapshots_values",
    "memory_span",
    "SNAPSHOT_ROWS",
    "SNAPSHOT_COLUMNS",
    "META_WORDS",
]

#: Rows of x and output columns per snapshot (a whole 16-row preshuffle block of W).
SNAPSHOT_ROWS = 4
SNAPSHOT_COLUMNS = 16
META_WORDS = 8  # sequence, hit, first column, rows (up to SNAPSHOT_ROWS), padding
_ALIGN = 64


def _aligned(size: int) -> int:
    return -(-size // _ALIGN) * _ALIGN


@dataclass(frozen=True)
class SnapshotLayout:
    """Where each part of one snapshot lives in its slot (byte offsets), and how to decode it."""

    rows: int
    columns: int
    operands: GemmOperands
    x_bits: torch.dtype
    xs_bits: torch.dtype | None
    w_bits: torch.dtype
    ws_bits: torch.dtype | None
    offsets: dict[str, int]
    size: int

    @functools.cached_property
    def parts(self) -> dict[str, tuple[int, int, torch.dtype, tuple[int, ...]]]:
        """Per part: byte offset, byte width, element dtype, shape (computed once per layout)."""
        o = self.operands
        shapes = {
            "counter": (1,),
            "meta": (META_WORDS,),
            "x": (self.rows, o.x.width),
            "xs": (self.rows, o.x_scale.groups if o.x_scale else 0),
            "w": (self.columns, o.w.width),
            "ws": (self.columns, o.w_scale.groups if o.w_scale else 0),
            "out": (self.rows, self.columns),
        }
        dtypes = {
            "counter": torch.int64,
            "meta": torch.int64,
            "x": self.x_bits,
            "xs": self.xs_bits or torch.uint8,
            "w": self.w_bits,
            "ws": self.ws_bits or torch.uint8,
            "out": raw_bits(o.out).dtype,
        }
        parts = {}
        for part, shape in shapes.items():
            count = 1
            for extent in shape:
                count *= extent
            width = count * dtypes[part].itemsize
            parts[part] = (self.offsets[part], width, dtypes[part], shape)
        return parts

    def view(self, slot: torch.Tensor, part: str) -> torch.Tensor:
        """One part of a slot (a uint8 tensor of ``size`` bytes) as the elements the kernel copies."""
        start, width, dtype, shape = self.parts[part]
        if slot.dim() == 2:  # a batch of slots, one per row
            return slot[:, start : start + width].view(dtype).reshape(slot.shape[0], *shape)
        return slot[start : start + width].view(dtype).view(shape)

    def flat(self, slot: torch.Tensor, part: str) -> torch.Tensor:
        """One part of one slot as a flat tensor (all a kernel needs: its address and element type)."""
        start, width, dtype, _ = self.parts[part]
        return slot[start : start + width].view(dtype)

    @property
    def key(self) -> tuple[Any, ...]:
        """The layout's part of :func:`batch_key` (what snapshots must share to be judged in one batch)."""
        o = self.operands

        def scale(operand: Any) -> Any:
            return None if operand is None else (operand.tensor.dtype, operand.group, operand.groups, operand.kind)

        return (
            self.rows,
            self.columns,
            self.size,
            tuple(self.offsets.items()),
            o.x.tensor.dtype,
            o.x.kind,
            o.x.width,
            o.w.tensor.dtype,
            o.w.kind,
            o.w.width,
            scale(o.x_scale),
            scale(o.w_scale),
            o.out.dtype,
        )


def plan_snapshot(view: GemmView, out: torch.Tensor) -> SnapshotLayout | str:
    """The slot layout for a captured GEMM, or why it cannot be snapshotted."""
    if view.bias is not None:
        return "GEMMs with a bias are not snapshotted"
    operands = describe(view, out, allow_preshuffled=True)
    if isinstance(operands, str):
        return operands
    layout = view.shuffle_layout
    n = view.n
    columns = min(SNAPSHOT_COLUMNS, n)
    if layout is not None and (columns != layout[0] or n % layout[0]):
        return f"preshuffle blocks of {layout[0]} rows do not fit a {columns}-column snapshot"
    rows = max(1, min(SNAPSHOT_ROWS, int(operands.x.tensor.shape[0])))
    parts = {
        "counter": 8,
        "meta": 8 * META_WORDS,
        "x": rows * operands.x.width * operands.x.tensor.element_size(),
        "xs": rows * operands.x_scale.groups * operands.x_scale.tensor.element_size() if operands.x_scale else 0,
        "w": columns * operands.w.width * operands.w.tensor.element_size(),
        "ws": columns * operands.w_scale.groups * operands.w_scale.tensor.element_size() if operands.w_scale else 0,
        "out": rows * columns * operands.out.element_size(),
    }
    offsets, size = {}, 0
    for name, length in parts.items():
        offsets[name] = size
        size += _aligned(length)
    return SnapshotLayout(
        rows,
        columns,
        operands,
        raw_bits(operands.x.tensor).dtype,
        raw_bits(operands.x_scale.tensor).dtype if operands.x_scale else None,
        raw_bits(operands.w.tensor).dtype,
        raw_bits(operands.w_scale.tensor).dtype if operands.w_scale else None,
        offsets,
        size,
    )


@functools.lru_cache(maxsize=4096)
def _block_step(blocks: int) -> int:
    """A step coprime with ``blocks`` near its golden section: successive hits visit every block, spread out."""
    import math

    step = max(1, int(blocks * 0.618))
    while math.gcd(step, blocks) != 1:
        step += 1
    return step


def launch_snapshot(
    layout: SnapshotLayout, slot: torch.Tensor, period: int, phase: int, counter: torch.Tensor | None = None
) -> None:
    """Enqueue the gated snapshot kernel on the current stream (recorded into the graph under capture).

    ``counter``: an int64 device counter to use instead of the slot's own
    (eager samples share one per call site, so their rows and columns keep
    moving while their slots are reused).
    """
    from quantguard.shadow.triton_kernels import snapshot_kernel

    o = layout.operands
    x_bits = raw_bits(o.x.tensor)
    w_bits = raw_bits(o.w.tensor)
    xs, xs_row, xs_group = scale_args(o.x_scale, x_bits)
    ws, ws_row, ws_group = scale_args(o.w_scale, w_bits)
    n = min(int(o.out.shape[1]), int(o.w.tensor.shape[0]))  # the output may be padded past N
    blocks = max(1, n // layout.columns)
    flat = layout.flat
    snapshot_kernel()[(1,)](
        flat(slot, "counter") if counter is None else counter,
        flat(slot, "meta"),
        period,
        phase,
        int(o.x.tensor.shape[0]),
        n,
        _block_step(blocks),
        blocks,
        x_bits,
        o.x.row_stride,
        o.x.element_stride,
        o.x.width,
        raw_bits(xs) if o.x_scale else x_bits,
        xs_row,
        xs_group,
        o.x_scale.groups if o.x_scale else 0,
        w_bits,
        o.w.row_stride,
        o.w.element_stride,
        o.w.width,
        raw_bits(ws) if o.w_scale else w_bits,
        ws_row,
        ws_group,
        o.w_scale.groups if o.w_scale else 0,
        o.w_scale.row_div if o.w_scale else 1,
        raw_bits(o.out),
        o.out.stride(0),
        o.out.stride(1),
        flat(slot, "x"),
        flat(slot, "xs"),
        flat(slot, "w"),
        flat(slot, "ws"),
        flat(slot, "out"),
        R=layout.rows,
        C=layout.columns,
        HAS_XS=o.x_scale is not None,
        HAS_WS=o.w_scale is not None,
        BLOCK=1024,
        BLOCK_C=max(16, 1 << (layout.columns - 1).bit_length()),
    )


_FP8_TABLES: dict[Any, torch.Tensor] = {}


def _values(raw: torch.Tensor, dtype: torch.dtype, kind: int, read_as: Any) -> torch.Tensor:
    if kind == 3:
        return unpack_fp4(raw)
    if kind in (1, 2):
        # every byte's value, looked up: ~2.5x faster than a CPU fp8 cast, and the same values (fp8_values)
        read_as = read_as or {1: torch.float8_e4m3fn, 2: torch.float8_e4m3fnuz}[kind]
        table = _FP8_TABLES.get(read_as)
        if table is None:
            table = _FP8_TABLES[read_as] = fp8_values(torch.arange(256, dtype=torch.uint8), read_as)
        return torch.take(table, raw.view(torch.uint8).to(torch.int64))
    return raw.view(dtype).to(torch.float32)


def _scaled(values: torch.Tensor, raw: torch.Tensor | None, dtype: torch.dtype | None, group: int) -> torch.Tensor:
    if raw is None:
        return values
    scales = scale_values(raw.view(torch.uint8) if dtype == torch.uint8 else raw.view(dtype))
    return values * expand_groups(scales, group, values.shape[-1])


def memory_span(tensor: torch.Tensor) -> torch.Tensor:
    """The memory a strided tensor spans, from its first element, as a 1-D raw-bit view (same storage)."""
    bits = raw_bits(tensor)
    span = 1 + sum((size - 1) * stride for size, stride in zip(bits.shape, bits.stride()) if size > 0)
    return torch.as_strided(bits, (span,), (1,), bits.storage_offset())


def _truth_groups(layout: SnapshotLayout, truth: torch.Tensor, columns: list[int]) -> torch.Tensor:
    """The weight-scale groups of ``columns`` read from ``truth`` (a capture-time copy of their memory)."""
    scale = layout.operands.w_scale
    assert scale is not None
    rows = torch.tensor([column // scale.row_div for column in columns], dtype=torch.int64)
    groups = torch.arange(scale.groups, dtype=torch.int64)
    index = rows[:, None] * scale.row_stride + groups[None, :] * scale.group_stride
    return truth[index]


def batch_key(layout: SnapshotLayout, view: GemmView) -> tuple[Any, ...]:
    """What snapshots must share to be decoded and compared in one :func:`snapshots_values` call."""
    return (layout.key, view.fp8_read_as, view.shuffle_layout, view.alpha)


def slot_values(
    layout: SnapshotLayout, view: GemmView, slot: torch.Tensor, truth_w_scale: torch.Tensor | None = None
) -> dict[str, Any]:
    """One slot's meta and statistics (see :func:`snapshots_values`)."""
    return snapshots_values(layout, view, slot.unsqueeze(0), [truth_w_scale])[0]


def snapshots_values(
    layout: SnapshotLayout, view: GemmView, slots: torch.Tensor, truths: list[torch.Tensor | None]
) -> list[dict[str, Any]]:
    """From host copies of P filled slots of one layout (``(P, size)``): each one's meta and the statistics
    of its outputs against the precision-matched reference, computed for all P at once.

    ``truths``: per slot, the weight scales' memory as it was at capture.
    Weights do not change while a graph replays; where a snapshot's scale
    groups differ from it, the reference uses the capture-time scales (the
    kernel's output is judged against what the model was captured with) and
    the count of changed groups is returned.
    """
    o = layout.operands
    batch = slots.shape[0]
    meta = layout.view(slots, "meta").tolist()
    x = _values(layout.view(slots, "x"), o.x.tensor.dtype, o.x.kind, view.fp8_read_as)
    x = _scaled(
        x,
        layout.view(slots, "xs") if o.x_scale else None,
        o.x_scale.tensor.dtype if o.x_scale else None,
        o.x_scale.group if o.x_scale else 1,
    )
    w_raw = layout.view(slots, "w")
    shuffle = view.shuffle_layout
    if shuffle is not None:
        w_raw = unshuffle_weight(w_raw.view(o.w.tensor.dtype), shuffle).view(w_raw.dtype)
    w = _values(w_raw, o.w.tensor.dtype, o.w.kind, view.fp8_read_as)
    columns = [list(range(row[2], row[2] + layout.columns)) for row in meta]
    w_scale_raw = layout.view(slots, "ws") if o.w_scale else None
    changed = [0] * batch
    if w_scale_raw is not None and any(truth is not None for truth in truths):
        w_scale_raw = w_scale_raw.clone()
        for index, truth in enumerate(truths):
            if truth is not None:
                groups = _truth_groups(layout, truth, columns[index])
                changed[index] = int((groups != w_scale_raw[index]).sum())
                w_scale_raw[index] = groups
    w = _scaled(w, w_scale_raw, o.w_scale.tensor.dtype if o.w_scale else None, o.w_scale.group if o.w_scale else 1)
    out_dtype = o.out.dtype
    reference = (torch.matmul(x, w.transpose(-1, -2)) * view.alpha).to(out_dtype)
    compared = layout.view(slots, "out").view(out_dtype)
    statistics = batched_statistics(compared, reference).tolist()
    compared_groups = int(w_scale_raw[0].numel()) if w_scale_raw is not None else 0
    return [
        {
            "sequence": meta[i][0],
            "hit": meta[i][1],
            "rows": meta[i][3 : 3 + layout.rows],
            "columns": columns[i],
            "values": {"m_stats": statistics[i][:14], "m_slices": statistics[i][14:]},
            "w_scale_groups_changed": changed[i],
            "w_scale_groups_compared": compared_groups,
        }
        for i in range(batch)
    ]
