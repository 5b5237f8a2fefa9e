"""How the AITER kernels quantguard checks only for metadata read: their operands, and the split-cat GEMMs.

``operands`` exposes named arguments as a :class:`GemmView`'s ``x``/``w`` and
``out`` (the view ``fp8_variant`` and ``nonfinite`` read) without modelling
the kernel's numerics; the blockscale and MXFP4 split-cat GEMMs get the
blockscale/MX scale layouts, so their scale checks apply.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from quantguard.contracts.aiter._common import arch_fp8
from quantguard.contracts.views import GemmView

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.calls import CallRecord

__all__ = ["afp4_split_cat", "blockscale_split_cat", "operands"]


def _first(result: Any) -> Any:
    while isinstance(result, (tuple, list)) and result:
        result = result[0]
    return result


def operands(x: str | None, w: str | None = None, out: str | None = None) -> Callable[[CallRecord], GemmView]:
    """An adapter exposing the named arguments as ``x``/``w`` and ``out`` (argument, else first result)."""

    def interpret(call: CallRecord) -> GemmView:
        written = call.get(out) if out else _first(call.result)
        return GemmView(
            call.target,
            call.get(x) if x else None,
            call.get(w) if w else None,
            None,
            None,
            out=written,
            scheme="operands",
        )

    interpret.__name__ = f"operands_{x}_{w}_{out}"
    return interpret


# -- blockscale split-cat GEMM: the blockscale layouts apply --------------------------------------


def blockscale_split_cat(call: CallRecord) -> GemmView:
    """x (M, K) fp8, w preshuffled (N/16, K*16), x_scale (M, K/128) transposed by default, w_scale block."""
    import torch

    x, w = call["x"], call["w"]
    k = int(x.shape[-1])
    w_nk = w.reshape(-1, k) if w.dim() == 2 and int(w.shape[-1]) != k else w
    transposed = bool(call.get("is_x_scale_transposed", True))
    from quantguard.numerics.formats import element_format

    return GemmView(
        call.target,
        x,
        w_nk,
        call["x_scale"],
        call["w_scale"],
        out=call.get("y"),
        out_dtype=call.get("dtype"),
        scheme="block",
        element=element_format(x.dtype),
        x_scale_layout="transposed" if transposed else "logical",
        w_layout="preshuffle_16x16",
        x_scale_dtypes=(torch.float32,),
        fp8_read_as=arch_fp8(call),
        m=int(x.reshape(-1, k).shape[0]),
        n=int(w_nk.shape[-2]),
        k=k,
        notes={"split_cat": True},
    )


def afp4_split_cat(call: CallRecord) -> GemmView:
    """fp4 x (M, K/2), preshuffled w; MX scales in the kernel's own shuffle (shapes and dtypes only)."""
    x, w = call["x"], call["w"]
    width = int(x.shape[-1])
    w_nk = w.reshape(-1, width) if w.dim() == 2 and int(w.shape[-1]) != width else w
    from quantguard.numerics.formats import FP4_E2M1

    view = GemmView(
        call.target,
        x,
        w_nk,
        call["x_scale"],
        call["w_scale"],
        out=call.get("y"),
        out_dtype=call.get("dtype"),
        scheme="mx",
        element=FP4_E2M1,
        x_scale_layout="kernel_specific",
        w_scale_layout="kernel_specific",
        w_layout="preshuffle_16x16",
        m=int(x.reshape(-1, width).shape[0]),
        n=int(w_nk.shape[-2]),
        k=2 * width,
    )
    for name, scale, rows in (("x_scale", call["x_scale"], view.m), ("w_scale", call["w_scale"], view.n)):
        if scale is not None and scale.dim() == 2 and scale.shape[0] != rows:
            view.notes[name + "_bytes"] = "mx_swizzle"
    return view
