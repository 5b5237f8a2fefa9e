"""Which layout (and e8m0 rounding) did a quant call really write, and is it what the GEMM reads?

Strides do not tell: ``per_group_quant_hip(transpose_scale=True)`` returns a
contiguous (M, G) tensor whose bytes are (G, M). So the scales a correct
producer writes are recomputed from the input (group amax over the format
maximum; for e8m0 in each of AITER's four rounding modes) and the buffer is
read in every candidate layout; the layouts that reproduce them are what the
producer wrote. The verdict compares them with the layout the chain's GEMM
reads, and the rounding with the mode AITER declares for the producer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from quantguard.checks.kwarg_honored import expected_fp32_scales, group_amax
from quantguard.numerics.formats import MODE_NAMES, ROUNDING_MODES, e8m0_encode
from quantguard.numerics.layouts import describe_layout, read_scales
from quantguard.validate.quant.chains import Quantized

__all__ = ["LayoutVerdict", "analyse_layout"]

_CANDIDATES = ("logical", "row_major", "transposed", "mx_swizzle")
_RELATIVE_TOLERANCE = 1e-5
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
        want = expected_fp32_scales(x.float().abs().amax().reshape(1, 1), q.element.max, "clamp")
        have = q.scales.reshape(-1)[:1].float().reshape(1, 1)
        same = bool(((have - want).abs() <= _RELATIVE_TOLERANCE * want.abs()).all())
        return LayoutVerdict("scalar", ("scalar",) if same else (), compared_groups=1)
    rows = x.shape[0]
    amax = group_amax(x.reshape(rows, -1), q.group)
    if q.group is None:  # per token: an (M, 1) scale has one layout
        expected = "per_token"
    groups = amax.shape[1]
    considered = amax > 0
    compared = int(considered.sum())
    if q.encoding == "e8m0":
        source = q.scales.view(torch.uint8)
        wanted = {mode: e8m0_encode(amax, mode, q.element) for mode in ROUNDING_MODES}
    else:
        source = q.scales
        wanted = {"fp32": expected_fp32_scales(amax, q.element.max, "clamp")}
    written, rounding = [], {}
    for layout in ("logical",) if expected == "per_token" else _CANDIDATES:
        if layout == "mx_swizzle" and q.encoding != "e8m0":
            continue
        read = read_scales(source, layout, rows, groups)
        if read is None or read.shape != amax.shape:
            continue
        name = expected if expected == "per_token" else layout
        for mode, want in wanted.items():
            if q.encoding == "e8m0":
                differs = read.to(torch.int64) != want
            else:
                have = read.float()
                differs = ~((have - want).abs() <= _RELATIVE_TOLERANCE * want.abs())
            if not bool((differs & considered).any()):
                if name not in written:
                    written.append(name)
                rounding.setdefault(name, []).append(mode)
    read_as = expected if expected in written else (written[0] if written else expected)
    modes = tuple(rounding.get(read_as, ())) if q.encoding == "e8m0" else ()
    return LayoutVerdict(expected, tuple(written), modes, q.rounding if q.encoding == "e8m0" else None, compared)
