"""Simulated ``aiter.ops.triton.quant``: re-exports the Triton quant kernels.

As in AITER, ``fused_silu_mul_fp8_per_tensor_static_quant`` is not re-exported:
it is reached through its module (``aiter.ops.triton.quant.fused_fp8_quant``,
or ATOM's old flat path ``aiter.ops.triton.fused_fp8_quant``).
"""

from .fused_fp8_quant import (
    fused_flatten_fp8_group_quant,
    fused_reduce_rms_fp8_group_quant,
    fused_rms_fp8_per_tensor_static_quant,
)
from .quant import (
    dynamic_mxfp4_quant,
    dynamic_per_tensor_quant_fp8_i8,
    dynamic_per_token_quant_fp8_i8,
    static_per_tensor_quant_fp8_i8,
)

__all__ = [
    "dynamic_mxfp4_quant",
    "dynamic_per_tensor_quant_fp8_i8",
    "dynamic_per_token_quant_fp8_i8",
    "fused_flatten_fp8_group_quant",
    "fused_reduce_rms_fp8_group_quant",
    "fused_rms_fp8_per_tensor_static_quant",
    "static_per_tensor_quant_fp8_i8",
]
