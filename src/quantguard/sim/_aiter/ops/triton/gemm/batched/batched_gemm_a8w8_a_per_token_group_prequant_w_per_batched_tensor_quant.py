"""Simulated ``aiter.ops.triton.gemm.batched.batched_gemm_a8w8_a_per_token_group_prequant_w_per_batched_tensor_quant``.

The batched FP8 GEMM of MLA weight absorption: ``Y[b] = X[b] @ W[b]^T`` where
X is quantized inside the kernel per (token, group_size) into W's dtype and W
carries one scale for the whole batch.
"""

import torch

from quantguard.sim._kernels import fp8 as _fp8
from quantguard.sim._kernels import quantize as _quantize

from .....utility import dtypes

__all__ = ["batched_gemm_a8w8_a_per_token_group_prequant_w_per_batched_tensor_quant"]

_CONFIG_KEYS = frozenset(
    {
        "BLOCK_SIZE_M",
        "BLOCK_SIZE_N",
        "BLOCK_SIZE_K",
        "GROUP_SIZE_M",
        "num_warps",
        "num_stages",
        "waves_per_eu",
        "matrix_instr_nonkdim",
        "kpack",
        "cache_modifier",
    }
)


def batched_gemm_a8w8_a_per_token_group_prequant_w_per_batched_tensor_quant(
    X: torch.Tensor,
    WQ: torch.Tensor,
    w_scale: torch.Tensor,
    group_size: int = 128,
    bias: torch.Tensor | None = None,
    dtype: torch.dtype | None = torch.bfloat16,
    splitK: int | None = None,
    YQ: torch.Tensor | None = None,
    transpose_bm: bool | None = False,
    transpose_bm_in: bool | None = False,
    config: dict | None = None,
):
    """X (B, M, K) [or (M, B, K) with ``transpose_bm_in``], WQ (B, N, K), w_scale (1,).

    Returns (B, M, N) [or (M, B, N) with ``transpose_bm``], written into ``YQ`` if given.
    """
    x = X.transpose(0, 1) if transpose_bm_in else X
    batch, _, k = x.shape
    if batch != WQ.shape[0] or k != WQ.shape[2]:
        raise AssertionError("Incompatible batch or K dimensions!!!")
    if group_size & (group_size - 1):
        raise AssertionError("group_size must be a power of 2")
    if dtype not in (torch.bfloat16, torch.float16):
        raise AssertionError(f"Output {dtype=} is currently not supported in batched_gemm_a8w8")
    if splitK is not None:
        raise AssertionError("Currently, there isn't any support for splitK on Triton")
    if config is not None and not _CONFIG_KEYS.issuperset(config):
        raise TypeError(f"unknown kernel config keys: {sorted(set(config) - _CONFIG_KEYS)}")
    rows = x.reshape(-1, k)
    scale = _quantize.fp32_scale(_quantize.group_amax(rows, group_size), WQ.dtype)
    quantized = _quantize.apply(rows, scale, group_size, WQ.dtype)
    xd = _fp8.to_float(quantized, dtypes.fp8).unflatten(-1, (-1, group_size)) * scale.unsqueeze(-1)
    acc = xd.flatten(-2).view(x.shape) @ _fp8.to_float(WQ, dtypes.fp8).transpose(1, 2)
    acc = acc * w_scale.float().reshape(-1)[0]
    if bias is not None:
        acc = acc + bias.float()
    result = acc.to(dtype)
    if transpose_bm:
        result = result.transpose(0, 1)
    if YQ is None:
        return result.contiguous()
    YQ.copy_(result)
    return YQ
