"""Simulated ``aiter.ops.triton.quant.quant``: Triton FP8/INT8 and MXFP4 quant kernels.

Triton kernels quantize with ``x * (1 / scale)`` and no amax floor, and
``dynamic_mxfp4_quant`` declares round-to-even e8m0 scales, unlike the HIP
producers' RoundUp. At AITER HEAD e4048607 it accepts ``scaling_mode`` but
never reads it (the kernel launch hard-codes Even); an install with
``release_build=True`` honours it. The Triton wrappers are plain functions,
as in AITER.
"""

import torch

from quantguard.sim import _state
from quantguard.sim._kernels import e8m0 as _e8m0
from quantguard.sim._kernels import fp8 as _fp8
from quantguard.sim._kernels import quantize as _quantize

from ....utility import dtypes

__all__ = [
    "dynamic_mxfp4_quant",
    "dynamic_per_tensor_quant_fp8_i8",
    "dynamic_per_token_quant_fp8_i8",
    "static_per_tensor_quant_fp8_i8",
]


def _store(qx, values):
    qx.copy_(_fp8.saturate(values, qx.dtype).view(qx.shape))


def static_per_tensor_quant_fp8_i8(qx: torch.Tensor, x_in: torch.Tensor, scale_in: torch.Tensor):
    """Quantize ``x_in`` (M, N) into caller-allocated ``qx`` with a (1,) fp32 scale."""
    if scale_in.numel() != 1:
        raise AssertionError("only a single scale value is supported")
    _store(qx, x_in.float() * (1.0 / scale_in.float().reshape(-1)[0]))
    return qx


def dynamic_per_tensor_quant_fp8_i8(qx: torch.Tensor, x_in: torch.Tensor, scale_out: torch.Tensor):
    """Compute ``amax / dtype_max`` into ``scale_out`` (1,), then quantize into ``qx``."""
    scale_out.copy_((x_in.float().abs().max() / _fp8.dtype_max(qx.dtype)).reshape(scale_out.shape))
    _store(qx, x_in.float() * (1.0 / scale_out.reshape(-1)[0]))
    return qx, scale_out


def dynamic_per_token_quant_fp8_i8(
    qx: torch.Tensor,
    x_in: torch.Tensor,
    scale_out: torch.Tensor,
):
    """Per-row ``amax / dtype_max`` into ``scale_out`` (M,), quantized rows into ``qx``."""
    row_scale = x_in.float().abs().amax(-1, keepdim=True) / _fp8.dtype_max(qx.dtype)
    scale_out.copy_(row_scale.reshape(scale_out.shape))
    _store(qx, x_in.float() * (1.0 / row_scale))
    return qx, scale_out


def _mxfp4_quant(x, mode):
    rows, cols = x.shape
    if (cols // 2) % 2:
        raise AssertionError("N must be a multiple of 4")
    values, scale_bytes = _quantize.quantize(x, 32, dtypes.fp4x2, mode, dtypes.fp8)
    # The kernel writes the scale through a column-major (M, G) view of a (G, M) buffer.
    blockscale_e8m0 = torch.empty((scale_bytes.shape[1], rows), dtype=torch.uint8, device=x.device).T
    blockscale_e8m0.copy_(scale_bytes)
    return values.view(torch.uint8), blockscale_e8m0


def _rounding_mode(scaling_mode):
    try:
        return _e8m0.MODES[scaling_mode]
    except KeyError:
        raise ValueError(f"unknown scaling_mode {scaling_mode!r}; accepted: {', '.join(_e8m0.MODES)}") from None


if _state.fault_active("e8m0_ceil_rounding", "triton"):

    def dynamic_mxfp4_quant(x: torch.Tensor, scaling_mode: str = "even") -> tuple[torch.Tensor, torch.Tensor]:
        # The broken producer ignores its declared mode and rounds scales up.
        return _mxfp4_quant(x, _e8m0.CEIL)

elif _state.settings().release_build:

    def dynamic_mxfp4_quant(x: torch.Tensor, scaling_mode: str = "even") -> tuple[torch.Tensor, torch.Tensor]:
        """MXFP4 quant of (M, N): fp4 bytes (M, N/2) and e8m0 bytes (M, N/32).

        The scale is a column-major view (strides (1, M)); ``scaling_mode``
        names the e8m0 rounding.
        """
        return _mxfp4_quant(x, _rounding_mode(scaling_mode))

else:

    def dynamic_mxfp4_quant(x: torch.Tensor, scaling_mode: str = "even") -> tuple[torch.Tensor, torch.Tensor]:
        """MXFP4 quant of (M, N): fp4 bytes (M, N/2) and e8m0 bytes (M, N/32), Even scales.

        The scale is a column-major view (strides (1, M)). As at AITER HEAD,
        ``scaling_mode`` is accepted and never read: scales are always Even.
        """
        return _mxfp4_quant(x, _e8m0.EVEN)
