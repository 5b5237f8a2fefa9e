"""Simulated ``aiter.ops.gemm_op_a8w8``: FP8/INT8 GEMMs on CK, CK-tile and ASM kernels.

Layouts each kernel reads (as in AITER):

* ``gemm_a8w8`` / ``gemm_a8w8_CK``: plain (N, K) weight, x_scale (M, 1), w_scale (N, 1).
* ``gemm_a8w8_bpreshuffle``: weight from ``shuffle_weight(w, (16, 16))``.
* ``gemm_a8w8_ASM``: weight shuffled with layout (32, 16), fp32 scales, bias required.
* ``gemm_a8w8_blockscale``: row-major x_scale (M, ceil(K/128)), w_scale
  (ceil(N/128), ceil(K/128)); ``isBpreshuffled`` on gfx950 goes to
  ``gfx950_a8w8_blockscale_ASM`` through a module-global lookup.
* ``flatmm_a8w8_blockscale_ASM``: weight shuffled with layout (16, 32), x_scale
  (K/128, M) and w_scale (K/128, N/128) (transposed in shape), fp16 output.
* ``gemm_a8w8_blockscale_bpreshuffle``: (16, 16)-shuffled weight and a
  transposed x_scale (bytes (G, M)); a tuned config may route to Triton or to
  ``gemm_a8w8_blockscale_bpreshuffle_asm``.

``get_gfx`` is the live GPU (``get_gfx_runtime``), as in AITER. FP8 operands
are read as the arch's FP8 flavour whatever their dtype says.

As in AITER e4048607, ``gemm_a8w8``, ``gemm_a8w8_bpreshuffle``,
``gemm_a8w8_blockscale`` and ``gemm_a8w8_blockscale_bpreshuffle`` are
``torch_compile_guard`` ops (with AITER's shape-only fakes) and every CK/ASM
kernel is a ``compile_ops`` op; ``gemm_a8w8_ASM``, ``gemm_a8w8_CK``,
``gemm_a8w8_asm``, ``flatmm_*``, ``gemm_a8w8_blockscale_bpreshuffle_asm`` and
``gfx950_a8w8_blockscale_ASM`` stay plain functions.

At AITER HEAD ``gfx950_a8w8_blockscale_ASM`` calls a
``gfx950_a8w8_blockscale_asm`` that is defined nowhere, so it (and
``gemm_a8w8_blockscale(isBpreshuffled=True)`` on gfx950) raises ``NameError``.
An install with ``release_build=True`` defines that kernel (a working
row-major-x_scale ASM blockscale GEMM) instead.
"""

import torch
from torch import Tensor

from quantguard.sim import _state
from quantguard.sim._kernels import gemm as _gemm
from quantguard.sim._kernels import layout as _layout

from ..jit.core import compile_ops
from ..jit.utils.chip_info import get_gfx_runtime as get_gfx
from ..jit.utils.torch_guard import torch_compile_guard
from ..utility import dtypes
from .gemm_op_common import (
    asm_weight_reader,
    check_kernel_name,
    lookup_tuned,
    x_scale_readers,
)

__all__ = [
    "flatmm_a8w8_blockscale_ASM",
    "flatmm_a8w8_blockscale_asm",
    "gemm_a8w8",
    "gemm_a8w8_ASM",
    "gemm_a8w8_CK",
    "gemm_a8w8_asm",
    "gemm_a8w8_blockscale",
    "gemm_a8w8_blockscale_bpreshuffle",
    "gemm_a8w8_blockscale_bpreshuffle_asm",
    "gemm_a8w8_bpreshuffle",
    "gfx950_a8w8_blockscale_ASM",
]

#: Tuned configs standing in for AITER's CSVs. Keys are (M, N, K[, q_dtype_w]);
#: M may be None to match any M. Values hold "libtype", "splitK", "kernelName".
TUNED_A8W8: dict = {}
TUNED_A8W8_BPRESHUFFLE: dict = {}
TUNED_A8W8_BLOCKSCALE: dict = {}
TUNED_A8W8_BLOCKSCALE_BPRESHUFFLE: dict = {}

A8W8_ASM_KERNELS = (
    "_ZN5aiter41I8gemm_bf16_perTokenI8_BpreShuffle_16x128E",
    "_ZN5aiter41I8gemm_bf16_perTokenI8_BpreShuffle_32x128E",
)
BLOCKSCALE_ASM_KERNELS = (
    "_ZN5aiter42fp8gemm_bf16_blockscale_BpreShuffle_32x128E",
    "_ZN5aiter42fp8gemm_bf16_blockscale_BpreShuffle_48x128E",
    "_ZN5aiter42fp8gemm_bf16_blockscale_BpreShuffle_64x128E",
)

_read_asm_weight = asm_weight_reader()
_ck_row_scale, _ck_col_scale = x_scale_readers("ck")
_asm_row_scale, _asm_col_scale = x_scale_readers("asm")


def _rowscale(XQ, weight, x_scale, w_scale, splits):
    xd, wd = _gemm.rowscale_operands(XQ, weight, x_scale, w_scale, dtypes.fp8)
    return _gemm.partials(xd, wd, splits).sum(0)


def _blockscale(XQ, weight, x_scale, w_scale, read_x_scale, splits=1):
    x_scale_grid = read_x_scale(x_scale, XQ.shape[0], w_scale.shape[1])
    xd, wd = _gemm.blockscale_operands(XQ, weight, x_scale_grid, w_scale, dtypes.fp8)
    return _gemm.partials(xd, wd, splits).sum(0)


def _store(out, acc, bias=None):
    out[: acc.shape[0]].copy_(_gemm.finish(acc, bias, out.dtype))
    return out


def _check_out_dtype(dtype):
    if dtype not in (dtypes.bf16, dtypes.fp16):
        raise AssertionError(f"Output {dtype=} is currently not supported in gemm_a8w8")


# --------------------------------------------------------------------------
# CK / CK-tile kernels (fail to build in a CK-free install)
# --------------------------------------------------------------------------


def _output_fake(XQ, WQ, x_scale, w_scale, Out, *args, **kwargs):
    """Fake of the kernels that write into and return ``Out`` (AITER's ``gen_*_fake_tensors``)."""
    return Out


@compile_ops("module_gemm_a8w8", gen_fake=_output_fake)
def gemm_a8w8_ck(
    XQ: Tensor,
    WQ: Tensor,
    x_scale: Tensor,
    w_scale: Tensor,
    Out: Tensor,
    bias: Tensor | None = None,
    splitK: int = 0,
) -> Tensor:
    return _store(Out, _rowscale(XQ, WQ, x_scale, w_scale, splitK), bias)


@compile_ops("module_gemm_a8w8_bpreshuffle", gen_fake=_output_fake)
def gemm_a8w8_bpreshuffle_ck(
    XQ: Tensor, WQ: Tensor, x_scale: Tensor, w_scale: Tensor, Out: Tensor, splitK: int = 0
) -> Tensor:
    return _store(Out, _rowscale(XQ, _layout.unshuffle_weight(WQ, (16, 16)), x_scale, w_scale, splitK))


@compile_ops("module_gemm_a8w8_bpreshuffle_cktile", gen_fake=_output_fake)
def gemm_a8w8_bpreshuffle_cktile(
    XQ: Tensor, WQ: Tensor, x_scale: Tensor, w_scale: Tensor, out: Tensor, splitK: int = 0
) -> Tensor:
    # CK-tile accepts a weight whose K was padded beyond the activation's K.
    weight = _layout.unshuffle_weight(WQ, (16, 16))[:, : XQ.shape[1]]
    return _store(out, _rowscale(XQ, weight, x_scale, w_scale, splitK))


@compile_ops("module_gemm_a8w8_blockscale", gen_fake=_output_fake)
def gemm_a8w8_blockscale_ck(
    XQ: Tensor, WQ: Tensor, x_scale: Tensor, w_scale: Tensor, Out: Tensor, splitK: int = 0
) -> Tensor:
    return _store(Out, _blockscale(XQ, WQ, x_scale, w_scale, _ck_row_scale, splitK))


@compile_ops("module_gemm_a8w8_blockscale_cktile", gen_fake=_output_fake)
def gemm_a8w8_blockscale_cktile(
    XQ: Tensor, WQ: Tensor, x_scale: Tensor, w_scale: Tensor, Out: Tensor, splitK: int = 0
) -> Tensor:
    return _store(Out, _blockscale(XQ, WQ, x_scale, w_scale, _ck_row_scale, splitK))


@compile_ops("module_gemm_a8w8_blockscale_bpreshuffle", gen_fake=_output_fake)
def gemm_a8w8_blockscale_bpreshuffle_ck(
    XQ: Tensor, WQ: Tensor, x_scale: Tensor, w_scale: Tensor, Out: Tensor
) -> Tensor:
    weight = _layout.unshuffle_weight(WQ, (16, 16))
    return _store(Out, _blockscale(XQ, weight, x_scale, w_scale, _ck_col_scale))


# --------------------------------------------------------------------------
# ASM kernels (prebuilt code objects: build without CK)
# --------------------------------------------------------------------------


@compile_ops("module_gemm_a8w8_asm")
def _gemm_a8w8_asm(
    XQ: Tensor,
    WQ: Tensor,
    x_scale: Tensor,
    w_scale: Tensor,
    Out: Tensor,
    bias: Tensor | None,
    bpreshuffle: bool,
    splitK: int,
) -> None:
    weight = _read_asm_weight(WQ, (32, 16)) if bpreshuffle else WQ
    _store(Out, _rowscale(XQ, weight, x_scale, w_scale, splitK), bias)


@compile_ops("module_gemm_a8w8_blockscale_asm")
def _flatmm_a8w8_blockscale_asm(XQ: Tensor, WQ: Tensor, x_scale: Tensor, w_scale: Tensor, out: Tensor) -> None:
    # AITER's flat layout: weight shuffled with layout (16, 32) ([N/16, K/64, 4, 16, 16]),
    # x_scale [K/128, M] and w_scale [K/128, N/128], both transposed in shape.
    weight = _read_asm_weight(WQ, (16, 32))
    _store(out, _blockscale(XQ, weight, x_scale, w_scale.t(), _asm_col_scale))


if _state.settings().release_build:

    @compile_ops("module_gemm_a8w8_blockscale_asm", gen_fake=_output_fake)
    def gfx950_a8w8_blockscale_asm(XQ: Tensor, WQ: Tensor, x_scale: Tensor, w_scale: Tensor, Y: Tensor) -> Tensor:
        """The kernel HEAD's ``gfx950_a8w8_blockscale_ASM`` names (defined only in a release build)."""
        weight = _read_asm_weight(WQ, (16, 16))
        return _store(Y, _blockscale(XQ, weight, x_scale, w_scale, _asm_row_scale))


@compile_ops("module_gemm_a8w8_blockscale_bpreshuffle_asm")
def _gemm_a8w8_blockscale_bpreshuffle_asm(
    A: Tensor,
    B: Tensor,
    out: Tensor,
    A_scale: Tensor,
    B_scale: Tensor,
    bias: Tensor | None,
    splitK: int,
    bpreshuffle: bool,
) -> None:
    weight = _read_asm_weight(B, (16, 16)) if bpreshuffle else B
    _store(out, _blockscale(A, weight, A_scale, B_scale, _asm_col_scale, splitK), bias)


# --------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------


def _output_shape_fake(XQ, WQ, dtype):
    return torch.empty(XQ.shape[0], WQ.shape[0], dtype=dtype, device=XQ.device)


def gemm_a8w8_fake(
    XQ: Tensor,
    WQ: Tensor,
    x_scale: Tensor,
    w_scale: Tensor,
    bias: Tensor | None = None,
    dtype: torch.dtype = dtypes.bf16,
    splitK: int | None = None,
) -> Tensor:
    return _output_shape_fake(XQ, WQ, dtype)


@torch_compile_guard(gen_fake=gemm_a8w8_fake)
def gemm_a8w8(
    XQ: Tensor,
    WQ: Tensor,
    x_scale: Tensor,
    w_scale: Tensor,
    bias: Tensor | None = None,
    dtype: torch.dtype = dtypes.bf16,
    splitK: int | None = None,
) -> Tensor:
    """Per-token x per-channel INT8/FP8 GEMM on the CK kernel."""
    return gemm_a8w8_CK(XQ, WQ, x_scale, w_scale, bias, dtype, splitK)


def gemm_a8w8_ASM(
    XQ: Tensor,
    WQ: Tensor,
    x_scale: Tensor,
    w_scale: Tensor,
    bias: Tensor,
    dtype=dtypes.bf16,
    check=False,
):
    """ASM per-token GEMM: weight shuffled with layout (32, 16), bias required."""
    if check:
        if dtype != dtypes.bf16:
            raise AssertionError(f"Output {dtype=} is currently not supported in gemm_a8w8_ASM")
        if x_scale.dtype != dtypes.fp32 or w_scale.dtype != dtypes.fp32:
            raise AssertionError(f"{x_scale.dtype=} or {w_scale.dtype=} must be dtypes.fp32")
    m, n, k = XQ.shape[0], WQ.shape[0], XQ.shape[-1]
    config = lookup_tuned(TUNED_A8W8_BPRESHUFFLE, m, n, k, dtypes.i8)
    splitK, kernelName = (config["splitK"], config["kernelName"]) if config else (1, "")
    Y = torch.empty(m, n, dtype=dtype, device=XQ.device)
    return gemm_a8w8_asm(XQ, WQ, x_scale, w_scale, Y, kernelName, bias, splitK=splitK)


def gemm_a8w8_asm(
    XQ: Tensor,
    WQ: Tensor,
    x_scale: Tensor,
    w_scale: Tensor,
    Out: Tensor,
    kernelName: str = "",
    bias: Tensor | None = None,
    bpreshuffle: bool | None = True,
    splitK: int | None = None,
) -> Tensor:
    check_kernel_name(kernelName, A8W8_ASM_KERNELS)
    preshuffled = True if bpreshuffle is None else bool(bpreshuffle)
    _gemm_a8w8_asm(XQ, WQ, x_scale, w_scale, Out, bias, preshuffled, splitK or 1)
    return Out


def gemm_a8w8_CK(
    XQ: Tensor,
    WQ: Tensor,
    x_scale: Tensor,
    w_scale: Tensor,
    bias: Tensor | None = None,
    dtype: torch.dtype = dtypes.bf16,
    splitK: int | None = None,
) -> Tensor:
    m, n, k = XQ.shape[0], WQ.shape[0], XQ.shape[-1]
    q_dtype_w = WQ.dtype if WQ.dtype in (dtypes.fp8, dtypes.i8) else dtypes.i8
    config = lookup_tuned(TUNED_A8W8, m, n, k, q_dtype_w)
    if splitK is None:
        splitK = config["splitK"] if config else 0
    Y = torch.empty(m, n, dtype=dtype, device=XQ.device)
    try:
        return gemm_a8w8_ck(XQ, WQ, x_scale, w_scale, Y, bias, splitK)
    except RuntimeError as error:
        raise RuntimeError(
            f"gemm_a8w8_CK failed for shape M={m}, N={n}, K={k}, {dtype=}, {splitK=}: {error}"
        ) from error


def gemm_a8w8_bpreshuffle_fake(
    XQ: Tensor,
    WQ: Tensor,
    x_scale: Tensor,
    w_scale: Tensor,
    bias: Tensor | None = None,
    dtype: torch.dtype = dtypes.bf16,
    check: bool = False,
) -> Tensor:
    return _output_shape_fake(XQ, WQ, dtype)


@torch_compile_guard(gen_fake=gemm_a8w8_bpreshuffle_fake)
def gemm_a8w8_bpreshuffle(
    XQ: Tensor,
    WQ: Tensor,
    x_scale: Tensor,
    w_scale: Tensor,
    bias: Tensor | None = None,
    dtype: torch.dtype = dtypes.bf16,
    check: bool = False,
) -> Tensor:
    """Per-token FP8 GEMM on a (16, 16)-preshuffled weight (CK, or CK-tile for padded K)."""
    if dtype not in (torch.bfloat16, torch.float16):
        raise AssertionError(f"Output {dtype=} is currently not supported in gemm_a8w8")
    m, n, k = XQ.shape[0], WQ.shape[0], XQ.shape[-1]
    w_k = WQ.shape[-1]
    if w_k < k:
        raise RuntimeError(f"gemm_a8w8_bpreshuffle requires WQ K >= XQ K, got WQ K={w_k}, XQ K={k}")
    if WQ.dtype != dtypes.fp8:
        raise AssertionError("gemm_a8w8_bpreshuffle only support fp8 now")
    if bias is not None:
        raise AssertionError("gemm_a8w8_bpreshuffle does not support bias now")
    if check and (x_scale.dtype != dtypes.fp32 or w_scale.dtype != dtypes.fp32):
        raise AssertionError(f"{x_scale.dtype=} or {w_scale.dtype=} must be dtypes.fp32")
    Y = torch.empty(m, n, dtype=dtype, device=XQ.device)
    config = lookup_tuned(TUNED_A8W8_BPRESHUFFLE, m, n, k, dtypes.fp8)
    try:
        if config is not None:
            splitK = int(config["splitK"])
            if config["libtype"] == "cktile":
                return gemm_a8w8_bpreshuffle_cktile(XQ, WQ, x_scale, w_scale, Y, splitK)
            return gemm_a8w8_bpreshuffle_ck(XQ, WQ, x_scale, w_scale, Y, splitK)
        if w_k > k:
            return gemm_a8w8_bpreshuffle_cktile(XQ, WQ, x_scale, w_scale, Y, 0)
        return gemm_a8w8_bpreshuffle_ck(XQ, WQ, x_scale, w_scale, Y, 0)
    except RuntimeError as error:
        raise RuntimeError(
            f"gemm_a8w8_bpreshuffle failed for shape M={m}, N={n}, K={k}, {dtype=}, config={config}: {error}"
        ) from error


def gemm_a8w8_blockscale_fake(
    XQ: Tensor,
    WQ: Tensor,
    x_scale: Tensor,
    w_scale: Tensor,
    dtype: torch.dtype = dtypes.bf16,
    isBpreshuffled: bool = False,
) -> Tensor:
    return _output_shape_fake(XQ, WQ, dtype)


@torch_compile_guard(gen_fake=gemm_a8w8_blockscale_fake)
def gemm_a8w8_blockscale(
    XQ: Tensor,
    WQ: Tensor,
    x_scale: Tensor,
    w_scale: Tensor,
    dtype: torch.dtype = dtypes.bf16,
    isBpreshuffled: bool = False,
) -> torch.Tensor:
    """FP8 blockscale GEMM, row-major x_scale; CK unless ``isBpreshuffled`` (gfx950 ASM)."""
    _check_out_dtype(dtype)
    m, n, k = XQ.shape[0], WQ.shape[0], XQ.shape[1]
    Y = torch.empty(m, n, dtype=dtype, device=XQ.device)
    if isBpreshuffled:
        if get_gfx() == "gfx950" and m >= 16 and k >= 512 and dtype == dtypes.bf16:
            return gfx950_a8w8_blockscale_ASM(XQ, WQ, x_scale, w_scale, Y)
        raise AssertionError("asm kernel only support B preshuffle and m >= 16")
    config = lookup_tuned(TUNED_A8W8_BLOCKSCALE, m, n, k)
    try:
        if config is not None and config["libtype"] == "cktile":
            return gemm_a8w8_blockscale_cktile(XQ, WQ, x_scale, w_scale, Y, int(config["splitK"]))
        if config is not None:
            return gemm_a8w8_blockscale_ck(XQ, WQ, x_scale, w_scale, Y, int(config["splitK"]))
        return gemm_a8w8_blockscale_ck(XQ, WQ, x_scale, w_scale, Y)
    except RuntimeError as error:
        raise RuntimeError(
            f"gemm_a8w8_blockscale failed for shape M={m}, N={n}, K={k}, {dtype=}, config={config}: {error}"
        ) from error


def flatmm_a8w8_blockscale_ASM(
    XQ: Tensor,
    WQ: Tensor,
    x_scale: Tensor,
    w_scale: Tensor,
    dtype=dtypes.fp16,
):
    """ASM flat-matmul blockscale GEMM (fp16 output only).

    x_scale is (K/128, M), w_scale (K/128, N/128), the weight shuffled with
    layout (16, 32): the kernel's own flat layout, not the bpreshuffle one.
    """
    if dtype != dtypes.fp16:
        raise AssertionError(f"Output {dtype=} is currently not supported in gemm_a8w8")
    Y = torch.empty(XQ.shape[0], WQ.shape[0], dtype=dtype, device=XQ.device)
    return flatmm_a8w8_blockscale_asm(XQ, WQ, x_scale, w_scale, Y)


def flatmm_a8w8_blockscale_asm(XQ: Tensor, WQ: Tensor, x_scale: Tensor, w_scale: Tensor, out: Tensor) -> Tensor:
    _flatmm_a8w8_blockscale_asm(XQ, WQ, x_scale, w_scale, out)
    return out


def gemm_a8w8_blockscale_bpreshuffle_fake(
    XQ: Tensor,
    WQ: Tensor,
    x_scale: Tensor,
    w_scale: Tensor,
    dtype: torch.dtype = dtypes.bf16,
    out: Tensor | None = None,
) -> Tensor:
    # With ``out`` the kernel returns that buffer, so the fake does too.
    return out if out is not None else _output_shape_fake(XQ, WQ, dtype)


@torch_compile_guard(gen_fake=gemm_a8w8_blockscale_bpreshuffle_fake)
def gemm_a8w8_blockscale_bpreshuffle(
    XQ: Tensor,
    WQ: Tensor,
    x_scale: Tensor,
    w_scale: Tensor,
    dtype: torch.dtype = dtypes.bf16,
    out: Tensor | None = None,
) -> Tensor:
    """FP8 blockscale GEMM on a (16, 16)-preshuffled weight with a transposed x_scale.

    x_scale is a contiguous (M, G) tensor whose bytes are (G, M), or a strided
    view with ``stride(0) == 1``; e8m0 scales are converted to fp32 first.
    """
    _check_out_dtype(dtype)
    m, n, k = XQ.shape[0], WQ.shape[0], XQ.shape[1]
    if out is not None:
        if out.shape != (m, n) or out.dtype != dtype or out.device != XQ.device:
            raise AssertionError(
                f"gemm_a8w8_blockscale_bpreshuffle: out buffer {tuple(out.shape)}/{out.dtype} "
                f"!= expected ({m},{n})/{dtype}"
            )
        Y = out
    else:
        Y = torch.empty(m, n, dtype=dtype, device=XQ.device)
    if x_scale.dtype == dtypes.fp8_e8m0:
        x_scale = x_scale.to(dtypes.fp32)
    if w_scale.dtype == dtypes.fp8_e8m0:
        w_scale = w_scale.to(dtypes.fp32)
    config = lookup_tuned(TUNED_A8W8_BLOCKSCALE_BPRESHUFFLE, m, n, k)
    if config is not None and config["libtype"] == "triton":
        from aiter.ops.triton.gemm.basic.gemm_a8w8_blockscale import (
            gemm_a8w8_blockscale_preshuffle as _gemm_a8w8_blockscale_preshuffle_triton,
        )

        return _gemm_a8w8_blockscale_preshuffle_triton(
            XQ,
            WQ.reshape(n // 16, k * 16),
            x_scale,
            w_scale,
            dtype=dtype,
            y=Y,
            is_x_scale_tranposed=x_scale.stride(0) != 1,
        )
    if config is not None and config["libtype"] == "asm":
        return gemm_a8w8_blockscale_bpreshuffle_asm(
            XQ, WQ, Y, x_scale, w_scale, splitK=config["splitK"], kernelName=config["kernelName"]
        )
    try:
        return gemm_a8w8_blockscale_bpreshuffle_ck(XQ, WQ, x_scale, w_scale, Y)
    except RuntimeError as error:
        raise RuntimeError(
            f"gemm_a8w8_blockscale_bpreshuffle failed for shape M={m}, N={n}, K={k}, {dtype=}, config={config}: {error}"
        ) from error


def gemm_a8w8_blockscale_bpreshuffle_asm(
    A: Tensor,
    B: Tensor,
    out: Tensor,
    A_scale: Tensor,
    B_scale: Tensor,
    bias: Tensor | None = None,
    splitK: int | None = None,
    kernelName: str | None = None,
    bpreshuffle: bool | None = True,
    zero_bias_buf: Tensor | None = None,
) -> Tensor:
    """ASM blockscale GEMM; note the (A, B, out, A_scale, B_scale) argument order."""
    check_kernel_name(kernelName, BLOCKSCALE_ASM_KERNELS)
    if bias is None and zero_bias_buf is None:
        zero_bias_buf = torch.zeros(1, B.shape[0], dtype=torch.float32, device=B.device)
    _gemm_a8w8_blockscale_bpreshuffle_asm(
        A,
        B,
        out,
        A_scale,
        B_scale,
        zero_bias_buf if bias is None else bias,
        splitK or 1,
        True if bpreshuffle is None else bool(bpreshuffle),
    )
    return out


def gfx950_a8w8_blockscale_ASM(
    XQ: Tensor,
    WQ: Tensor,
    x_scale: Tensor,
    w_scale: Tensor,
    Y: Tensor,
    dtype=dtypes.bf16,
):
    """gfx950 ASM blockscale GEMM on a (16, 16)-preshuffled weight, row-major x_scale.

    The kernel is looked up as a module global: at HEAD there is none
    (``NameError``), in a ``release_build`` install it is the ASM op.
    """
    if dtype != dtypes.bf16:
        raise AssertionError(f"Output {dtype=} is currently not supported in gemm_a8w8")
    return gfx950_a8w8_blockscale_asm(XQ, WQ, x_scale, w_scale, Y)  # noqa: F821 - HEAD: undefined
