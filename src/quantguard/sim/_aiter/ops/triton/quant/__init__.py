"""Simulated ``aiter.ops.triton.quant``: re-exports the Triton quant kernels."""

from .fused_fp8_quant import fused_flatten_fp8_group_quant
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
    "static_per_tensor_quant_fp8_i8",
]
