"""How AITER's scaled GEMMs read: operands, the x_scale layout each kernel expects, the weight layout.

Each adapter turns a call into a :class:`GemmView` (``y = (x * x_scale) @
(w * w_scale)^T`` with the layouts the kernel reads), encoding AITER's
semantics, for example:

* ``gemm_a8w8_blockscale_bpreshuffle`` reads a transposed x_scale (bytes
  ``(G, M)`` or a view with ``stride(0) == 1``) and a 16x16-preshuffled weight.
* ``flatmm_a8w8_blockscale_ASM`` takes both scales transposed *in shape*.
* gfx942 kernels read fp8 bytes as e4m3fnuz whatever the tensor says.
* ASM kernels write into row-padded output buffers (only the first M rows mean anything).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from quantguard.contracts.aiter._common import arch_fp8, element_of, flag, load_torch
from quantguard.contracts.views import GemmView

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.calls import CallRecord

__all__ = [
    "a4w4",
    "a4w4_asm",
    "a8w8",
    "afp4wfp4",
    "afp4wfp4_preshuffle",
    "batched_prequant",
    "blockscale",
    "blockscale_bpreshuffle",
    "blockscale_bpreshuffle_asm",
    "flatmm_asm",
    "gfx950_blockscale_asm",
    "tgemm",
    "triton_a8w8",
    "triton_blockscale",
    "triton_blockscale_preshuffle",
]


def _gemm_common(call: CallRecord, kernel: str, x: Any, w: Any, x_scale: Any, w_scale: Any, **fields: Any) -> GemmView:
    out = fields.pop("out", None)
    if out is None:
        result = call.result
        out = result[0] if isinstance(result, (tuple, list)) else result
    k = int(x.shape[-1]) * (2 if fields.get("scheme") == "mx" else 1)
    n = int(w.shape[-2]) if w is not None and w.dim() >= 2 else 0
    m = int(x.reshape(-1, x.shape[-1]).shape[0])
    if isinstance(out, load_torch().Tensor) and out.dim() == 2 and out.shape[0] > m:
        out = out[:m]  # ASM kernels write into row-padded buffers (e.g. pad32(M)); the rest is scratch
    element = element_of(x.dtype, fields.get("scheme") == "mx")
    return GemmView(
        kernel, x, w, x_scale, w_scale, out=out, element=element, fp8_read_as=arch_fp8(call), m=m, n=n, k=k, **fields
    )


def a8w8(layout: str) -> Callable[[CallRecord], GemmView]:
    def interpret(call: CallRecord) -> GemmView:
        torch = load_torch()
        return _gemm_common(
            call,
            call.target,
            call["XQ"],
            call["WQ"],
            call["x_scale"],
            call["w_scale"],
            bias=call.get("bias"),
            out_dtype=call.get("dtype"),
            scheme="per_token",
            w_layout=layout,
            x_scale_dtypes=(torch.float32,),
            allowed_out_dtypes=(torch.bfloat16, torch.float16),
        )

    return interpret


def blockscale(call: CallRecord) -> GemmView:
    """``gemm_a8w8_blockscale``: row-major x_scale (M, ceil(K/128)); ``isBpreshuffled`` → preshuffled weight."""
    torch = load_torch()
    preshuffled = flag(call.get("isBpreshuffled"))
    return _gemm_common(
        call,
        call.target,
        call["XQ"],
        call["WQ"],
        call["x_scale"],
        call["w_scale"],
        out_dtype=call.get("dtype"),
        scheme="block",
        x_scale_layout="row_major",
        w_layout="preshuffle_16x16" if preshuffled else "plain",
        x_scale_dtypes=(torch.float32,),
        allowed_out_dtypes=(torch.bfloat16, torch.float16),
    )


def blockscale_bpreshuffle(call: CallRecord) -> GemmView:
    """``gemm_a8w8_blockscale_bpreshuffle``: transposed x_scale; e8m0 scales are converted to fp32."""
    torch = load_torch()
    return _gemm_common(
        call,
        call.target,
        call["XQ"],
        call["WQ"],
        call["x_scale"],
        call["w_scale"],
        out=call.get("out"),
        out_dtype=call.get("dtype"),
        scheme="block",
        x_scale_layout="transposed",
        x_scale_strided_ok=True,
        w_layout="preshuffle_16x16",
        x_scale_dtypes=(torch.float32, torch.float8_e8m0fnu),
        allowed_out_dtypes=(torch.bfloat16, torch.float16),
    )


def blockscale_bpreshuffle_asm(call: CallRecord) -> GemmView:
    torch = load_torch()
    return _gemm_common(
        call,
        call.target,
        call["A"],
        call["B"],
        call["A_scale"],
        call["B_scale"],
        out=call["out"],
        out_dtype=call["out"].dtype,
        bias=call.get("bias"),
        scheme="block",
        x_scale_layout="transposed",
        x_scale_strided_ok=True,
        w_layout="preshuffle_16x16",
        x_scale_dtypes=(torch.float32,),
    )


def gfx950_blockscale_asm(call: CallRecord) -> GemmView:
    torch = load_torch()
    return _gemm_common(
        call,
        call.target,
        call["XQ"],
        call["WQ"],
        call["x_scale"],
        call["w_scale"],
        out=call["Y"],
        out_dtype=call["Y"].dtype,
        scheme="block",
        x_scale_layout="row_major",
        w_layout="preshuffle_16x16",
        x_scale_dtypes=(torch.float32,),
    )


def _transposed_in_shape(scale: Any) -> Any:
    return scale.t() if scale is not None and getattr(scale, "dim", lambda: 0)() == 2 else scale


def flatmm_asm(call: CallRecord) -> GemmView:
    """``flatmm_a8w8_blockscale_ASM``: x_scale (K/128, M), w_scale (K/128, N/128), weight shuffled (16, 32).

    The kernel takes both scales transposed *in shape*; the view presents them
    as the (M, G) / (N/128, G) transposed views the generic checks read.
    """
    torch = load_torch()
    return _gemm_common(
        call,
        call.target,
        call["XQ"],
        call["WQ"],
        _transposed_in_shape(call["x_scale"]),
        _transposed_in_shape(call["w_scale"]),
        out_dtype=call.get("dtype"),
        scheme="block",
        x_scale_layout="transposed",
        x_scale_strided_ok=True,
        w_layout="preshuffle_16x32",
        x_scale_dtypes=(torch.float32,),
        allowed_out_dtypes=(torch.float16,),
    )


def triton_a8w8(call: CallRecord) -> GemmView:
    torch = load_torch()
    return _gemm_common(
        call,
        call.target,
        call["x"],
        call["w"],
        call["x_scale"],
        call["w_scale"],
        out=call.get("y"),
        bias=call.get("bias"),
        out_dtype=call.get("dtype"),
        scheme="per_token",
        x_scale_dtypes=(torch.float32,),
        allowed_out_dtypes=(torch.bfloat16, torch.float16),
    )


def triton_blockscale(call: CallRecord) -> GemmView:
    torch = load_torch()
    return _gemm_common(
        call,
        call.target,
        call["x"],
        call["w"],
        call["x_scale"],
        call["w_scale"],
        out=call.get("y"),
        out_dtype=call.get("dtype"),
        scheme="block",
        x_scale_layout="logical",
        x_scale_dtypes=(torch.float32,),
        allowed_out_dtypes=(torch.bfloat16, torch.float16),
    )


def triton_blockscale_preshuffle(call: CallRecord) -> GemmView:
    """Weight viewed ``(N/16, K*16)``; ``is_x_scale_tranposed`` says x_scale bytes are ``(G, M)``."""
    torch = load_torch()
    w = call["w"]
    x = call["x"]
    k = int(x.shape[-1])
    w_nk = w.reshape(-1, k) if w.dim() == 2 and int(w.shape[-1]) != k else w
    # flag set: a contiguous (M, G) tensor whose bytes are (G, M); unset: read by strides (any view)
    transposed = flag(call.get("is_x_scale_tranposed"))
    return _gemm_common(
        call,
        call.target,
        x,
        w_nk,
        call["x_scale"],
        call["w_scale"],
        out=call.get("y"),
        out_dtype=call.get("dtype"),
        scheme="block",
        x_scale_layout="transposed" if transposed else "logical",
        w_layout="preshuffle_16x16",
        x_scale_dtypes=(torch.float32,),
        allowed_out_dtypes=(torch.bfloat16, torch.float16),
    )


def a4w4(call: CallRecord) -> GemmView:
    """``gemm_a4w4``: fp4x2 A (M, K/2), preshuffled B; e8m0 scales MX-swizzled (padded)."""
    return _gemm_common(
        call,
        call.target,
        call["A"],
        call["B"],
        call["A_scale"],
        call["B_scale"],
        bias=call.get("bias"),
        out_dtype=call.get("dtype"),
        scheme="mx",
        x_scale_layout="mx_swizzle",
        w_scale_layout="mx_swizzle",
        w_layout="preshuffle_16x16" if flag(call.get("bpreshuffle")) else "plain",
        alpha=float(call.get("alpha") or 1.0),
        beta=float(call.get("beta") or 0.0),
    )


def a4w4_asm(call: CallRecord) -> GemmView:
    return _gemm_common(
        call,
        call.target,
        call["A"],
        call["B"],
        call["A_scale"],
        call["B_scale"],
        out=call["out"],
        out_dtype=call["out"].dtype,
        bias=call.get("bias"),
        scheme="mx",
        x_scale_layout="mx_swizzle",
        w_scale_layout="mx_swizzle",
        w_layout="preshuffle_16x16" if flag(call.get("bpreshuffle")) else "plain",
        alpha=float(call.get("alpha") or 1.0),
        beta=float(call.get("beta") or 0.0),
    )


def afp4wfp4(call: CallRecord) -> GemmView:
    """Triton ``gemm_afp4wfp4``: fp4 x (M, K/2), w (N, K/2), e8m0 scales (M, K/32), (N, K/32) by strides."""
    return _gemm_common(
        call,
        call.target,
        call["x"],
        call["w"],
        call["x_scales"],
        call["w_scales"],
        out=call.get("y"),
        out_dtype=call.get("dtype"),
        scheme="mx",
        x_scale_layout="logical",
        w_scale_layout="logical",
    )


def afp4wfp4_preshuffle(call: CallRecord) -> GemmView:
    """Triton ``gemm_afp4wfp4_preshuffle``: weight ``(N/16, K*16)``; scales in the kernel's own shuffle.

    Only shapes, dtypes and numerics of non-scale properties are checked: the
    scale shuffle of this kernel is not one of the layouts quantguard models.
    """
    w = call["w_preshuf"]
    x = call["x_fp4"]
    w_nk = w.reshape(-1, x.shape[-1]) if w.dim() == 2 and w.shape[-1] != x.shape[-1] else w
    view = _gemm_common(
        call,
        call.target,
        x,
        w_nk,
        call["x_scales"],
        call["w_scales"],
        out=call.get("y"),
        out_dtype=call.get("dtype"),
        scheme="mx",
        x_scale_layout="kernel_specific",
        w_scale_layout="kernel_specific",
        w_layout="preshuffle_16x16",
    )
    # ATOM passes MX-swizzled buffers re-viewed as (rows/32, ...) (activations from 32 rows on, else plain (M, G)):
    # only the valid entries of a swizzled buffer mean anything; its padding is uninitialized.
    for name, scale, rows in (("x_scale", call["x_scales"], view.m), ("w_scale", call["w_scales"], view.n)):
        if scale is not None and scale.dim() == 2 and scale.shape[0] != rows:
            view.notes[name + "_bytes"] = "mx_swizzle"
    return view


def batched_prequant(call: CallRecord) -> GemmView:
    """Batched FP8/INT8 GEMM quantizing X per token-group inside the kernel; W per-tensor scaled."""
    x = call["X"]
    transpose_in = flag(call.get("transpose_bm_in"))
    x_bmk = x.transpose(0, 1) if transpose_in else x
    view = _gemm_common(
        call,
        call.target,
        x_bmk,
        call["WQ"],
        None,
        call["w_scale"],
        out=call.get("YQ"),
        bias=call.get("bias"),
        out_dtype=call.get("dtype"),
        scheme="batched_prequant",
        block_k=int(call.get("group_size") or 128),
    )
    view.batch = int(x_bmk.shape[0])
    view.m = int(x_bmk.shape[1])
    view.n = int(call["WQ"].shape[1])
    view.element = element_of(call["WQ"].dtype)
    view.notes["transpose_bm"] = flag(call.get("transpose_bm"))
    return view


def tgemm(call: CallRecord) -> GemmView | None:
    """hipBLASLt ``tgemm.mm(inp, weights, bias, otype, scale_a, scale_b)``: per-tensor (or row) scales."""
    x, w = call["inp"], call["weights"]
    if element_of(x.dtype) is None:
        return None  # an unquantized GEMM: nothing quantization-specific to check
    layout = "preshuffle_16x16" if getattr(w, "is_shuffled", False) else "plain"  # AITER reads the attribute
    return _gemm_common(
        call,
        call.target,
        x,
        w,
        call.get("scale_a"),
        call.get("scale_b"),
        bias=call.get("bias"),
        out_dtype=call.get("otype"),
        scheme="per_tensor",
        w_layout=layout,
    )
