"""Dequantization references: exact where the operation is exactly defined.

Every function reads the *bytes* it is given with the format the kernel
interprets them in (``as_fp8``), because on gfx942 a byte written as
e4m3fn is read as e4m3fnuz — that reinterpretation is a real incident, and
a reference that trusted the tensor's dtype would hide it.
"""

from __future__ import annotations

import torch

from quantguard.numerics.formats import e8m0_decode, element_format, is_e8m0_dtype, round_to_format
from quantguard.numerics.scales import fp32_scales, group_amax

__all__ = [
    "fp8_values",
    "unpack_fp4",
    "scale_values",
    "expand_groups",
    "expand_blocks_2d",
    "dequantize_rows",
    "quantize_dequantize",
]


def fp8_values(q: torch.Tensor, as_fp8: torch.dtype | None = None) -> torch.Tensor:
    """Float32 values of 1-byte quantized elements (fp8 in ``as_fp8`` if given, or int8)."""
    if q.dtype == torch.int8:
        return q.to(torch.float32)
    if as_fp8 is not None:
        return q.contiguous().view(torch.uint8).view(as_fp8).to(torch.float32)
    return q.to(torch.float32)


def unpack_fp4(packed: torch.Tensor) -> torch.Tensor:
    """fp4x2 bytes ``(..., K/2)`` → float32 ``(..., K)``: element 2i is the low nibble."""
    raw = packed.contiguous().view(torch.uint8).to(torch.int64)
    nibbles = torch.stack((raw & 0xF, raw >> 4), dim=-1).reshape(*raw.shape[:-1], raw.shape[-1] * 2)
    code = nibbles & 0x7  # e2m1: codes 0-1 are 0 and 0.5; then (1 + m/2) * 2^(e-1) (no table: no host copy)
    magnitude = torch.where(code < 2, code * 0.5, (1.0 + (code & 1) * 0.5) * torch.exp2(((code >> 1) - 1).float()))
    return torch.where((nibbles & 0x8) != 0, -magnitude, magnitude)


def scale_values(scales: torch.Tensor) -> torch.Tensor:
    """Float32 multipliers of a scale tensor: fp32 as-is, e8m0 (or its uint8 bytes) decoded."""
    if is_e8m0_dtype(scales.dtype) or scales.dtype == torch.uint8:
        return e8m0_decode(scales.contiguous().view(torch.uint8) if is_e8m0_dtype(scales.dtype) else scales)
    return scales.to(torch.float32)


def expand_groups(scales: torch.Tensor, group: int, length: int) -> torch.Tensor:
    """``(..., G)`` per-group multipliers → ``(..., length)`` per element (last group may be partial)."""
    return scales.repeat_interleave(group, dim=-1)[..., :length]


def expand_blocks_2d(scales: torch.Tensor, block_rows: int, block_cols: int, rows: int, cols: int) -> torch.Tensor:
    """``(ceil(R/br), ceil(C/bc))`` block multipliers → ``(rows, cols)``."""
    return scales.repeat_interleave(block_rows, dim=0)[:rows].repeat_interleave(block_cols, dim=1)[:, :cols]


def dequantize_rows(
    q: torch.Tensor,
    scales: torch.Tensor | None,
    group: int | None,
    as_fp8: torch.dtype | None = None,
    packed_fp4: bool = False,
) -> torch.Tensor:
    """Dequantize ``(M, K)`` elements with ``(M, G)`` (or ``(M, 1)``/scalar) float32 multipliers."""
    values = unpack_fp4(q) if packed_fp4 else fp8_values(q, as_fp8)
    if scales is None:
        return values
    multipliers = scales.to(torch.float32)
    if group is not None and multipliers.dim() >= 1 and multipliers.shape[-1] > 1:
        multipliers = expand_groups(multipliers, group, values.shape[-1])
    return values * multipliers


def quantize_dequantize(x: torch.Tensor, group: int | None, dtype: torch.dtype) -> torch.Tensor:
    """``x`` dynamically quantized to ``dtype`` (fp8 or int8) and dequantized again, in float32.

    Scales are fp32 ``max(amax, 1e-10) / max`` per ``group`` elements of a row
    along the last dimension (``None``: one per row, ``0``: one for the whole
    tensor, as :func:`~quantguard.numerics.scales.group_amax`): the operand a
    GEMM multiplies after a correct dynamic activation quant.
    """
    element = element_format(dtype)
    rows = x.to(torch.float32).reshape(-1, x.shape[-1])
    scale = fp32_scales(group_amax(rows, group), element.max)
    if group:
        scale = expand_groups(scale, group, rows.shape[-1])
    return (round_to_format(rows / scale, dtype, element) * scale).view(x.shape)
