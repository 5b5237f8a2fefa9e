"""Scale values a GEMM is about to use (``scale_values``), every row and K group, on sampled calls.

"Nonzero" is not "correct", but all-zero, negative, NaN and Inf scales are
never correct: an e8m0 scale tensor ``copy_``-ed into a uint8 parameter holds
zeros (2^-127: the layer outputs ~0); a NaN byte (0xFF) poisons a block.  A
single zero scale can be correct, but only for a group whose quantized values
are all zero too (AITER's producers clamp the amax at 1e-10, so even then they
write a non-zero scale): a zero scale on a non-zero group silences that group.

The whole scale tensor is reduced on every sampled call (a weight's scale once
per version), not the sampled rows: a scale wrong only in the last row or the
last K group must not slip through.  Groups are read in the layout the kernel
reads (MX-swizzle padding, uninitialized by design, excluded), so a finding
names the row and the K group.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import torch

from quantguard.checks._common import dtype_name, meaningful_scales
from quantguard.checks.base import DataCheck, Finding, Measurement, register_check
from quantguard.contracts.views import GemmView
from quantguard.numerics.formats import scale_storage
from quantguard.numerics.layouts import read_scales
from quantguard.numerics.scales import block_amax

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.calls import CallRecord

__all__ = ["ScaleValues", "nonzero_groups"]


def nonzero_groups(values: torch.Tensor, group_rows: int, group_cols: int, packed_fp4: bool) -> torch.Tensor:
    """``(ceil(R/group_rows), ceil(K/group_cols))``: which groups of a quantized operand hold a non-zero value.

    Read from the bytes (fp8 +-0 and fp4 +-0 are zero whatever the arch's fp8
    variant); ``group_cols`` counts elements, so a packed fp4 byte is two.
    """
    raw = values.reshape(-1, values.shape[-1])
    magnitude = raw.contiguous().view(torch.uint8)
    if raw.dtype != torch.int8:  # int8: any byte but 0 is non-zero; fp8 +-0 and fp4 +-0 (per nibble) are zero
        magnitude = magnitude & (0x77 if packed_fp4 else 0x7F)
    return block_amax(magnitude, group_rows, group_cols // 2 if packed_fp4 else group_cols) != 0


def _logical(view: GemmView, name: str, scale: torch.Tensor, rows: int, groups: int) -> torch.Tensor | None:
    """The ``(rows, groups)`` grid the kernel reads, if the layout is one we can read."""
    raw = scale_storage(scale)
    if raw.numel() == 1:
        return None
    if name == "x_scale":
        from quantguard.shadow.references import x_scale_read_layout

        layout = x_scale_read_layout(view, scale)
    else:
        layout = "row_major" if view.w_scale_layout == "logical" else view.w_scale_layout
    layout = view.notes.get(name + "_bytes", layout)
    if layout == "logical" and raw.dim() != 2:
        layout = "row_major"
    try:
        return read_scales(raw, layout, rows, groups)
    except ValueError:  # a layout only its kernel knows
        return None


def _operand_groups(view: GemmView, name: str) -> tuple[Any, int, int] | None:
    """The quantized operand behind a scale, and its group shape (rows, elements), when it is plain."""
    mx = view.scheme == "mx"
    if name == "x_scale":
        if view.batch is not None or view.x is None:
            return None
        if view.scheme == "per_token":
            return view.x, 1, view.k
        if view.scheme == "block":
            return view.x, 1, view.block_k
        return (view.x, 1, view.mx_group) if mx else None
    if view.w is None or view.w_layout != "plain" or view.w.dim() != 2 or mx:
        return None
    if view.scheme == "per_token":
        return view.w, 1, view.k
    if view.scheme == "block":
        return view.w, view.block_n, view.block_k
    return None


@register_check
class ScaleValues(DataCheck):
    name = "scale_values"
    reports = ("scale_values",)
    summary = "zero, negative or non-finite GEMM scales in every row and K group (e8m0 zero bytes, NaN 0xFF)"

    def snapshot(self, call: CallRecord) -> None:
        view = call.view
        if not isinstance(view, GemmView):
            return
        seen = call.state.memo.setdefault("scale_values.weights", {})
        kept = []
        for name, scale, layout, rows in (
            ("x_scale", view.x_scale, view.x_scale_layout, view.m),
            ("w_scale", view.w_scale, view.w_scale_layout, view.n),
        ):
            if scale is None or scale.numel() == 0:
                continue
            if name == "w_scale":  # a weight's scale is checked once per version, not on every sampled call
                identity = (scale.data_ptr(), scale._version, tuple(scale.shape))
                if seen.get(id(scale)) == identity:
                    continue
                seen[id(scale)] = identity
            operand = _operand_groups(view, name) if view.batch is None else None
            grid = nonzero = None
            if operand is not None:
                values, group_rows, group_cols = operand
                nonzero = nonzero_groups(values, group_rows, group_cols, view.scheme == "mx")
                grid = _logical(view, name, scale, *nonzero.shape)
                if grid is None or grid.shape != nonzero.shape:
                    grid = nonzero = None
            if grid is None:
                groups = -(-view.k // view.mx_group) if view.scheme == "mx" else 0
                layout = view.notes.get(name + "_bytes", layout)  # a kernel-specific view of a swizzled buffer
                grid = meaningful_scales(scale, layout, rows, groups)
            kept.append((name, grid.detach().clone(), nonzero))
        call.scratch["scale_values"] = kept

    def measure(self, call: CallRecord) -> Measurement | None:
        tensors: dict[str, torch.Tensor] = {}
        context: dict[str, Any] = {}
        for name, scale, nonzero in call.scratch.get("scale_values", []):
            encoding = "e8m0" if scale.element_size() == 1 else "fp32"
            values = scale_storage(scale)
            flat = values.reshape(-1)
            # min and max tell all about the whole tensor: all zero, negative, NaN (byte 0xFF is the largest)
            low, high = torch.aminmax(flat)
            if encoding == "e8m0":
                bad_value, negative = flat == 0xFF, torch.zeros_like(flat, dtype=torch.bool)
            else:
                bad_value, negative = ~torch.isfinite(flat), flat < 0
            zero = flat == 0
            zero_on_data = zero & nonzero.reshape(-1) if nonzero is not None else torch.zeros_like(zero)
            counts = []
            for mask in (bad_value, negative, zero_on_data):
                counts += [mask.sum(), mask.to(torch.uint8).argmax() if mask.numel() else mask.sum()]
            tensors[name] = torch.stack(
                [low.to(torch.float64), high.to(torch.float64)] + [c.to(torch.float64) for c in counts]
            )
            groups = int(scale.shape[-1]) if scale.dim() == 2 else 1
            context[name] = (encoding, list(scale.shape), dtype_name(scale.dtype), scale.numel(), groups)
        return Measurement(tensors, context) if tensors else None

    def judge(self, call: CallRecord, measurement: Measurement, values: Mapping[str, Any]) -> Iterable[Finding]:
        findings = []
        for name, (encoding, shape, dtype, total, groups) in measurement.context.items():
            low, high, bad, bad_at, negative, negative_at, zero, zero_at = values[name]

            def where(count: float, flat_index: float, groups: int = groups, total: int = total) -> str:
                row, group = divmod(int(flat_index), groups)
                return f"{int(count)} of {total}, first at row {row}, K group {group}"

            details = {
                "scale": name,
                "shape": shape,
                "dtype": dtype,
                "min": low,
                "max": high,
                "total": total,
                "nonfinite": int(bad),
                "negative": int(negative),
                "zero_on_nonzero_groups": int(zero),
            }
            if encoding == "e8m0":
                if high == 0:
                    findings.append(
                        Finding(
                            "scale_values",
                            f"{name} ({dtype} {shape}) is all zero bytes: every e8m0 "
                            "scale is 2^-127, so the product is ~0 (scales copied numerically into "
                            "uint8 instead of viewed as bytes?)",
                            details=details,
                            variant=name,
                        )
                    )
                    continue
                if bad:
                    findings.append(
                        Finding(
                            "scale_values",
                            f"{name} ({dtype} {shape}) holds e8m0 NaN bytes (0xFF): {where(bad, bad_at)}",
                            details=details,
                            variant=name + "/nan",
                        )
                    )
            elif math.isnan(low) or math.isnan(high) or math.isinf(low) or math.isinf(high) or bad:
                findings.append(
                    Finding(
                        "scale_values",
                        f"{name} ({dtype} {shape}) has non-finite scales (NaN/Inf): {where(bad, bad_at)}",
                        details=details,
                        variant=name + "/nan",
                    )
                )
                continue
            elif low < 0:
                findings.append(
                    Finding(
                        "scale_values",
                        f"{name} ({dtype} {shape}) has negative scales (min {low:.3g}): {where(negative, negative_at)}",
                        details=details,
                        variant=name,
                    )
                )
                continue
            elif high == 0:
                findings.append(
                    Finding(
                        "scale_values",
                        f"{name} ({dtype} {shape}) has all {total} scales zero",
                        details=details,
                        variant=name,
                    )
                )
                continue
            if zero:
                findings.append(
                    Finding(
                        "scale_values",
                        f"{name} ({dtype} {shape}) has zero scales on groups whose "
                        f"quantized values are not all zero (that group's output is lost): "
                        f"{where(zero, zero_at)}",
                        details=details,
                        variant=name + "/zero",
                    )
                )
        return findings
