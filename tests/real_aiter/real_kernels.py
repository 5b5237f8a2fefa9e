"""CPU stand-ins for the compiled AITER modules the real-tree scenarios call.

``real_aiter`` serves every JIT module (``module_quant``, ``module_gemm_a8w8_blockscale``, ...)
as a ``FakeExtension`` whose ops raise ``NotImplementedError``.  :func:`plug` puts plain-torch
kernels on those modules, so a call through the real Python layer (``compile_ops``,
``torch_compile_guard``, the tuned-config dispatch) completes with AITER's numerics and memory
layouts: a kernel reads raw memory the way the HIP/CK kernel does (a blockscale x_scale as
``(M, G)`` bytes, the bpreshuffle one as ``(G, M)`` bytes), whatever the strides say.

The numerics are quantguard's simulator references (``quantguard.sim._kernels``); only the
argument lists come from the real ``compile_ops`` stubs.  Runs in the worker process only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from quantguard.sim._kernels import fp8 as fp8_math
from quantguard.sim._kernels import gemm as gemm_math
from quantguard.sim._kernels import layout
from quantguard.sim._kernels import quantize as quant_math
from quantguard.sim._kernels.e8m0 import ROUND_UP

__all__ = ["plug", "PLUGGED"]

GROUP_SIZES = (32, 64, 128)
#: (module, op) -> kernel; filled by the ``_kernel`` decorator below.
PLUGGED: dict[tuple[str, str], Callable[..., Any]] = {}


def _kernel(module: str, *names: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(function: Callable[..., Any]) -> Callable[..., Any]:
        for name in names or (function.__name__,):
            PLUGGED[(module, name)] = function
        return function

    return register


def _arch_fp8() -> torch.dtype:
    from aiter.utility import dtypes

    return dtypes.fp8


def _is_fp4(tensor: torch.Tensor) -> bool:
    return str(tensor.dtype).endswith("float4_e2m1fn_x2")


# -- module_quant ------------------------------------------------------------------------------


def _valid_rows(rows: int, num_rows: Any, num_rows_factor: int) -> int:
    return rows if num_rows is None else min(rows, int(num_rows.reshape(-1)[0]) * num_rows_factor)


def _quantize_into(
    out: torch.Tensor,
    rows: torch.Tensor,
    scales: torch.Tensor,
    group_size: int,
    shuffle: bool,
    e8m0: bool,
    amax_cap: Any = None,
) -> None:
    """Quantize ``rows`` (R, K) into ``out`` and store group (m, g)'s scale where AITER does.

    Unshuffled: ``m*G + g``.  Shuffled: the MX swizzle for e8m0 scales of group 32, else ``g*R + m``
    (the (G, R) bytes ``per_group_quant_hip(transpose_scale=True)`` hands out as an (R, G) tensor).
    """
    element = torch.float4_e2m1fn_x2 if (_is_fp4(out) or out.dtype == torch.uint8) else out.dtype
    values, scale = quant_math.quantize(rows, group_size, element, ROUND_UP if e8m0 else None, _arch_fp8(), amax_cap)
    count, groups = scale.shape
    out.view(torch.uint8).reshape(-1, values.shape[-1])[:count] = values.view(torch.uint8)
    flat = scales.view(torch.uint8).view(-1) if e8m0 else scales.view(-1)
    m = torch.arange(count).unsqueeze(1)
    g = torch.arange(groups).unsqueeze(0)
    if not shuffle:
        index = m * groups + g
    elif e8m0 and group_size == 32:
        index = layout.mx_swizzle_index(count, groups, layout.round_up(groups, 8), rows.device)
    else:
        index = g * count + m
    flat[index.flatten()] = scale.flatten().to(flat.dtype)


@_kernel("module_quant")
def dynamic_per_token_scaled_quant(
    out, input, scales, scale_ub=None, shuffle_scale=False, num_rows=None, num_rows_factor=1
):
    cols = input.shape[-1]
    rows = input.numel() // cols
    fp4 = _is_fp4(out)
    if cols in GROUP_SIZES and out.dtype != torch.int8:
        # Grouped regime: callers pass x.view(-1, group_size); out keeps the real K.
        k = out.shape[-1] * (2 if fp4 else 1)
        m = rows // (k // cols)
        x = input.reshape(m, k)[: _valid_rows(m, num_rows, num_rows_factor)]
        _quantize_into(out, x, scales, cols, shuffle_scale, fp4, scale_ub)
    else:
        x = input.reshape(rows, cols)[: _valid_rows(rows, num_rows, num_rows_factor)]
        _quantize_into(out, x, scales, cols, False, fp4, scale_ub)


@_kernel("module_quant")
def dynamic_per_group_scaled_quant(
    out, input, scales, group_size=32, shuffle_scale=True, num_rows=None, num_rows_factor=1
):
    cols = input.shape[-1]
    rows = input.numel() // cols
    e8m0 = scales.dtype != torch.float32 or _is_fp4(out) or out.dtype == torch.uint8
    x = input.reshape(rows, cols)[: _valid_rows(rows, num_rows, num_rows_factor)]
    _quantize_into(out, x, scales, group_size, shuffle_scale, e8m0)


@_kernel("module_quant")
def dynamic_per_tensor_quant(out, input, scale):
    scale.copy_(
        (input.float().abs().max().clamp_min(quant_math.AMAX_FLOOR) / fp8_math.dtype_max(out.dtype)).reshape(
            scale.shape
        )
    )
    out.copy_(fp8_math.saturate(input.float() / scale.reshape(-1)[0], out.dtype))


@_kernel("module_quant")
def static_per_tensor_quant(out, input, scale):
    out.copy_(fp8_math.saturate(input.float() / scale.float().reshape(-1)[0], out.dtype))


@_kernel("module_quant")
def partial_transpose(out, input, num_rows):
    rows = int(num_rows.reshape(-1)[0])
    head = input.reshape(-1, input.shape[-1])[:rows]
    out.view(-1)[: head.numel()] = head.transpose(0, 1).flatten()


# -- GEMMs ---------------------------------------------------------------------------------------


def _store(out: torch.Tensor, acc: torch.Tensor, bias: Any = None) -> torch.Tensor:
    out[: acc.shape[0]].copy_(gemm_math.finish(acc, bias, out.dtype))
    return out


def _rowscale(XQ, weight, x_scale, w_scale):
    xd, wd = gemm_math.rowscale_operands(XQ, weight, x_scale, w_scale, _arch_fp8())
    return xd @ wd.T


def _read_scale(scale: torch.Tensor, rows: int, cols: int, column_major: bool) -> torch.Tensor:
    """The (rows, cols) grid a kernel reads from the raw memory at ``scale.data_ptr()``."""
    needed = scale.storage_offset() + rows * cols
    if scale.untyped_storage().nbytes() < needed * scale.element_size():
        raise RuntimeError(
            f"x_scale {tuple(scale.shape)} holds fewer than the {rows * cols} values the "
            f"kernel reads (a GPU kernel would read past the buffer)"
        )
    reader = layout.read_col_major if column_major else layout.read_row_major
    return reader(scale, rows, cols)


def _blockscale(XQ, weight, x_scale, w_scale, column_major: bool):
    grid = _read_scale(x_scale, XQ.shape[0], w_scale.shape[1], column_major)
    xd, wd = gemm_math.blockscale_operands(XQ, weight, grid, w_scale, _arch_fp8())
    return xd @ wd.T


@_kernel("module_gemm_a8w8", "gemm_a8w8")
def gemm_a8w8_ck(XQ, WQ, x_scale, w_scale, Out, bias=None, splitK=0):
    return _store(Out, _rowscale(XQ, WQ, x_scale, w_scale), bias)


@_kernel("module_gemm_a8w8_bpreshuffle", "gemm_a8w8_bpreshuffle")
@_kernel("module_gemm_a8w8_bpreshuffle_cktile", "gemm_a8w8_bpreshuffle_cktile")
def gemm_a8w8_bpreshuffle_ck(XQ, WQ, x_scale, w_scale, Out, splitK=0):
    weight = layout.unshuffle_weight(WQ, (16, 16))[:, : XQ.shape[1]]
    return _store(Out, _rowscale(XQ, weight, x_scale, w_scale))


@_kernel("module_gemm_a8w8_blockscale", "gemm_a8w8_blockscale")
def gemm_a8w8_blockscale_ck(XQ, WQ, x_scale, w_scale, Out, splitK=0, kernelName=""):
    return _store(Out, _blockscale(XQ, WQ, x_scale, w_scale, column_major=False))


@_kernel("module_gemm_a8w8_blockscale_cktile", "gemm_a8w8_blockscale_cktile")
def gemm_a8w8_blockscale_cktile(XQ, WQ, x_scale, w_scale, Out, isBpreshuffled=False, splitK=0, kernelName=""):
    weight = layout.unshuffle_weight(WQ, (16, 16)) if isBpreshuffled else WQ
    return _store(Out, _blockscale(XQ, weight, x_scale, w_scale, column_major=bool(isBpreshuffled)))


@_kernel("module_gemm_a8w8_blockscale_bpreshuffle", "gemm_a8w8_blockscale_bpreshuffle")
def gemm_a8w8_blockscale_bpreshuffle_ck(XQ, WQ, x_scale, w_scale, Out, kernelName=""):
    weight = layout.unshuffle_weight(WQ, (16, 16))
    return _store(Out, _blockscale(XQ, weight, x_scale, w_scale, column_major=True))


@_kernel("module_gemm_a8w8_blockscale_bpreshuffle_cktile", "gemm_a8w8_blockscale_bpreshuffle_cktile")
def gemm_a8w8_blockscale_bpreshuffle_cktile(XQ, WQ, x_scale, w_scale, Out, isBpreshuffled=True, kernelName=""):
    return gemm_a8w8_blockscale_bpreshuffle_ck(XQ, WQ, x_scale, w_scale, Out)


@_kernel("module_gemm_a8w8_blockscale_bpreshuffle_asm", "gemm_a8w8_blockscale_bpreshuffle_asm")
def gemm_a8w8_blockscale_bpreshuffle_asm(
    A, B, out, A_scale, B_scale, bias=None, splitK=-1, kernelName=None, bpreshuffle=1, zero_bias_buf=None
):
    weight = layout.unshuffle_weight(B, (16, 16)) if bpreshuffle else B
    return _store(out, _blockscale(A, weight, A_scale, B_scale, column_major=True), bias)


def padded_m(M: int, N: int, K: int, gl: int) -> int:
    """Stand-in for ``module_gemm_common.getPaddedM`` (a ctypes op whose int-only call needs a CUDA
    dummy tensor): no padding, so tuned configs are looked up by the exact M."""
    return M


def _no_stream(*args: Any, **kwargs: Any) -> None:
    """``module._set_current_hip_stream``: there is no HIP stream on a CPU."""


def plug(real_aiter: Any) -> None:
    """Put :data:`PLUGGED` on ``real_aiter``'s fake extension modules (``_FAKES``).

    Also lets ``compile_ops(develop=True)`` ops run on a CPU: that path converts every tensor
    to a pybind ``aiter_tensor_t`` and sets the current HIP stream first, so the converter is
    the identity and the stream setter does nothing.  ``get_padded_m`` (a ctypes op) is replaced
    where the GEMM modules bound it: its int-only call allocates its dummy tensor on CUDA.
    """
    import sys

    import aiter.jit.core as core

    for (module, name), function in PLUGGED.items():
        function.__doc__ = "Members:"  # compile_ops skips its pybind docstring check for these
        setattr(real_aiter.fake_get_module(module), name, function)
    for module in {module for module, _ in PLUGGED}:
        real_aiter.fake_get_module(module)._set_current_hip_stream = _no_stream
    core._pybind_develop_hooks_cache = (lambda tensor: tensor, torch.Tensor, lambda device: 0, lambda: 0)
    for name in (
        "aiter.ops.gemm_op_common",
        "aiter.ops.gemm_op_a8w8",
        "aiter.ops.gemm_op_a4w4",
        "aiter.ops.batched_gemm_op_a8w8",
    ):
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "get_padded_m"):
            module.get_padded_m = padded_m
