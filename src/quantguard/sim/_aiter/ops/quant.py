"""Simulated ``aiter.ops.quant``: HIP quant kernels, their Python front ends, torch references.

Kernel semantics follow ``csrc/kernels/quant_kernels.cu``:

* fp32 scales are ``max(amax, 1e-10) / dtype_max``; values are divided by the
  scale and saturated into the element format.
* e8m0 scales use the HIP default rounding (RoundUp); fp4 output always has
  e8m0 scales.
* ``dynamic_per_token_scaled_quant`` has two regimes: true per-token, and, when
  the input's last dim is 32/64/128 (callers pass ``x.view(-1, gs)``), a
  per-group quant where ``out.shape[-1]`` is the real K and group (m, g) is
  stored at ``g * M + m`` with ``shuffle_scale`` else ``m * G + g``.
* In a CK-free build ``dynamic_per_token_scaled_quant`` and
  ``partial_transpose`` run Triton fallbacks, looked up as module globals.
  Those fallbacks (and the faults in them) are the behaviour of AITER's
  CK-free branch; on AITER main both are plain ``module_quant`` kernels.

As in AITER e4048607, the HIP kernels are ``compile_ops`` ops and
``per_token_quant_hip`` / ``per_group_quant_hip`` are ``torch_compile_guard``
ops: the module attributes are opaque ``(*args, **kwargs)`` wrappers around
``torch.ops.aiter.<name>``. ``per_1x32_mx_quant_hip``, ``per_tensor_quant_hip``
and the Triton/torch front ends stay plain functions, as there.
"""

import functools

import torch
from torch import Tensor

from quantguard.sim import _state
from quantguard.sim._kernels import e8m0 as _e8m0
from quantguard.sim._kernels import fp8 as _fp8
from quantguard.sim._kernels import layout as _layout
from quantguard.sim._kernels import quantize as _quantize

from ..jit.core import compile_ops, is_ck_free
from ..jit.utils.torch_guard import torch_compile_guard
from ..utility import dtypes
from . import triton
from .enum import QuantType

__all__ = [
    "dynamic_per_group_scaled_quant",
    "dynamic_per_tensor_quant",
    "dynamic_per_token_scaled_quant",
    "get_dtype_max",
    "get_hip_quant",
    "get_torch_quant",
    "get_triton_quant",
    "partial_transpose",
    "per_1x32_f4_quant",
    "per_1x32_f4_quant_hip",
    "per_1x32_f4_quant_triton",
    "per_1x32_mx_quant_hip",
    "per_group_quant_hip",
    "per_tensor_quant",
    "per_tensor_quant_hip",
    "per_tensor_quant_triton",
    "per_token_quant_hip",
    "per_token_quant_triton",
    "pertoken_quant",
    "static_per_tensor_quant",
]

# HIP e8m0 producers derive scales with kDefaultMxScaleRoundMode (RoundUp).
_HIP_E8M0_MODE = _e8m0.CEIL if _state.fault_active("e8m0_ceil_rounding", "hip") else _e8m0.ROUND_UP
_GROUP_SIZES = (32, 64, 128)


# --------------------------------------------------------------------------
# Torch references
# --------------------------------------------------------------------------


@functools.lru_cache
def get_dtype_max(dtype):
    return _fp8.dtype_max(dtype)


def pertoken_quant(
    x,
    scale=None,
    x_scale=None,
    scale_dtype=dtypes.fp32,
    quant_dtype=dtypes.i8,
    dtypeMax=None,
):
    """Torch reference per-row quant; ``x_scale`` is a SmoothQuant multiplier."""
    x = x.to(dtypes.fp32)
    hidden_states = x if x_scale is None else x * x_scale
    if dtypeMax is None:
        dtypeMax = get_dtype_max(quant_dtype)
    per_token_scale = scale
    if scale is None:
        per_token_scale = hidden_states.abs().amax(dim=-1, keepdim=True) / dtypeMax
        per_token_scale[per_token_scale == 0] = 1
    y = (hidden_states / per_token_scale).to(dtype=quant_dtype)
    return y, per_token_scale.to(scale_dtype)


def per_tensor_quant(x, scale=None, scale_dtype=dtypes.fp32, quant_dtype=dtypes.i8, dtypeMax=None):
    """Torch reference per-tensor quant."""
    x = x.to(dtypes.fp32)
    if scale is None:
        if dtypeMax is None:
            dtypeMax = get_dtype_max(quant_dtype)
        scale = x.abs().max() / dtypeMax
    return (x / scale).to(quant_dtype), scale.view(1).to(scale_dtype)


def per_1x32_f4_quant(x, scale=None, quant_dtype=dtypes.fp4x2, shuffle=False):
    """Torch reference MXFP4 quant (RoundUp e8m0 scales, the AITER default)."""
    if scale is not None or quant_dtype != dtypes.fp4x2:
        raise ValueError("per_1x32_f4_quant only does dynamic fp4x2 quantization")
    rows = x.reshape(-1, x.shape[-1])
    y, scale_bytes = _quantize.quantize(rows, 32, dtypes.fp4x2, _e8m0.ROUND_UP, dtypes.fp8)
    scale = scale_bytes.view(dtypes.fp8_e8m0)
    if shuffle:
        scale = _layout.mx_swizzle(scale)
    return y.view(*x.shape[:-1], -1), scale


def _per_1x128_torch_quant(x, scale=None, quant_dtype=dtypes.i8):
    m, n = x.shape
    y, y_scale = pertoken_quant(x.view(-1, 128), scale=scale, quant_dtype=quant_dtype)
    return y.view(m, n), y_scale.view(m, n // 128)


def _no_quant(*args, **kwargs):
    return args[0], None


def _unsupported(q_type):
    def raise_not_implemented(*args, **kwargs):
        raise NotImplementedError(f"unsupported quant type {q_type=}")

    return raise_not_implemented


@functools.lru_cache
def get_torch_quant(qType):
    table = {
        QuantType.No: _no_quant,
        QuantType.per_Tensor: per_tensor_quant,
        QuantType.per_Token: pertoken_quant,
        QuantType.per_1x32: per_1x32_f4_quant,
        QuantType.per_1x128: _per_1x128_torch_quant,
    }
    return table.get(qType, _unsupported(qType))


@functools.lru_cache
def get_hip_quant(qType):
    table = {
        QuantType.No.value: _no_quant,
        QuantType.per_Tensor.value: per_tensor_quant_hip,
        QuantType.per_Token.value: per_token_quant_hip,
        QuantType.per_1x32.value: per_1x32_mx_quant_hip,
        QuantType.per_1x128.value: functools.partial(per_group_quant_hip, group_size=128),
    }
    return table.get(qType.value, _unsupported(qType))


@functools.lru_cache
def get_triton_quant(qType):
    table = {
        QuantType.No: _no_quant,
        QuantType.per_Tensor: per_tensor_quant_triton,
        QuantType.per_Token: per_token_quant_triton,
        QuantType.per_1x32: per_1x32_f4_quant_triton,
    }
    return table.get(qType, _unsupported(qType))


# --------------------------------------------------------------------------
# Kernel bodies (shared by the HIP kernels and the clean Triton fallbacks)
# --------------------------------------------------------------------------


def _valid_rows(rows, num_rows, num_rows_factor):
    if num_rows is None:
        return rows
    return min(rows, int(num_rows.reshape(-1)[0]) * num_rows_factor)


def _element_dtype(out):
    return dtypes.fp4x2 if out.dtype in (dtypes.fp4x2, dtypes.u8) else out.dtype


def _quantize_rows_into(out, rows, scales, group_size, shuffle, e8m0_mode, amax_cap=None):
    """Quantize (valid, K) rows into the leading rows of ``out``; store group scales.

    Scale (m, g) goes to the MX swizzle for e8m0 + group 32 + shuffle, to
    ``g * valid + m`` for any other shuffle, else to ``m * G + g``.
    """
    valid, k = rows.shape
    groups = k // group_size
    values, scale = _quantize.quantize(rows, group_size, _element_dtype(out), e8m0_mode, dtypes.fp8, amax_cap)
    out_bytes = out.view(torch.uint8).reshape(-1, values.shape[-1])
    out_bytes[:valid] = values.view(torch.uint8)
    flat = scales.view(-1) if e8m0_mode is None else scales.view(torch.uint8).view(-1)
    m = torch.arange(valid, device=rows.device).unsqueeze(1)
    g = torch.arange(groups, device=rows.device).unsqueeze(0)
    if not shuffle:
        index = m * groups + g
    elif e8m0_mode is not None and group_size == 32:
        index = _layout.mx_swizzle_index(valid, groups, _layout.round_up(groups, 8), rows.device)
    else:
        index = g * valid + m
    flat[index.flatten()] = scale.flatten().to(flat.dtype)


def _per_token_scaled_quant(out, input, scales, scale_ub, shuffle_scale, num_rows, num_rows_factor):
    cols = input.shape[-1]
    rows = input.numel() // cols
    fp4_out = _element_dtype(out) == dtypes.fp4x2
    e8m0_mode = _HIP_E8M0_MODE if fp4_out else None
    if cols in _GROUP_SIZES:
        # Grouped regime: ``input`` is x.view(-1, gs) and ``out`` keeps the real K.
        k = cols if out.dtype == dtypes.i8 else out.shape[-1] * (2 if fp4_out else 1)
        m = rows // (k // cols)
        x = input.reshape(m, k)[: _valid_rows(m, num_rows, num_rows_factor)]
        _quantize_rows_into(out, x, scales, cols, shuffle_scale, e8m0_mode, scale_ub)
    else:
        x = input.reshape(rows, cols)[: _valid_rows(rows, num_rows, num_rows_factor)]
        _quantize_rows_into(out, x, scales, cols, False, e8m0_mode, scale_ub)


def _transpose_rows(out, input, num_rows):
    rows = int(num_rows.reshape(-1)[0])
    head = input.reshape(-1, input.shape[-1])[:rows]
    out.view(-1)[: head.numel()] = head.transpose(0, 1).flatten()


# --------------------------------------------------------------------------
# HIP kernels (module_quant: builds without CK)
# --------------------------------------------------------------------------


@compile_ops("module_quant")
def static_per_tensor_quant(out: Tensor, input: Tensor, scale: Tensor) -> None:
    """``out = saturate(input / scale)`` with a given (1,) fp32 scale."""
    out.copy_(_fp8.saturate(input.float() / scale.float().reshape(-1)[0], out.dtype))


@compile_ops("module_quant")
def dynamic_per_tensor_quant(out: Tensor, input: Tensor, scale: Tensor) -> None:
    """Write ``amax / dtype_max`` into ``scale`` and quantize with it."""
    scale.copy_((input.float().abs().max() / _fp8.dtype_max(out.dtype)).reshape(scale.shape))
    out.copy_(_fp8.saturate(input.float() / scale.reshape(-1)[0], out.dtype))


@compile_ops("module_quant")
def dynamic_per_group_scaled_quant(
    out: torch.Tensor,
    input: torch.Tensor,
    scales: torch.Tensor,
    group_size: int = 32,
    shuffle_scale: bool = True,
    num_rows: torch.Tensor | None = None,
    num_rows_factor: int = 1,
) -> None:
    """Per-group quant; ``scales.dtype`` picks e8m0 (fp8_e8m0/uint8) or fp32 scales.

    fp4x2 output always uses e8m0; int8 output only fp32. The e8m0 shuffle of
    group 32 is the MX swizzle (padding bytes are left as they were); other
    shuffles store (G, M).
    """
    if group_size not in _GROUP_SIZES:
        raise RuntimeError(f"only support group_size [32, 64, 128], got {group_size}")
    e8m0_scales = scales.dtype in (dtypes.fp8_e8m0, dtypes.u8)
    if not e8m0_scales and scales.dtype != dtypes.fp32:
        raise RuntimeError(f"expects scales.dtype in {{fp8_e8m0, u8, fp32}}, got {scales.dtype}")
    if out.dtype == dtypes.i8 and e8m0_scales:
        raise RuntimeError("i8 output does not support e8m0 scale")
    cols = input.shape[-1]
    rows = input.numel() // cols
    valid = _valid_rows(rows, num_rows, num_rows_factor)
    x = input.reshape(rows, cols)[:valid]
    use_e8m0 = e8m0_scales or _element_dtype(out) == dtypes.fp4x2
    e8m0_mode = _HIP_E8M0_MODE if use_e8m0 else None
    _quantize_rows_into(out, x, scales, group_size, shuffle_scale, e8m0_mode)


# --------------------------------------------------------------------------
# Triton fallbacks of AITER's CK-free branch (not on AITER main)
# --------------------------------------------------------------------------

if _state.fault_active("triton_quant_ignores_shuffle_scale", "triton"):

    def _fallback_dynamic_per_token_scaled_quant(
        out, input, scales, scale_ub=None, shuffle_scale=False, num_rows=None, num_rows_factor=1
    ):
        # The broken fallback never looks at shuffle_scale: scales land row-major.
        _per_token_scaled_quant(out, input, scales, scale_ub, False, num_rows, num_rows_factor)

else:

    def _fallback_dynamic_per_token_scaled_quant(
        out, input, scales, scale_ub=None, shuffle_scale=False, num_rows=None, num_rows_factor=1
    ):
        _per_token_scaled_quant(out, input, scales, scale_ub, shuffle_scale, num_rows, num_rows_factor)


if _state.fault_active("partial_transpose_noop", "triton"):

    def _fallback_partial_transpose(out, input, num_rows):
        # The broken fallback returns before writing anything.
        return None

else:

    def _fallback_partial_transpose(out, input, num_rows):
        _transpose_rows(out, input, num_rows)


# --------------------------------------------------------------------------
# HIP kernels that the CK-free branch reroutes to the fallbacks above
# --------------------------------------------------------------------------


@compile_ops("module_quant")
def dynamic_per_token_scaled_quant(
    out: torch.Tensor,
    input: torch.Tensor,
    scales: torch.Tensor,
    scale_ub: torch.Tensor | None = None,
    shuffle_scale: bool = False,
    num_rows: torch.Tensor | None = None,
    num_rows_factor: int = 1,
) -> None:
    """Dynamic per-token (or, for a 32/64/128 last dim, per-group) quant into ``out``.

    ``scale_ub`` caps each amax; rows beyond ``num_rows * num_rows_factor``
    are left untouched. fp4x2 output always gets e8m0 RoundUp scale bytes
    (MX-swizzled with ``shuffle_scale`` in the grouped regime), whatever the
    dtype of ``scales``: the kernel writes bytes, not fp32 values.
    """
    if is_ck_free():
        _fallback_dynamic_per_token_scaled_quant(out, input, scales, scale_ub, shuffle_scale, num_rows, num_rows_factor)
    else:
        _per_token_scaled_quant(out, input, scales, scale_ub, shuffle_scale, num_rows, num_rows_factor)


@compile_ops("module_quant")
def partial_transpose(out: Tensor, input: Tensor, num_rows: Tensor) -> None:
    """Write ``input[:r]`` transposed into the first ``r * cols`` elements of ``out``.

    ``r`` is the int32 ``num_rows``: ``out_flat[c * r + row] = input[row, c]``;
    the rest of ``out`` is untouched.
    """
    if is_ck_free():
        _fallback_partial_transpose(out, input, num_rows)
    else:
        _transpose_rows(out, input, num_rows)


# --------------------------------------------------------------------------
# Front ends
# --------------------------------------------------------------------------


def _static_scale_unsupported(scale):
    if scale is not None:
        raise ValueError("unsupported: static per token quant")


@torch_compile_guard()
def per_token_quant_hip(
    x: Tensor,
    scale: Tensor | None = None,
    quant_dtype: torch.dtype = dtypes.i8,
    num_rows: Tensor | None = None,
    num_rows_factor: int = 1,
) -> tuple[Tensor, Tensor]:
    _static_scale_unsupported(scale)
    y_scale = torch.empty((*x.shape[:-1], 1), dtype=dtypes.fp32, device=x.device)
    y = torch.empty(x.shape, dtype=quant_dtype, device=x.device)
    dynamic_per_token_scaled_quant(y, x, y_scale, num_rows=num_rows, num_rows_factor=num_rows_factor)
    return y, y_scale


@torch_compile_guard()
def per_group_quant_hip(
    x: Tensor,
    scale: Tensor | None = None,
    quant_dtype: torch.dtype = dtypes.i8,
    group_size: int = 128,
    transpose_scale: bool = False,
    num_rows: "torch.Tensor | None" = None,
    num_rows_factor: int = 1,
    scale_type: torch.dtype = dtypes.fp32,
) -> "tuple[Tensor, Tensor]":
    """Per-1xgroup quant. With ``transpose_scale`` the (M, G) scale holds (G, M) bytes."""
    _static_scale_unsupported(scale)
    if group_size not in _GROUP_SIZES:
        raise AssertionError(f"unsupported group size {group_size=}, only support [32, 64, 128]")
    shape = x.shape
    y_scale = torch.empty((*shape[:-1], shape[-1] // group_size), dtype=scale_type, device=x.device)
    y = torch.empty(shape, dtype=quant_dtype, device=x.device)
    if scale_type == dtypes.fp8_e8m0:
        dynamic_per_group_scaled_quant(
            y,
            x,
            y_scale,
            group_size,
            shuffle_scale=transpose_scale,
            num_rows=num_rows,
            num_rows_factor=num_rows_factor,
        )
    else:
        dynamic_per_token_scaled_quant(
            y,
            x.view(-1, group_size),
            y_scale,
            shuffle_scale=transpose_scale,
            num_rows=num_rows,
            num_rows_factor=num_rows_factor,
        )
    return y, y_scale


def per_1x32_mx_quant_hip(
    x,
    scale=None,
    quant_dtype=dtypes.fp4x2,
    shuffle=False,
    num_rows: torch.Tensor | None = None,
    num_rows_factor=1,
    scale_type=None,
):
    """1x32 MX quant: fp4x2 (always e8m0) or fp8 (fp32 scales unless ``scale_type`` is e8m0).

    A shuffled e8m0 scale is the (pad256(M), pad8(G)) MX-swizzled buffer.
    """
    m, n = x.shape
    if n % 32:
        raise AssertionError(f"n={n} must be divisible by 32")
    if quant_dtype == dtypes.fp4x2:
        if scale_type not in (None, dtypes.fp8_e8m0):
            raise ValueError(f"fp4x2 output requires e8m0 scale; got scale_type={scale_type}")
        out_cols, scale_dtype = n // 2, dtypes.fp8_e8m0
    elif quant_dtype == dtypes.fp8:
        out_cols, scale_dtype = n, scale_type or dtypes.fp32
        if scale_dtype not in (dtypes.fp32, dtypes.fp8_e8m0):
            raise ValueError(f"fp8 output expects scale_type in {{fp32, fp8_e8m0}}, got {scale_dtype}")
        if shuffle and scale_dtype == dtypes.fp32:
            raise NotImplementedError("per_1x32_mx_quant_hip: fp32 scales cannot be shuffled")
    else:
        raise ValueError(f"per_1x32_mx_quant_hip: unsupported quant_dtype {quant_dtype}")
    _static_scale_unsupported(scale)
    groups = (n + 31) // 32
    if scale_dtype == dtypes.fp8_e8m0:
        scale_shape = _layout.mx_swizzled_shape(m, groups) if shuffle else (m, groups)
        y_scale = torch.empty(scale_shape, dtype=torch.uint8, device=x.device).view(scale_dtype)
    else:
        y_scale = torch.empty((m, groups), dtype=dtypes.fp32, device=x.device)
    y = torch.empty(m, out_cols, dtype=quant_dtype, device=x.device)
    dynamic_per_group_scaled_quant(
        y, x, y_scale, 32, shuffle_scale=shuffle, num_rows=num_rows, num_rows_factor=num_rows_factor
    )
    return y, y_scale


def per_1x32_f4_quant_hip(
    x,
    scale=None,
    quant_dtype=dtypes.fp4x2,
    shuffle=False,
    num_rows: torch.Tensor | None = None,
    num_rows_factor=1,
):
    """fp4-only wrapper of :func:`per_1x32_mx_quant_hip`."""
    if quant_dtype != dtypes.fp4x2:
        raise AssertionError("per_1x32_f4_quant_hip is fp4-only; use per_1x32_mx_quant_hip for fp8")
    return per_1x32_mx_quant_hip(
        x,
        scale=scale,
        quant_dtype=quant_dtype,
        shuffle=shuffle,
        num_rows=num_rows,
        num_rows_factor=num_rows_factor,
    )


def per_tensor_quant_hip(
    x,
    scale=None,
    quant_dtype=dtypes.i8,
    num_rows: torch.Tensor | None = None,
    num_rows_factor=1,
):
    """Per-tensor quant: dynamic when ``scale`` is None, else static with that scale."""
    if num_rows is not None or num_rows_factor != 1:
        raise AssertionError("num_rows is not supported for per_tensor_quant_hip")
    if quant_dtype not in (dtypes.fp8, dtypes.i8):
        raise ValueError(f"unsupported: {quant_dtype=}")
    y = torch.empty(x.shape, dtype=quant_dtype, device=x.device)
    if scale is None:
        scale = torch.empty(1, dtype=dtypes.fp32, device=x.device)
        dynamic_per_tensor_quant(y, x, scale)
    else:
        static_per_tensor_quant(y, x, scale)
    return y, scale.view(1)


def per_token_quant_triton(x, scale=None, quant_dtype=dtypes.i8):
    _static_scale_unsupported(scale)
    y = torch.empty(x.shape, dtype=quant_dtype, device=x.device)
    y_scale = torch.empty((*x.shape[:-1], 1), dtype=dtypes.fp32, device=x.device)
    triton.quant.dynamic_per_token_quant_fp8_i8(y.view(-1, x.shape[-1]), x.view(-1, x.shape[-1]), y_scale)
    return y, y_scale


def per_1x32_f4_quant_triton(x, scale=None, quant_dtype=dtypes.fp4x2, shuffle=False):
    """Triton MXFP4 quant (round-to-even scales), optionally MX-swizzled."""
    _static_scale_unsupported(scale)
    if quant_dtype != dtypes.fp4x2:
        raise AssertionError("per_1x32_f4_quant_triton is fp4-only")
    y, y_scale = triton.quant.dynamic_mxfp4_quant(x)
    y_scale = y_scale.contiguous().view(dtypes.fp8_e8m0)
    if shuffle:
        y_scale = _layout.mx_swizzle(y_scale)
    return y.view(quant_dtype), y_scale


def per_tensor_quant_triton(x, scale=None, quant_dtype=dtypes.i8):
    y = torch.empty(x.shape, dtype=quant_dtype, device=x.device)
    rows = x.view(-1, x.shape[-1])
    if scale is None:
        scale = torch.zeros(1, dtype=dtypes.fp32, device=x.device)
        triton.quant.dynamic_per_tensor_quant_fp8_i8(y.view(rows.shape), rows, scale)
    else:
        triton.quant.static_per_tensor_quant_fp8_i8(y.view(rows.shape), rows, scale)
    return y, scale
