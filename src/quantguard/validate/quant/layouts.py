"""Which layout (and e8m0 rounding) did a quant call really write, and is it what the GEMM reads?

Strides do not tell: ``per_group_quant_hip(transpose_scale=True)`` returns a
contiguous (M, G) tensor whose bytes are (G, M). So the scales a correct
producer writes are recomputed from the input (group amax over the format
maximum; for e8m0 in each of AITER's four rounding modes) and the buffer is
read in every candidate layout; the layouts that reproduce them are what the
producer wrote (:mod:`quantguard.numerics.written_layout`, the same comparison
the runtime ``kwarg_honored`` check makes). The verdict compares them with the
layout the chain's GEMM reads, and the rounding with the mode AITER declares
for the producer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from quantguard.numerics.formats import MODE_NAMES
from quantguard.numerics.layouts import describe_layout
from quantguard.numerics.written_layout import written_layout
from quantguard.validate.quant.chains import Quantized

__all__ = ["LayoutVerdict", "analyse_layout"]

_CANDIDATES = ("logical", "row_major", "transposed", "mx_swizzle")
_NAMES = {"scalar": "one per-tensor scalar", "none": "no scales", "per_token": "per-token (M, 1)"}


@dataclass(frozen=True)
class LayoutVerdict:
    """``written``: layouts that reproduce the scales; ``rounding``: e8m0 modes that do (in the read layout)."""

    expected: str
    written: tuple[str, ...]
    rounding: tuple[str, ...] = ()
    declared_rounding: str | None = None
    compared_groups: int = 0

    @property
    def ok(self) -> bool:
        if self.expected == "none" or self.compared_groups == 0:
            return True
        if self.expected not in self.written:
            return False
        return self.declared_rounding is None or self.declared_rounding in self.rounding

    @property
    def summary(self) -> str:
        if self.expected == "none":
            return _NAMES[self.expected]
        if self.compared_groups == 0:
            return "not checked (no nonzero groups)"
        if not self.written:
            return "scales match no known layout or rounding"
        if self.expected not in self.written:
            shown = next(
                layout
                for layout in ("row_major", "transposed", "mx_swizzle", "logical", "per_token")
                if layout in self.written
            )
            return f"written {_describe(shown)}; GEMM reads {_describe(self.expected)}"
        text = _describe(self.expected)
        if self.declared_rounding is not None:
            observed = ", ".join(MODE_NAMES[mode] for mode in self.rounding)
            if self.declared_rounding in self.rounding:
                text += f", e8m0 {MODE_NAMES[self.declared_rounding]}"
            else:
                text += f"; e8m0 rounding {observed or 'unknown'}, declared {MODE_NAMES[self.declared_rounding]}"
        if self.expected != "per_token" and {"row_major", "transposed"} <= set(self.written):
            text += " (one row or one group: row- and column-major coincide)"
        return text


def _describe(layout: str) -> str:
    return _NAMES.get(layout) or describe_layout(layout)


def analyse_layout(q: Quantized, x: torch.Tensor, expected: str) -> LayoutVerdict:
    """Recompute the scales from the quant call's input ``x`` and find the layouts that hold them."""
    if q.encoding == "none":
        return LayoutVerdict("none", ())
    if q.group == 0:
        scalar = written_layout(x, q.scales, 0, "fp32", q.element, ("row_major",))
        return LayoutVerdict("scalar", ("scalar",) if scalar.matches else (), compared_groups=scalar.compared)
    declared = q.rounding if q.encoding == "e8m0" else None
    x = x.reshape(x.shape[0], -1)
    if q.group is None:  # per token: an (M, 1) scale has one layout, read through its strides
        result = written_layout(x, q.scales, None, q.encoding, q.element, ("logical",))
        modes = result.encodings("logical") if q.encoding == "e8m0" else ()
        return LayoutVerdict("per_token", ("per_token",) if result.matches else (), modes, declared, result.compared)
    candidates = tuple(layout for layout in _CANDIDATES if layout != "mx_swizzle" or q.encoding == "e8m0")
    result = written_layout(x, q.scales, q.group, q.encoding, q.element, candidates)
    read_as = expected if expected in result.layouts else (result.layouts[0] if result.layouts else expected)
    modes = result.encodings(read_as) if q.encoding == "e8m0" else ()
    return LayoutVerdict(expected, result.layouts, modes, declared, result.compared)
