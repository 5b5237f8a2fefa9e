"""Simulated ``aiter.ops.triton.gemm.basic.gemm_afp4wfp4``: MXFP4 Triton GEMMs (gfx950 only).

``gemm_afp4wfp4`` takes plain (M, K/2)/(N, K/2) fp4 bytes and row-major e8m0
scales. ``gemm_afp4wfp4_preshuffle`` takes the (16, 16)-shuffled weight viewed
(N/16, K/2*16), MX-swizzled weight scales viewed (N/32, pad8(K/32)*32), and
activation scales swizzled the same way when M >= 32, row-major otherwise.
"""

import torch

from quantguard.sim._kernels import gemm as _gemm
from quantguard.sim._kernels import layout as _layout

from .....jit.utils.chip_info import get_gfx

__all__ = ["gemm_afp4wfp4", "gemm_afp4wfp4_preshuffle"]


def _require_fp4():
    if get_gfx() != "gfx950":
        raise AssertionError("MXFP4 is not available on your device")


def _splits(config):
    return (config or {}).get("NUM_KSPLIT", 1)


def gemm_afp4wfp4(
    x: torch.Tensor,
    w: torch.Tensor,
    x_scales: torch.Tensor,
    w_scales: torch.Tensor,
    dtype: torch.dtype | None = torch.bfloat16,
    y: torch.Tensor | None = None,
    config: dict | None = None,
    skip_reduce: bool | None = False,
) -> torch.Tensor:
    """``Y = X @ W^T`` for packed fp4 operands with row-major e8m0 scales."""
    _require_fp4()
    a = _gemm.mx_operand(x, x_scales)
    b = _gemm.mx_operand(w, w_scales)
    return _gemm.epilogue(_gemm.partials(a, b, _splits(config)), None, dtype, y, skip_reduce)


def gemm_afp4wfp4_preshuffle(
    x_fp4: torch.Tensor,
    w_preshuf: torch.Tensor,
    x_scales: torch.Tensor,
    w_scales: torch.Tensor,
    dtype: torch.dtype | None = torch.bfloat16,
    y: torch.Tensor | None = None,
    config: dict | None = None,
    skip_reduce: bool | None = False,
) -> torch.Tensor:
    """``Y = X @ W^T`` with the preshuffled weight and swizzled scales."""
    _require_fp4()
    m, k_bytes = x_fp4.shape
    n = w_preshuf.shape[0] * 16
    groups = k_bytes * 2 // 32
    weight = _layout.unshuffle_weight(w_preshuf.view(torch.uint8).reshape(n, k_bytes), (16, 16))
    w_scale = _layout.mx_unswizzle(w_scales, n, groups, w_scales.shape[-1] // 32)
    if m >= 32:
        x_scale = _layout.mx_unswizzle(x_scales, m, groups, x_scales.shape[-1] // 32)
    else:
        x_scale = x_scales[:m, :groups]
    a = _gemm.mx_operand(x_fp4, x_scale)
    b = _gemm.mx_operand(weight, w_scale)
    return _gemm.epilogue(_gemm.partials(a, b, _splits(config)), None, dtype, y, skip_reduce)
