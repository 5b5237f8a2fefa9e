"""Which scale layout (and e8m0 rounding) a producer really wrote.

Strides do not tell: ``per_group_quant_hip(transpose_scale=True)`` returns a
contiguous (M, G) tensor whose bytes are (G, M), and a Triton fallback that
ignores ``shuffle_scale`` returns the same shape with row-major bytes.  So the
scales a correct producer writes are recomputed from its input
(:func:`~quantguard.numerics.scales.expected_scales`: fp32, or the e8m0 byte
in each of AITER's rounding modes), the buffer is read in every candidate
layout (:func:`~quantguard.numerics.layouts.read_scales`), and the
(layout, encoding) pairs that reproduce every considered group are what was
written.  Groups whose amax is 0 are left out: producers legitimately differ
there.

In two halves, like the checks: :func:`mismatch_counts` only enqueues device
reductions (a runtime check reads them back with the rest of its batch), and
:class:`WrittenLayout` decides on the host values.  :func:`written_layout`
does both, for offline validations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from quantguard.numerics.formats import ElementFormat, scale_storage
from quantguard.numerics.layouts import memory_order, read_scales
from quantguard.numerics.scales import expected_scales, group_amax

__all__ = [
    "SCALE_RTOL",
    "WrittenLayout",
    "count_key",
    "mismatch_counts",
    "read_scale_grid",
    "written_layout",
]

#: Relative difference within which an fp32 scale equals ``amax / max``: a few ulp of the division (or of a
#: reciprocal multiply). A scale from another group, row or layout is off by far more.
SCALE_RTOL = 1e-5


def count_key(layout: str, encoding: str) -> str:
    """The key of one (layout, encoding) mismatch count in :func:`mismatch_counts`' result."""
    return f"{layout}|{encoding}"


def read_scale_grid(
    scales: torch.Tensor, layout: str, rows: int, groups: int, row_index: slice | None = None
) -> torch.Tensor | None:
    """:func:`~quantguard.numerics.layouts.read_scales`, where a one-element buffer is that scale in every layout."""
    if row_index is None and rows * groups == 1 and scales.numel() == 1:
        return scales.reshape(1, 1)
    return read_scales(scales, layout, rows, groups, row_index)


def _e8m0_bytes(scales: torch.Tensor) -> torch.Tensor:
    """The bytes an e8m0 producer wrote, whatever the buffer's dtype (fp4 kernels write bytes into fp32 ``scales`` too)."""
    if scales.element_size() == 1:
        return scale_storage(scales)
    flat = memory_order(scales)
    return scales if flat is None else flat.view(torch.uint8)


def _differs(read: torch.Tensor, want: torch.Tensor, rtol: float) -> torch.Tensor:
    if not want.is_floating_point():  # e8m0 bytes: exact
        return read.to(torch.int64) != want
    return ~((read.to(torch.float32) - want).abs() <= rtol * want.abs())


def mismatch_counts(
    scales: torch.Tensor,
    expected: Mapping[str, torch.Tensor],
    layouts: Sequence[str],
    rows: int,
    groups: int,
    considered: torch.Tensor,
    row_index: slice | None = None,
    rtol: float = SCALE_RTOL,
) -> tuple[list[str], dict[str, torch.Tensor]]:
    """How many considered groups each candidate layout gets wrong, per expected encoding (no host sync).

    ``expected`` maps encodings to the ``(rows, groups)`` scales a correct
    producer writes (of the rows ``row_index`` selects); ``considered`` masks
    the groups that count.  Returns the layouts ``scales`` can be read in (in
    ``layouts``' order, duplicates dropped) and float64 device counts keyed by
    :func:`count_key`.
    """
    e8m0 = any(not want.is_floating_point() for want in expected.values())
    stored = _e8m0_bytes(scales) if e8m0 else scales
    readable: list[str] = []
    counts: dict[str, torch.Tensor] = {}
    for layout in dict.fromkeys(layouts):
        read = read_scale_grid(stored, layout, rows, groups, row_index)
        if read is None or read.shape != considered.shape:
            continue
        readable.append(layout)
        for encoding, want in expected.items():
            counts[count_key(layout, encoding)] = (_differs(read, want, rtol) & considered).sum().to(torch.float64)
    return readable, counts


@dataclass(frozen=True)
class WrittenLayout:
    """The (layout, encoding) pairs that reproduce every compared group, in candidate order."""

    matches: tuple[tuple[str, str], ...]
    compared: int

    @classmethod
    def from_counts(
        cls, values: Mapping[str, Any], layouts: Sequence[str], encodings: Sequence[str], compared: int
    ) -> WrittenLayout:
        """From host values of :func:`mismatch_counts` (a pair with no count never matches)."""
        pairs = tuple(
            (layout, encoding)
            for layout in layouts
            for encoding in encodings
            if values.get(count_key(layout, encoding), 1.0) == 0.0
        )
        return cls(pairs, compared)

    @property
    def layouts(self) -> tuple[str, ...]:
        """Layouts that hold the expected scales in some encoding."""
        return tuple(dict.fromkeys(layout for layout, _ in self.matches))

    def encodings(self, layout: str) -> tuple[str, ...]:
        """Encodings (e8m0 rounding modes, or ``fp32``) in which ``layout`` holds the expected scales."""
        return tuple(encoding for written, encoding in self.matches if written == layout)

    def best(self, declared: str | None = None) -> tuple[str, str] | None:
        """The pair to report: one in the ``declared`` encoding first, then the first candidate layout."""
        if not self.matches:
            return None
        order = list(self.layouts)
        return min(self.matches, key=lambda pair: (pair[1] != declared, order.index(pair[0])))


def written_layout(
    x: torch.Tensor,
    scales: torch.Tensor,
    group: int | None,
    encoding: str,
    element: ElementFormat,
    layouts: Sequence[str],
    zero_rule: str = "clamp",
) -> WrittenLayout:
    """Which of ``layouts`` the scales of a dynamic quantization of ``(rows, K)`` ``x`` were written in.

    ``group`` follows :func:`~quantguard.numerics.scales.group_amax`
    (``None`` per row, ``0`` per tensor); ``encoding`` is ``fp32`` or
    ``e8m0``.  Reads device values back: for validations, not the hot path.
    """
    amax = group_amax(x, group)
    rows, groups = amax.shape
    expected = expected_scales(amax, encoding, element, zero_rule)
    considered = amax > 0
    readable, counts = mismatch_counts(scales, expected, layouts, rows, groups, considered)
    values = {key: float(count) for key, count in counts.items()}
    return WrittenLayout.from_counts(values, readable, list(expected), int(considered.sum()))
