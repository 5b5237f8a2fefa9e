"""Group quantization math shared by the HIP and Triton producers.

A "group" is a run of ``group_size`` consecutive elements of a row. The scale
of a group is either fp32 (``max(amax, 1e-10) / dtype_max``) or an e8m0
power of two chosen by one of the AITER rounding modes; values are divided by
the scale and saturated into the element format.
"""

from __future__ import annotations

import torch

from quantguard.sim._kernels import e8m0, fp4, fp8

AMAX_FLOOR = 1e-10


def group_amax(rows: torch.Tensor, group_size: int) -> torch.Tensor:
    """(R, K) -> (R, K / group_size) absolute maxima in fp32."""
    return rows.float().unflatten(-1, (-1, group_size)).abs().amax(-1)


def fp32_scale(amax: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return amax.clamp_min(AMAX_FLOOR) / fp8.dtype_max(dtype)


def apply(rows: torch.Tensor, scale: torch.Tensor, group_size: int, dtype: torch.dtype):
    """Quantize (R, K) rows with per-group fp32 ``scale`` (R, G) into ``dtype``.

    ``dtype`` may be an FP8 flavour, int8, or fp4x2 (returns (R, K/2) bytes).
    """
    grouped = rows.float().unflatten(-1, (-1, group_size)) / scale.unsqueeze(-1)
    values = grouped.flatten(-2)
    if dtype == torch.float4_e2m1fn_x2:
        return fp4.pack(fp4.encode(values)).view(dtype)
    return fp8.saturate(values, dtype)


def quantize(
    rows: torch.Tensor,
    group_size: int,
    dtype: torch.dtype,
    e8m0_mode: int | None,
    arch_fp8: torch.dtype,
    amax_cap: torch.Tensor | None = None,
):
    """Dynamic per-group quantization of (R, K) rows.

    Returns ``(values, scale)`` where ``scale`` is fp32 (R, G) when
    ``e8m0_mode`` is None, else e8m0 bytes (R, G) as uint8. The e8m0 constants
    come from the element format (fp4, or the arch's FP8 flavour).
    ``amax_cap`` bounds each group's amax (an upper bound on the scale).
    """
    amax = group_amax(rows, group_size)
    if amax_cap is not None:
        amax = torch.minimum(amax, amax_cap.float().reshape(-1)[0])
    if e8m0_mode is None:
        scale = fp32_scale(amax, dtype)
        return apply(rows, scale, group_size, dtype), scale
    fmt = "fp4" if dtype == torch.float4_e2m1fn_x2 else e8m0.FP8_FORMATS[arch_fp8]
    scale_bytes = e8m0.encode(amax, e8m0_mode, fmt)
    return apply(rows, e8m0.decode(scale_bytes), group_size, dtype), scale_bytes
