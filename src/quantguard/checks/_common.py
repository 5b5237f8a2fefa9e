"""Helpers shared by data checks: which rows to read, and small tensor utilities."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from quantguard.numerics.formats import scale_storage
from quantguard.numerics.layouts import read_scales

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.calls import CallRecord

__all__ = ["sample_rows", "row_mask", "is_tensor", "dtype_name", "output_tensors", "meaningful_scales"]


def is_tensor(value: Any) -> bool:
    return isinstance(value, torch.Tensor)


def dtype_name(dtype: Any) -> str:
    return str(dtype).replace("torch.", "")


def sample_rows(call: CallRecord, rows: int) -> slice:
    """Rows compared for this call: evenly spread from a random start, at most ``shadow_rows``.

    A slice (not an index tensor) so selecting rows needs no host-to-device
    copy; the random start varies which rows are read from call to call.
    """
    cached = call.scratch.get("rows")
    if cached is not None and cached[0] == rows:
        return cached[1]
    config = call.config
    count = rows if config.shadow_full else min(rows, config.shadow_rows)
    step = max(1, rows // max(count, 1))
    start = int(call.runtime.sampler.draw() * step) if step > 1 else 0
    selected = slice(start, start + step * count, step)
    call.scratch["rows"] = (rows, selected)
    return selected


def row_mask(selected: slice, rows: int, valid_rows: Any, device: Any) -> torch.Tensor | None:
    """Device mask of the selected rows that are below ``valid_rows`` (a count tensor or int), or None."""
    if valid_rows is None:
        return None
    ids = torch.arange(rows, device=device)[selected]
    if is_tensor(valid_rows):
        limit = valid_rows.reshape(-1)[:1].to(device=device, dtype=ids.dtype)
    else:
        limit = ids.new_full((1,), int(valid_rows))  # a fill, not a host-to-device copy
    return ids < limit


def output_tensors(result: Any) -> list[torch.Tensor]:
    if is_tensor(result):
        return [result]
    if isinstance(result, (tuple, list)):
        return [value for value in result if is_tensor(value)]
    return []


def meaningful_scales(scales: torch.Tensor, layout: str, rows: int, groups: int) -> torch.Tensor:
    """The scale entries a kernel reads: the valid ``rows x groups`` of a padded MX-swizzled buffer.

    The padding of a swizzled buffer is left uninitialized by AITER, so its
    bytes (NaN codes included) mean nothing.
    """
    if layout != "mx_swizzle":
        return scales
    valid = read_scales(scale_storage(scales), "mx_swizzle", rows, groups)
    return scales if valid is None else valid.view(scales.dtype)
