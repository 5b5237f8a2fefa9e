"""fp32 GEMM building blocks shared by the CK, ASM, Triton and hipBLASLt simulations.

Every simulated GEMM computes ``y = dequant(x) @ dequant(w)^T`` in fp32 from
operands already read in the layout its kernel expects, adds the bias and
casts, which is the contract the real kernels implement. FP8 bytes are read
as the arch's FP8 flavour (see :func:`quantguard.sim._kernels.fp8.to_float`).
"""

from __future__ import annotations

import torch

from quantguard.sim._kernels import e8m0, fp4, fp8


def _next_pow2(value: int) -> int:
    return 1 << max(value - 1, 0).bit_length()


def expand(scale: torch.Tensor, rows: int, cols: int, block_rows: int, block_cols: int) -> torch.Tensor:
    """Broadcast a per-block scale grid to a (rows, cols) fp32 tensor."""
    grid = scale.float()
    return grid.repeat_interleave(block_rows, 0)[:rows].repeat_interleave(block_cols, 1)[:, :cols]


def partials(a: torch.Tensor, b: torch.Tensor, splits: int) -> torch.Tensor:
    """(splits, M, N) fp32 partial products of a (M, K) @ b (N, K)^T over K chunks."""
    k = a.shape[-1]
    chunk = -(-k // max(splits, 1))
    return torch.stack([a[:, s : s + chunk] @ b[:, s : s + chunk].T for s in range(0, k, chunk)])


def finish(acc: torch.Tensor, bias: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
    """Epilogue: add an optional bias in fp32 and cast to the output dtype."""
    if bias is not None:
        acc = acc + bias.float().reshape(-1)
    return acc.to(dtype)


def epilogue(parts, bias, dtype, out=None, keep_partials=False):
    """Triton-style epilogue: return fp32 split-K partials, or reduce into ``out``."""
    if keep_partials and parts.shape[0] > 1:
        return parts
    result = finish(parts.sum(0), bias, dtype)
    if out is None:
        return result
    out.copy_(result.view(out.shape))
    return out


def rowscale_operands(x, w, x_scale, w_scale, arch_fp8):
    """Dequantized operands for per-token/per-channel (or per-tensor) scales."""
    xd = fp8.to_float(x, arch_fp8) * x_scale.float().reshape(-1, 1)
    wd = fp8.to_float(w, arch_fp8) * w_scale.float().reshape(-1, 1)
    return xd, wd


def blockscale_operands(x, w, x_scale, w_scale, arch_fp8):
    """Dequantized operands for 1 x block_k activation and block_n x block_k weight scales.

    ``x_scale`` must already be the logical (M, G) grid; block sizes follow the
    scale shapes as in AITER's Triton wrapper (next power of two).
    """
    m, k = x.shape
    n = w.shape[0]
    block_k = _next_pow2(-(-k // w_scale.shape[1]))
    block_n = _next_pow2(-(-n // w_scale.shape[0]))
    xd = fp8.to_float(x, arch_fp8) * expand(x_scale, m, k, 1, block_k)
    wd = fp8.to_float(w, arch_fp8) * expand(w_scale, n, k, block_n, block_k)
    return xd, wd


def mx_operand(packed, scale_bytes):
    """Dequantized (R, K) operand from packed fp4 (R, K/2) and row-major e8m0 (R, K/32)."""
    values = fp4.to_float(packed)
    return values * expand(e8m0.decode(scale_bytes), values.shape[0], values.shape[1], 1, 32)
