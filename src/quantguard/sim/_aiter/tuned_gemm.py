"""Simulated ``aiter.tuned_gemm``: ``tgemm.mm``, the hipBLASLt-backed GEMM ATOM uses.

Handles BF16/FP16 and per-tensor FP8 (``scale_a``/``scale_b``); a weight
carrying ``is_shuffled = True`` is read in the (16, 16) preshuffle layout.
As in AITER e4048607, ``gemm_a16w16`` is a ``torch_compile_guard`` op.
"""

import torch
from torch import Tensor

from quantguard.sim import _state
from quantguard.sim._kernels import fp8 as _fp8
from quantguard.sim._kernels import layout as _layout

from .jit.utils.torch_guard import torch_compile_guard
from .utility import dtypes

__all__ = ["TunedGemm", "gemm_a16w16", "tgemm"]


def _operand(tensor, scale):
    values = _fp8.to_float(tensor, dtypes.fp8)
    return values if scale is None else values * scale.float().reshape(-1, 1)


def _scaled_gemm(A, B, bias, otype, scale_a, scale_b, scale_c):
    """``((A * scale_a) @ (B * scale_b)^T + bias) * scale_c``; absent terms are skipped."""
    weight = _layout.unshuffle_weight(B, (16, 16)) if getattr(B, "is_shuffled", False) else B
    rows = A.reshape(-1, A.shape[-1])
    acc = _operand(rows, scale_a) @ _operand(weight, scale_b).T
    if bias is not None:
        acc = acc + bias.float().reshape(-1)
    if scale_c is not None:
        acc = acc * scale_c.float().reshape(-1)[0]
    return acc.to(otype or A.dtype).view(*A.shape[:-1], B.shape[0])


def gen_gemm_a16w16_fake_tensor(
    A: Tensor,
    B: Tensor,
    bias: Tensor | None = None,
    otype: torch.dtype | None = None,
    scale_a: Tensor | None = None,
    scale_b: Tensor | None = None,
    scale_c: Tensor | None = None,
) -> Tensor:
    return torch.empty(*A.shape[:-1], B.shape[0], dtype=otype or A.dtype, device=A.device)


if _state.fault_active("hipblaslt_drops_scale_b", "hipblaslt"):

    @torch_compile_guard(gen_fake=gen_gemm_a16w16_fake_tensor)
    def gemm_a16w16(
        A: Tensor,
        B: Tensor,
        bias: Tensor | None = None,
        otype: torch.dtype | None = None,
        scale_a: Tensor | None = None,
        scale_b: Tensor | None = None,
        scale_c: Tensor | None = None,
    ) -> Tensor:
        # The broken path accepts the weight's per-tensor scale and never applies it.
        return _scaled_gemm(A, B, bias, otype, scale_a, None, scale_c)

else:

    @torch_compile_guard(gen_fake=gen_gemm_a16w16_fake_tensor)
    def gemm_a16w16(
        A: Tensor,
        B: Tensor,
        bias: Tensor | None = None,
        otype: torch.dtype | None = None,
        scale_a: Tensor | None = None,
        scale_b: Tensor | None = None,
        scale_c: Tensor | None = None,
    ) -> Tensor:
        """hipBLASLt GEMM; a weight with ``is_shuffled = True`` is read preshuffled."""
        return _scaled_gemm(A, B, bias, otype, scale_a, scale_b, scale_c)


class TunedGemm:
    """bf16/fp16 GEMM with optional per-tensor FP8 scales."""

    def mm(
        self,
        inp: Tensor,
        weights: Tensor,
        bias: Tensor | None = None,
        otype: torch.dtype | None = None,
        scale_a: Tensor | None = None,
        scale_b: Tensor | None = None,
        scale_c: Tensor | None = None,
    ):
        return gemm_a16w16(
            inp,
            weights,
            bias=bias,
            otype=otype,
            scale_a=scale_a,
            scale_b=scale_b,
            scale_c=scale_c,
        )


tgemm = TunedGemm()
