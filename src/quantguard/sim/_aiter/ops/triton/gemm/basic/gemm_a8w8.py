"""Simulated ``aiter.ops.triton.gemm.basic.gemm_a8w8``: per-row x per-column scaled GEMM."""

import torch

from quantguard.sim._kernels import gemm as _gemm

from .....utility import dtypes

__all__ = ["gemm_a8w8"]


def gemm_a8w8(
    x: torch.Tensor,
    w: torch.Tensor,
    x_scale: torch.Tensor,
    w_scale: torch.Tensor,
    bias: torch.Tensor | None = None,
    dtype: float | None = torch.bfloat16,
    y: torch.Tensor | None = None,
    config: dict | None = None,
    skip_reduce: bool | None = False,
):
    """``Y = (X @ W^T) * x_scale * w_scale (+ bias)`` for (M, K) x and plain (N, K) w.

    ``config["NUM_KSPLIT"] > 1`` splits K; with ``skip_reduce`` the fp32
    partials (NUM_KSPLIT, M, N) are returned unreduced and without bias.
    """
    if x.shape[1] != w.shape[1]:
        raise AssertionError("Incompatible dimensions!!!")
    xd, wd = _gemm.rowscale_operands(x, w, x_scale, w_scale, dtypes.fp8)
    parts = _gemm.partials(xd, wd, (config or {}).get("NUM_KSPLIT", 1))
    return _gemm.epilogue(parts, bias, dtype, y, skip_reduce)
