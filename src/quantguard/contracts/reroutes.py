"""Safe Triton equivalents for blocked ASM kernels (``on_block="reroute"``), with converted arguments.

Each adapter takes the blocked call and returns what the ASM kernel should
have returned, computed by the Triton kernel AITER itself uses in CK-free
builds: weights preshuffled for ASM are unshuffled (once per weight, cached
weakly) or viewed ``(N/16, K*16)`` for the preshuffle-aware Triton kernel,
and the transposed x_scale convention is passed on explicitly.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from quantguard.numerics.layouts import unshuffle_weight

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.calls import CallRecord

__all__ = [
    "a8w8_asm_to_triton",
    "flatmm_asm_to_triton",
    "blockscale_bpreshuffle_asm_to_triton",
    "gfx950_blockscale_asm_to_triton",
]

_UNSHUFFLED: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _plain_weight(weight: Any, layout: tuple[int, int]) -> Any:
    cached = _UNSHUFFLED.get(weight)
    if cached is None:
        cached = unshuffle_weight(weight, layout)
        try:
            _UNSHUFFLED[weight] = cached
        except TypeError:
            pass
    return cached


def _triton(module: str, name: str) -> Any:
    imported = __import__(f"aiter.ops.triton.gemm.basic.{module}", fromlist=[name])
    return getattr(imported, name)


def a8w8_asm_to_triton(call: CallRecord) -> Any:
    """``gemm_a8w8_ASM`` (weight shuffled with layout (32, 16)) → Triton ``gemm_a8w8`` on the plain weight."""
    kernel = _triton("gemm_a8w8", "gemm_a8w8")
    return kernel(
        call["XQ"],
        _plain_weight(call["WQ"], (32, 16)),
        call["x_scale"],
        call["w_scale"],
        call.get("bias"),
        dtype=call.get("dtype"),
    )


def flatmm_asm_to_triton(call: CallRecord) -> Any:
    """``flatmm_a8w8_blockscale_ASM`` → Triton ``gemm_a8w8_blockscale``.

    The weight is unshuffled from layout (16, 32); the (K/128, M) and (K/128, N/128)
    scales are passed as transposed views (Triton reads scales through their strides).
    """
    kernel = _triton("gemm_a8w8_blockscale", "gemm_a8w8_blockscale")
    return kernel(
        call["XQ"],
        _plain_weight(call["WQ"], (16, 32)),
        call["x_scale"].t(),
        call["w_scale"].t(),
        dtype=call.get("dtype"),
    )


def _preshuffle_view(weight: Any) -> Any:
    n, k = weight.shape[-2], weight.shape[-1]
    return weight.reshape(n // 16, k * 16)


def blockscale_bpreshuffle_asm_to_triton(call: CallRecord) -> Any:
    """``gemm_a8w8_blockscale_bpreshuffle_asm(A, B, out, A_scale, B_scale)`` → Triton preshuffle kernel into ``out``."""
    kernel = _triton("gemm_a8w8_blockscale", "gemm_a8w8_blockscale_preshuffle")
    out, scale = call["out"], call["A_scale"]
    result = kernel(
        call["A"],
        _preshuffle_view(call["B"]),
        scale,
        call["B_scale"],
        dtype=out.dtype,
        is_x_scale_tranposed=scale.stride(0) != 1,
    )
    out.copy_(result)
    return out


def gfx950_blockscale_asm_to_triton(call: CallRecord) -> Any:
    """``gfx950_a8w8_blockscale_ASM(XQ, WQ, x_scale, w_scale, Y)`` (row-major x_scale) → Triton preshuffle kernel."""
    kernel = _triton("gemm_a8w8_blockscale", "gemm_a8w8_blockscale_preshuffle")
    out = call["Y"]
    result = kernel(
        call["XQ"],
        _preshuffle_view(call["WQ"]),
        call["x_scale"],
        call["w_scale"],
        dtype=out.dtype,
        is_x_scale_tranposed=False,
    )
    out.copy_(result)
    return out
