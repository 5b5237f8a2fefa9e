"""How the device kernels address a GEMM's operands: element codes, strides and scale addressing.

One description serves the fused sampled reference and the CUDA-graph
snapshot, so both read bytes and scales exactly as the torch reference does
(:mod:`quantguard.shadow.references`): fp8 bytes in the variant the kernel
reads them as, scales at the addresses of the layout the kernel claims to
read.  :func:`describe` says why a view cannot be described (the callers then
use the torch path, or leave the call site unmonitored in graphs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from quantguard.contracts.views import GemmView
from quantguard.numerics.formats import is_e8m0_dtype
from quantguard.numerics.layouts import memory_order, scale_address_strides
from quantguard.shadow.references import x_scale_read_layout
from quantguard.shadow.triton_kernels import ELEMENT_KINDS, OUT_KINDS

__all__ = ["Operand", "ScaleOperand", "GemmOperands", "describe"]

_FP8_KINDS = {torch.float8_e4m3fn: "e4m3fn", torch.float8_e4m3fnuz: "e4m3fnuz"}


@dataclass(frozen=True)
class Operand:
    """A quantized (or plain) operand: ``tensor`` as the kernels load it, its code, row/element strides."""

    tensor: torch.Tensor
    kind: int
    row_stride: int
    element_stride: int
    width: int  # storage elements per row (bytes for packed fp4)


@dataclass(frozen=True)
class ScaleOperand:
    """Scale group ``(row // row_div, k // group)`` at ``row * row_stride + group_index * group_stride``."""

    tensor: torch.Tensor
    kind: int  # 1 float, 2 e8m0 bytes
    row_stride: int
    group_stride: int
    group: int
    groups: int
    row_div: int = 1


@dataclass(frozen=True)
class GemmOperands:
    x: Operand
    x_scale: ScaleOperand | None
    w: Operand
    w_scale: ScaleOperand | None
    out: torch.Tensor  # (M, N) view of the output
    out_kind: int
    k: int


def _element(tensor: torch.Tensor, view: GemmView, packed_fp4: bool) -> tuple[torch.Tensor, int] | str:
    if packed_fp4:
        return tensor.view(torch.uint8), ELEMENT_KINDS["fp4"]
    if tensor.element_size() == 1 and tensor.dtype != torch.int8:
        read_as = view.fp8_read_as if view.fp8_read_as is not None else tensor.dtype
        name = _FP8_KINDS.get(read_as)
        if name is None:
            return f"1-byte elements read as {read_as} are not decoded by the kernels"
        return tensor.view(torch.uint8), ELEMENT_KINDS[name]
    if tensor.dtype in (torch.int8, torch.bfloat16, torch.float16, torch.float32):
        return tensor, ELEMENT_KINDS["float"]
    return f"{tensor.dtype} elements are not decoded by the kernels"


def _scale_kind(tensor: torch.Tensor) -> tuple[torch.Tensor, int] | str:
    if is_e8m0_dtype(tensor.dtype) or tensor.dtype == torch.uint8:
        return tensor.view(torch.uint8), 2
    if tensor.dtype in (torch.float32, torch.bfloat16, torch.float16):
        return tensor, 1
    return f"{tensor.dtype} scales are not decoded by the kernels"


def _ungrouped(
    scales: torch.Tensor, k: int, scheme: str, count: int, name: str
) -> tuple[torch.Tensor, int] | ScaleOperand | str:
    """What every scale operand shares: its element code, and the one-scale and one-per-row cases.

    Returns the finished operand (or why not), or ``(tensor, kind)`` for a
    grouped (block or MX) scale, which the caller addresses by its layout.
    """
    loaded = _scale_kind(scales)
    if isinstance(loaded, str):
        return loaded
    tensor, kind = loaded
    if scales.numel() == 1:
        return ScaleOperand(tensor, kind, 0, 0, k, 1)
    if scheme in ("per_token", "per_tensor"):
        # (M, 1), (1, N) or flat: the torch reference reads these by their flat order too
        flat = tensor.reshape(-1) if tensor.dim() > 1 and 1 in tensor.shape else tensor
        if flat.dim() != 1 or flat.numel() != count:
            return f"{name} does not hold one scale per {'row' if name == 'x_scale' else 'output channel'}"
        return ScaleOperand(flat, kind, flat.stride(0), 0, k, 1)
    return tensor, kind


def _x_scale(view: GemmView, k: int) -> ScaleOperand | None | str:
    if view.x_scale is None:
        return None
    common = _ungrouped(view.x_scale, k, view.scheme, view.m, "x_scale")
    if not isinstance(common, tuple):
        return common
    group = view.block_k if view.scheme == "block" else view.mx_group
    layout = x_scale_read_layout(view, view.x_scale)
    return _grouped(common[0], layout, view.m, -(-k // group), group, 1)


def _grouped(tensor: torch.Tensor, layout: str, rows: int, groups: int, group: int, row_div: int) -> ScaleOperand | str:
    if layout not in ("logical", "row_major", "transposed"):
        return f"scales read in the {layout} layout are not addressed by the kernels"
    if layout != "logical" and memory_order(tensor) is None:
        return "scales are not one dense block"
    strides = scale_address_strides(layout, tensor, rows, groups)
    if strides is None:
        return f"scales of shape {tuple(tensor.shape)} cannot be read in the {layout} layout"
    return ScaleOperand(tensor, 2 if tensor.dtype == torch.uint8 else 1, strides[0], strides[1], group, groups, row_div)


def _w_scale(view: GemmView, k: int, n: int) -> ScaleOperand | None | str:
    if view.w_scale is None:
        return None
    common = _ungrouped(view.w_scale, k, view.scheme, n, "w_scale")
    if not isinstance(common, tuple):
        return common
    tensor, kind = common
    if view.scheme == "block":
        if tensor.dim() != 2:
            return "block w_scale is not 2-D"
        return ScaleOperand(
            tensor, kind, tensor.stride(0), tensor.stride(1), view.block_k, tensor.shape[1], view.block_n
        )
    if view.scheme == "mx":
        layout = "row_major" if view.w_scale_layout == "logical" else view.w_scale_layout
        return _grouped(tensor, layout, n, -(-k // view.mx_group), view.mx_group, 1)
    return f"scheme {view.scheme!r} is not addressed by the kernels"


def describe(view: GemmView, out: torch.Tensor, allow_preshuffled: bool = False) -> GemmOperands | str:
    """The operands as the kernels address them, or why they cannot be."""
    if view.batch is not None:
        return "batched GEMMs are compared by the torch reference"
    if view.scheme not in ("per_token", "per_tensor", "block", "mx"):
        return f"scheme {view.scheme!r} is compared by the torch reference"
    if view.shuffle_layout is not None and not allow_preshuffled:
        return "preshuffled weights are compared by the torch reference"
    x, w = view.x, view.w
    if not isinstance(x, torch.Tensor) or not isinstance(w, torch.Tensor) or x.dim() < 2 or w.dim() != 2:
        return "x or w is not a matrix"
    x = x.reshape(-1, x.shape[-1])
    packed = view.scheme == "mx"
    k = x.shape[-1] * (2 if packed else 1)
    out_kind = OUT_KINDS.get(str(out.dtype).replace("torch.", ""))
    if out_kind is None:
        return f"{out.dtype} outputs are compared by the torch reference"
    if out.dim() != 2 or out.shape[0] != x.shape[0] or out.shape[1] < view.n:
        return "the output is not (M, N)"
    loaded_x, loaded_w = _element(x, view, packed), _element(w, view, packed)
    for loaded in (loaded_x, loaded_w):
        if isinstance(loaded, str):
            return loaded
    x_scale, w_scale = _x_scale(view, k), _w_scale(view, k, view.n)
    for scale in (x_scale, w_scale):
        if isinstance(scale, str):
            return scale
    (x_tensor, x_kind), (w_tensor, w_kind) = loaded_x, loaded_w  # type: ignore[misc]
    return GemmOperands(
        Operand(x_tensor, x_kind, x_tensor.stride(0), x_tensor.stride(1), x_tensor.shape[1]),
        x_scale,  # type: ignore[arg-type]
        Operand(w_tensor, w_kind, w_tensor.stride(0), w_tensor.stride(1), w_tensor.shape[1]),
        w_scale,  # type: ignore[arg-type]
        out,
        out_kind,
        k,
    )


def scale_args(scale: ScaleOperand | None, fallback: Any) -> tuple[Any, int, int]:
    """``(tensor, row stride, group stride)`` kernel arguments; a dummy pointer when absent."""
    if scale is None:
        return fallback, 0, 0
    return scale.tensor, scale.row_stride, scale.group_stride
