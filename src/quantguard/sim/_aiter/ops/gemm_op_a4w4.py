"""Simulated ``aiter.ops.gemm_op_a4w4``: MXFP4 GEMMs on ASM and CK kernels.

``gemm_a4w4`` takes packed fp4 A (M, K/2) and B (N, K/2, (16, 16)-preshuffled)
with MX-swizzled e8m0 scales (pad256(rows), pad8(K/32)). A tuned config whose
kernel name is not an ASM symbol runs the CK blockscale kernel; everything else
runs ``gemm_a4w4_asm`` (looked up as a module global). gfx942 has no FP4 GEMM.

As in AITER e4048607, ``gemm_a4w4`` is a ``torch_compile_guard`` op and the
CK/ASM kernels are ``compile_ops`` ops; ``gemm_a4w4_asm`` stays a plain
function.
"""

import torch
from torch import Tensor

from quantguard.sim._kernels import gemm as _gemm
from quantguard.sim._kernels import layout as _layout

from ..jit.core import compile_ops
from ..jit.utils.chip_info import get_gfx_runtime as get_gfx
from ..jit.utils.torch_guard import torch_compile_guard
from ..utility import dtypes
from .gemm_op_common import asm_weight_reader, check_kernel_name, lookup_tuned

__all__ = ["gemm_a4w4", "gemm_a4w4_asm"]

#: Tuned configs keyed (M, N, K) (M may be None): {"kernelName": ..., "splitK": ...}.
TUNED_A4W4: dict = {}

A4W4_ASM_KERNELS = (
    "_ZN5aiter41f4gemm_bf16_per1x32Fp4_BpreShuffle_32x128E",
    "_ZN5aiter41f4gemm_bf16_per1x32Fp4_BpreShuffle_64x128E",
)

_read_asm_weight = asm_weight_reader()


def _mx_operands(A, weight, A_scale, B_scale):
    """Dequantized A and B from packed fp4 bytes and MX-swizzled e8m0 scales."""
    m, n = A.shape[0], weight.shape[0]
    groups = A.shape[1] * 2 // 32
    a_scale = _layout.mx_unswizzle(A_scale, m, groups, A_scale.shape[-1])
    b_scale = _layout.mx_unswizzle(B_scale, n, groups, B_scale.shape[-1])
    return _gemm.mx_operand(A, a_scale), _gemm.mx_operand(weight, b_scale)


def _output_fake(XQ, WQ, x_scale, w_scale, Out, *args, **kwargs):
    return Out


@compile_ops("module_gemm_a4w4_blockscale", gen_fake=_output_fake)
def gemm_a4w4_blockscale(
    XQ: Tensor, WQ: Tensor, x_scale: Tensor, w_scale: Tensor, Out: Tensor, splitK: int = 0
) -> Tensor:
    weight = _layout.unshuffle_weight(WQ.view(torch.uint8), (16, 16))
    a, b = _mx_operands(XQ, weight, x_scale, w_scale)
    Out[: a.shape[0]].copy_(_gemm.partials(a, b, splitK).sum(0).to(Out.dtype))
    return Out


@compile_ops("module_gemm_a4w4_asm")
def _gemm_a4w4_asm(
    A: Tensor,
    B: Tensor,
    A_scale: Tensor,
    B_scale: Tensor,
    out: Tensor,
    bias: Tensor | None,
    alpha: float,
    beta: float,
    bpreshuffle: bool,
    splits: int,
) -> None:
    weight = B.view(torch.uint8)
    if bpreshuffle:
        weight = _read_asm_weight(weight, (16, 16))
    a, b = _mx_operands(A, weight, A_scale, B_scale)
    acc = alpha * _gemm.partials(a, b, splits).sum(0)
    rows = out[: a.shape[0]]
    if beta:
        acc = acc + beta * rows.float()
    rows.copy_(_gemm.finish(acc, bias, out.dtype))


def gemm_a4w4_fake(
    A: Tensor,
    B: Tensor,
    A_scale: Tensor,
    B_scale: Tensor,
    bias: Tensor | None = None,
    dtype: torch.dtype = dtypes.bf16,
    alpha: float | None = 1.0,
    beta: float | None = 0.0,
    bpreshuffle: bool | None = True,
    apreshuffle: bool | None = False,
    global_A_scale: Tensor | None = None,
    global_B_scale: Tensor | None = None,
) -> Tensor:
    return torch.empty((*A.shape[:-1], B.shape[0]), dtype=dtype, device=A.device)


@torch_compile_guard(gen_fake=gemm_a4w4_fake)
def gemm_a4w4(
    A: Tensor,
    B: Tensor,
    A_scale: Tensor,
    B_scale: Tensor,
    bias: Tensor | None = None,
    dtype: torch.dtype = dtypes.bf16,
    alpha: float | None = 1.0,
    beta: float | None = 0.0,
    bpreshuffle: bool | None = True,
    apreshuffle: bool | None = False,
    global_A_scale: Tensor | None = None,
    global_B_scale: Tensor | None = None,
) -> torch.Tensor:
    """MXFP4 GEMM returning (..., N) in ``dtype``."""
    if dtype in (dtypes.fp4x2, dtypes.fp8):
        raise NotImplementedError("gemm_a4w4 returns one plain-dtype tensor")
    if apreshuffle or global_A_scale is not None or global_B_scale is not None:
        raise NotImplementedError("A preshuffle and NVFP4 global scales are gfx1250-only (not simulated)")
    gfx_arch = get_gfx()
    if gfx_arch == "gfx942":
        raise RuntimeError(f"A4W4 GEMM kernel is not supported on gfx942, but got {gfx_arch}!")
    m = A.numel() // A.shape[-1]
    n = B.shape[0]
    k = A.shape[-1] * 2
    out = torch.empty(((m + 31) // 32 * 32, n), dtype=dtype, device=A.device)
    config = lookup_tuned(TUNED_A4W4, m, n, k)
    splitK = config.get("splitK", 0) if config else 0
    kernelName = config["kernelName"] if config else ""
    if config is not None and "_ZN" not in kernelName:
        return gemm_a4w4_blockscale(A.view(m, k // 2), B, A_scale, B_scale, out, splitK=splitK)[:m]
    gemm_a4w4_asm(
        A.view(m, k // 2),
        B,
        A_scale,
        B_scale,
        out,
        kernelName,
        bias,
        alpha,
        beta,
        bpreshuffle,
        log2_k_split=splitK,
    )
    return out[:m].view(*A.shape[:-1], n)


def gemm_a4w4_asm(
    A: Tensor,
    B: Tensor,
    A_scale: Tensor,
    B_scale: Tensor,
    out: Tensor,
    kernelName: str = "",
    bias: Tensor | None = None,
    alpha: float | None = 1.0,
    beta: float | None = 0.0,
    bpreshuffle: bool | None = True,
    log2_k_split: int | None = None,
) -> Tensor:
    """ASM MXFP4 GEMM into ``out`` (rows padded to 32); D = alpha * A @ B^T + beta * D + bias."""
    check_kernel_name(kernelName, A4W4_ASM_KERNELS)
    _gemm_a4w4_asm(
        A,
        B,
        A_scale,
        B_scale,
        out,
        bias,
        1.0 if alpha is None else alpha,
        0.0 if beta is None else beta,
        True if bpreshuffle is None else bool(bpreshuffle),
        2 ** (log2_k_split or 0),
    )
    return out
