"""Expected scales: what a correct dynamic producer writes for a given input.

A dynamic scale is the group's amax over the element format's maximum: in
fp32 (``max(amax, 1e-10) / max``, as AITER's kernels floor it), or as the
e8m0 byte of one of AITER's rounding modes (:func:`~quantguard.numerics.formats.e8m0_encode`).
Checks and validations recompute these from the producer's input and look
for them in the scale buffer it wrote; which layout holds them is
:mod:`quantguard.numerics.written_layout`'s question.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from quantguard.numerics.formats import ROUNDING_MODES, ElementFormat, e8m0_encode, e8m0_format

__all__ = ["AMAX_FLOOR", "block_amax", "group_amax", "fp32_scales", "expected_scales"]

#: AITER's producers divide ``max(amax, AMAX_FLOOR)``: an all-zero group still gets a non-zero scale.
AMAX_FLOOR = 1e-10


def block_amax(values: torch.Tensor, block_rows: int, block_cols: int) -> torch.Tensor:
    """``(ceil(R/block_rows), ceil(C/block_cols))`` max ``|value|`` of each block of a 2-D tensor.

    Partial blocks at the bottom and right edges are padded with zeros (the
    kernels' masked loads).  Kept in ``values``' dtype: callers that compare
    bytes reduce bytes, without a float copy of a whole weight.
    """
    magnitude = values if values.dtype == torch.uint8 else values.abs()
    rows, cols = magnitude.shape
    pad_rows, pad_cols = -rows % block_rows, -cols % block_cols
    if pad_rows or pad_cols:
        magnitude = F.pad(magnitude, (0, pad_cols, 0, pad_rows))
    blocks = magnitude.reshape(magnitude.shape[0] // block_rows, block_rows, -1, block_cols)
    return blocks.amax(dim=(1, 3))


def group_amax(x: torch.Tensor, group: int | None) -> torch.Tensor:
    """Float32 amax of ``(rows, K)`` ``x`` per scale: ``(rows, G)`` groups of ``group`` elements along K.

    ``group=None``: one per row ``(rows, 1)``; ``group=0``: one for the whole tensor ``(1, 1)``
    (the group conventions of :class:`~quantguard.contracts.views.QuantView`).
    """
    x = x.to(torch.float32)
    if group == 0:
        return x.abs().amax().reshape(1, 1)
    return block_amax(x, 1, x.shape[-1] if group is None else group)


def fp32_scales(amax: torch.Tensor, maximum: float, zero_rule: str = "clamp") -> torch.Tensor:
    """fp32 scales of groups with this ``amax``: ``max(amax, 1e-10) / maximum``.

    ``zero_rule="one"``: producers that write 1.0 for an all-zero group (the
    torch references) instead of flooring the amax.
    """
    if zero_rule == "one":
        return torch.where(amax == 0, torch.ones_like(amax), amax / maximum)
    return torch.clamp(amax, min=AMAX_FLOOR) / maximum


def expected_scales(
    amax: torch.Tensor, encoding: str, element: ElementFormat, zero_rule: str = "clamp"
) -> dict[str, torch.Tensor]:
    """What a correct producer writes for groups with this ``amax``, by encoding name.

    ``encoding="e8m0"``: the int64 byte in each of AITER's rounding modes
    (``up``, ``down``, ``even``, ``ceil``: which one a producer used is part of
    the verdict); otherwise ``{"fp32": ...}``.
    """
    if encoding == "e8m0":
        constants = e8m0_format(element)
        return {mode: e8m0_encode(amax, mode, constants) for mode in ROUNDING_MODES}
    return {"fp32": fp32_scales(amax, element.max, zero_rule)}
