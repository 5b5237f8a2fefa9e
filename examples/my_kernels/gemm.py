"""Your own per-token FP8 GEMM (here a torch stand-in; in practice a Triton or HIP kernel).

``y = (x * x_scale) @ (w * w_scale)^T`` with x (M, K) and w (N, K) in
float8_e4m3fn, x_scale (M, 1) and w_scale (N, 1) in float32.
``BUGGY = True`` makes it forget w_scale — the kind of silent bug quantguard
is for: no exception, plausible-looking output.
"""

from __future__ import annotations

import torch

BUGGY = False


def fp8_gemm(
    x: torch.Tensor,
    w: torch.Tensor,
    x_scale: torch.Tensor,
    w_scale: torch.Tensor,
    out_dtype: torch.dtype = torch.bfloat16,
) -> torch.Tensor:
    w_scale_used = torch.ones_like(w_scale) if BUGGY else w_scale
    return ((x.float() * x_scale) @ (w.float() * w_scale_used).t()).to(out_dtype)
