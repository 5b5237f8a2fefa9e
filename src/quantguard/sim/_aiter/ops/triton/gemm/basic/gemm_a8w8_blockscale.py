"""Simulated ``aiter.ops.triton.gemm.basic.gemm_a8w8_blockscale``.

Triton kernels index x_scale through its strides, so a column-major *view*
reads correctly; ``gemm_a8w8_blockscale_preshuffle`` with
``is_x_scale_tranposed=True`` instead reads a contiguous (M, G) tensor as
(G, M) bytes, exactly like AITER's kernel.
"""

import torch

from quantguard.sim import _state
from quantguard.sim._kernels import gemm as _gemm
from quantguard.sim._kernels import layout as _layout

from .....jit.utils.chip_info import get_gfx
from .....utility import dtypes

__all__ = ["gemm_a8w8_blockscale", "gemm_a8w8_blockscale_preshuffle"]

_KERNEL_TYPES = ("bandwidth_bound", "compute_bound")


def _check_backend(backend, kernel_type):
    chosen = (backend or "triton").lower()
    if chosen not in ("triton", "gluon"):
        raise AssertionError(f"Unknown backend {backend!r}, must be 'triton' or 'gluon'")
    if chosen == "gluon":
        raise AssertionError(f"Gluon backend requires one of ('gfx1250',), got {get_gfx()!r}")
    if kernel_type not in _KERNEL_TYPES:
        raise AssertionError(f"Unknown kernel_type {kernel_type!r}, must be one of {list(_KERNEL_TYPES)}")


def _stride_grid(x_scale, rows, cols, transposed):
    """The (rows, cols) scale grid as the kernel indexes it."""
    if not transposed:
        return x_scale
    strides = (x_scale.stride(1), x_scale.numel() // x_scale.stride(0))
    return torch.as_strided(x_scale, (rows, cols), strides, x_scale.storage_offset())


def _other_major_grid(x_scale, rows, cols, transposed):
    # The broken kernel reads raw memory in the major order it was not given.
    column_major = _stride_grid(x_scale, rows, cols, transposed).stride(0) == 1 and rows > 1
    reader = _layout.read_row_major if column_major else _layout.read_col_major
    return reader(x_scale, rows, cols)


_x_scale_grid = _other_major_grid if _state.fault_active("gemm_reads_scale_wrong_major", "triton") else _stride_grid


def _run(x, weight, x_scale, w_scale, dtype, y, config, skip_reduce, transposed):
    grid = _x_scale_grid(x_scale, x.shape[0], w_scale.shape[1], transposed)
    xd, wd = _gemm.blockscale_operands(x, weight, grid, w_scale, dtypes.fp8)
    parts = _gemm.partials(xd, wd, (config or {}).get("NUM_KSPLIT", 1))
    return _gemm.epilogue(parts, None, dtype, y, skip_reduce)


def gemm_a8w8_blockscale(
    x: torch.Tensor,
    w: torch.Tensor,
    x_scale: torch.Tensor,
    w_scale: torch.Tensor,
    dtype: float | None = torch.bfloat16,
    y: torch.Tensor | None = None,
    config: dict | None = None,
    skip_reduce: bool | None = False,
    kernel_type: str = "bandwidth_bound",
    backend: str | None = None,
):
    """Blockscale GEMM: x (M, K), plain w (N, K), x_scale (M, G), w_scale (N/128, G)."""
    if x.shape[1] != w.shape[1]:
        raise AssertionError("Incompatible dimensions!!!")
    _check_backend(backend, kernel_type)
    return _run(x, w, x_scale, w_scale, dtype, y, config, skip_reduce, False)


def gemm_a8w8_blockscale_preshuffle(
    x: torch.Tensor,
    w: torch.Tensor,
    x_scale: torch.Tensor,
    w_scale: torch.Tensor,
    dtype: float | None = torch.bfloat16,
    y: torch.Tensor | None = None,
    config: dict | None = None,
    skip_reduce: bool | None = False,
    is_x_scale_tranposed: bool | None = True,
    kernel_type: str = "bandwidth_bound",
    backend: str | None = None,
):
    """Blockscale GEMM on a (16, 16)-shuffled weight viewed as (N/16, K*16)."""
    m, k = x.shape
    n = w.shape[0] * 16
    if k != w.shape[1] // 16:
        raise AssertionError("Incompatible dimensions!!!")
    _check_backend(backend, kernel_type)
    weight = _layout.unshuffle_weight(w.reshape(n, k), (16, 16))
    return _run(x, weight, x_scale, w_scale, dtype, y, config, skip_reduce, bool(is_x_scale_tranposed))
