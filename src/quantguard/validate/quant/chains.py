"""Every quant→GEMM chain ``validate quant`` runs, declared as data: scheme x backend x entry points.

A chain is what one linear layer does on one backend: the activation is
quantized by an AITER quant entry point, the weight was quantized the way
checkpoints are (:mod:`quantize_weights`) and laid out as the kernel reads it
(preshuffled, swizzled), and an AITER GEMM multiplies them. Every entry point is
AITER's public one with its real signature, looked up by its real module path
when the chain runs, so the simulator and a real AITER are exercised the same
way. Each chain also declares how its GEMM reads the activation scales
(``expected_layout``), which is what the layout analysis compares the
producer's bytes against.

Left out on purpose: ``flatmm_a8w8_blockscale_ASM`` (its weight and scales use a
transposed flat layout of their own that ATOM never produces) and INT4 on any
AITER kernel (AITER has no INT4 linear GEMM: INT4 runs a torch W4A16 path, and
the row says so).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from quantguard.numerics.dequant import dequantize_rows, expand_blocks_2d, scale_values
from quantguard.numerics.formats import FP4_E2M1, INT8, ElementFormat, element_format
from quantguard.numerics.layouts import pad_to, read_scales
from quantguard.validate import quantize_weights as qw
from quantguard.validate.quantize_kernels import UnsupportedPath

__all__ = ["BACKENDS", "CHAINS", "SCHEMES", "Chain", "Quantized", "QuantWeight", "chains_for", "quantize_weight"]

#: Quantization schemes, in report order.
SCHEMES: tuple[str, ...] = ("fp8_per_token", "fp8_blockscale", "fp8_per_tensor", "mxfp4", "fp4", "int8", "int4")
#: Backends, in report order ("torch": no AITER kernel exists for the scheme).
BACKENDS: tuple[str, ...] = ("asm", "ck", "cktile", "triton", "hipblaslt", "torch")

_G8 = "aiter.ops.gemm_op_a8w8."
_G4 = "aiter.ops.gemm_op_a4w4."
_Q = "aiter.ops.quant."
_TQ = "aiter.ops.triton.quant."
_TG = "aiter.ops.triton.gemm.basic."
_FP4_ARCHS = ("gfx950",)

Operands = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class Quantized:
    """An activation quant call's result and how to read its scale buffer.

    ``group``: ``None`` per token, ``0`` per tensor, else elements per scale.
    ``encoding``: ``"fp32"`` or ``"e8m0"`` (with the rounding mode AITER declares for the producer).
    """

    values: torch.Tensor
    scales: torch.Tensor
    group: int | None
    encoding: str
    element: ElementFormat
    rounding: str | None = None


@dataclass(frozen=True)
class QuantWeight:
    """A checkpoint weight: quantized values (plain layout), their scale, and the fp32 product."""

    values: torch.Tensor
    scale: torch.Tensor
    dequantized: torch.Tensor


@dataclass(frozen=True)
class Chain:
    """One quant→GEMM path: entry points, the scale layout its GEMM reads, where it exists."""

    scheme: str
    backend: str
    variant: str
    quant: str
    gemm: str
    expected_layout: str  # how the GEMM reads x_scale: logical | row_major | transposed | mx_swizzle
    prepare: Callable[[QuantWeight], Operands]
    quantize: Callable[[torch.Tensor], Quantized]
    run_gemm: Callable[[Quantized, Operands, torch.dtype], torch.Tensor]
    archs: tuple[str, ...] = ("gfx942", "gfx950")
    ck: bool = False  # runs CK/CK-tile code (absent from CK-free builds)
    asm: bool = False  # a prebuilt ASM kernel (blocked on gfx950 in CK-free builds)
    out_dtype: torch.dtype = torch.bfloat16
    n_multiple: int = 1
    k_multiple: int = 1
    m_min: int = 1
    k_min: int = 1
    layout_below_32_rows: str | None = None  # ATOM swizzles MXFP4 activation scales only from 32 rows on

    @property
    def name(self) -> str:
        return f"{self.scheme}/{self.backend}" + (f" ({self.variant})" if self.variant else "")

    def layout_for(self, m: int) -> str:
        """How the GEMM reads x_scale for an M-row activation."""
        if self.layout_below_32_rows is not None and m < qw.MX_GROUP:
            return self.layout_below_32_rows
        return self.expected_layout

    def unsupported_shape(self, m: int, n: int, k: int) -> str | None:
        if n % self.n_multiple or k % self.k_multiple:
            return f"needs N % {self.n_multiple} == 0 and K % {self.k_multiple} == 0"
        if m < self.m_min or k < self.k_min:
            return f"needs M >= {self.m_min} and K >= {self.k_min}"
        return None


def _entry(path: str) -> Any:
    """AITER's entry point at ``path`` (module.attr[.attr]); UnsupportedPath if this AITER lacks it."""
    module_name, _, name = path.rpartition(".")
    owner: Any = None
    while module_name:
        try:
            owner = importlib.import_module(module_name)
            break
        except ImportError:
            module_name, _, parent = module_name.rpartition(".")
            name = f"{parent}.{name}"
    if owner is None:
        raise UnsupportedPath(f"{path} is not importable in this AITER")
    for part in name.split("."):
        if not hasattr(owner, part):
            raise UnsupportedPath(f"{path} does not exist in this AITER")
        owner = getattr(owner, part)
    return owner


def _dtypes() -> Any:
    """``aiter.dtypes``: the arch's FP8 flavour (e4m3fnuz on gfx942, e4m3fn on gfx950), fp4x2, i8."""
    return importlib.import_module("aiter").dtypes


def _shuffle(weight: torch.Tensor, layout: tuple[int, int] = (16, 16)) -> torch.Tensor:
    return _entry("aiter.ops.shuffle.shuffle_weight")(weight, layout=layout)


def _fp8() -> torch.dtype:
    return _dtypes().fp8


def _fp8_element() -> ElementFormat:
    return element_format(_fp8())  # type: ignore[return-value]


# -- weights -------------------------------------------------------------------------------------


def quantize_weight(scheme: str, weight: torch.Tensor) -> QuantWeight:
    """The checkpoint form of ``weight`` for ``scheme`` (shared by every backend of the scheme)."""
    w = weight.float()
    if scheme == "fp8_per_token":
        values, scale = qw.fp8_per_channel(w, _fp8())
        return QuantWeight(values, scale, values.float() * scale)
    if scheme == "fp8_per_tensor":
        values, scale = qw.fp8_per_tensor(w, _fp8())
        return QuantWeight(values, scale, values.float() * scale)
    if scheme == "fp8_blockscale":
        values, scale = qw.fp8_blocks(w, _fp8())
        rows, cols = values.shape
        return QuantWeight(values, scale, values.float() * expand_blocks_2d(scale, qw.BLOCK, qw.BLOCK, rows, cols))
    if scheme in ("mxfp4", "fp4"):
        values, scale = qw.mxfp4_groups(w)
        return QuantWeight(values, scale, dequantize_rows(values, scale_values(scale), qw.MX_GROUP, packed_fp4=True))
    if scheme == "int8":
        values, scale = qw.int8_per_channel(w)
        return QuantWeight(values, scale, values.float() * scale)
    if scheme == "int4":
        codes, scale = qw.int4_groups(w)
        return QuantWeight(codes, scale, qw.dequantize_int4(codes, scale, weight.dtype).float())
    raise UnsupportedPath(f"unknown scheme {scheme!r}; accepted: {', '.join(SCHEMES)}")


# -- activation quant entry points ------------------------------------------------------------------


def _hip_per_token(dtype_name: str) -> Callable[[torch.Tensor], Quantized]:
    def quantize(x: torch.Tensor) -> Quantized:
        dtype = getattr(_dtypes(), dtype_name)
        values, scales = _entry(_Q + "per_token_quant_hip")(x, quant_dtype=dtype)
        return Quantized(values, scales, None, "fp32", element_format(dtype))  # type: ignore[arg-type]

    return quantize


def _triton_per_token(dtype_name: str) -> Callable[[torch.Tensor], Quantized]:
    def quantize(x: torch.Tensor) -> Quantized:
        dtype = getattr(_dtypes(), dtype_name)
        values = torch.empty(x.shape, dtype=dtype, device=x.device)
        scales = torch.empty(x.shape[0], 1, dtype=torch.float32, device=x.device)
        _entry(_TQ + "dynamic_per_token_quant_fp8_i8")(values, x, scales)
        return Quantized(values, scales, None, "fp32", element_format(dtype))  # type: ignore[arg-type]

    return quantize


def _hip_per_tensor(x: torch.Tensor) -> Quantized:
    values = torch.empty(x.shape, dtype=_fp8(), device=x.device)
    scale = torch.empty(1, dtype=torch.float32, device=x.device)
    _entry(_Q + "dynamic_per_tensor_quant")(values, x, scale)
    return Quantized(values, scale, 0, "fp32", _fp8_element())


def _triton_per_tensor(x: torch.Tensor) -> Quantized:
    values = torch.empty(x.shape, dtype=_fp8(), device=x.device)
    scale = torch.empty(1, dtype=torch.float32, device=x.device)
    _entry(_TQ + "dynamic_per_tensor_quant_fp8_i8")(values, x, scale)
    return Quantized(values, scale, 0, "fp32", _fp8_element())


def _hip_groups(transpose_scale: bool) -> Callable[[torch.Tensor], Quantized]:
    def quantize(x: torch.Tensor) -> Quantized:
        values, scales = _entry(_Q + "per_group_quant_hip")(
            x, quant_dtype=_fp8(), group_size=qw.BLOCK, transpose_scale=transpose_scale
        )
        return Quantized(values, scales, qw.BLOCK, "fp32", _fp8_element())

    return quantize


def _hip_mx(entry: str, shuffle: bool | None) -> Callable[[torch.Tensor], Quantized]:
    """HIP MXFP4 quant; ``shuffle=None``: swizzle from 32 rows on (as ATOM does for the Triton preshuffle GEMM)."""

    def quantize(x: torch.Tensor) -> Quantized:
        swizzle = x.shape[0] >= qw.MX_GROUP if shuffle is None else shuffle
        values, scales = _entry(_Q + entry)(x, quant_dtype=_dtypes().fp4x2, shuffle=swizzle)
        return Quantized(values, scales, qw.MX_GROUP, "e8m0", FP4_E2M1, "up")

    return quantize


def _triton_mx(x: torch.Tensor) -> Quantized:
    values, scales = _entry(_TQ + "dynamic_mxfp4_quant")(x)
    return Quantized(values, scales, qw.MX_GROUP, "e8m0", FP4_E2M1, "even")


# -- GEMM calls -------------------------------------------------------------------------------------


def _out(q: Quantized, n: int, dtype: torch.dtype, rows: int | None = None) -> torch.Tensor:
    return torch.empty(rows or q.values.shape[0], n, dtype=dtype, device=q.values.device)


def _column_scale(scale: torch.Tensor, n: int) -> torch.Tensor:
    """A per-channel (N, 1) scale (a per-tensor one repeated)."""
    return scale.reshape(-1, 1).expand(n, 1).contiguous() if scale.numel() == 1 else scale.reshape(n, 1)


def _row_scale(q: Quantized) -> torch.Tensor:
    """An (M, 1) activation scale (a per-tensor one repeated)."""
    m = q.values.shape[0]
    return q.scales.reshape(1, 1).expand(m, 1).contiguous() if q.scales.numel() == 1 else q.scales


def _plain(weight: QuantWeight) -> Operands:
    return {"weight": weight.values, "scale": weight.scale}


def _shuffled(layout: tuple[int, int] = (16, 16)) -> Callable[[QuantWeight], Operands]:
    def prepare(weight: QuantWeight) -> Operands:
        return {"weight": _shuffle(weight.values, layout), "scale": weight.scale}

    return prepare


def _mx_shuffled(weight: QuantWeight) -> Operands:
    shuffle_scale = _entry("aiter.utility.fp4_utils.e8m0_shuffle")
    return {"weight": _shuffle(weight.values), "scale": shuffle_scale(weight.scale)}


def _a8w8_ck(q, ops, dtype):
    n = ops["weight"].shape[0]
    return _entry(_G8 + "gemm_a8w8_CK")(
        q.values, ops["weight"], _row_scale(q), _column_scale(ops["scale"], n), dtype=dtype
    )


def _a8w8_bpreshuffle(q, ops, dtype):
    n = ops["weight"].shape[0]
    return _entry(_G8 + "gemm_a8w8_bpreshuffle")(
        q.values, ops["weight"], _row_scale(q), _column_scale(ops["scale"], n), dtype=dtype
    )


def _a8w8_bpreshuffle_cktile(q, ops, dtype):
    n = ops["weight"].shape[0]
    out = _out(q, n, dtype)
    return _entry(_G8 + "gemm_a8w8_bpreshuffle_cktile")(
        q.values, ops["weight"], _row_scale(q), _column_scale(ops["scale"], n), out
    )


def _a8w8_triton(q, ops, dtype):
    n = ops["weight"].shape[0]
    return _entry(_TG + "gemm_a8w8.gemm_a8w8")(
        q.values, ops["weight"], _row_scale(q), _column_scale(ops["scale"], n).view(1, n), dtype=dtype
    )


def _a8w8_asm(q, ops, dtype):
    n = ops["weight"].shape[0]
    bias = torch.zeros(1, n, dtype=torch.float32, device=q.values.device)
    return _entry(_G8 + "gemm_a8w8_ASM")(
        q.values, ops["weight"], _row_scale(q), _column_scale(ops["scale"], n).view(1, n), bias, dtype=dtype
    )


def _hipblaslt(q, ops, dtype):
    tgemm = _entry("aiter.tuned_gemm.tgemm")
    return tgemm.mm(q.values, ops["weight"], otype=dtype, scale_a=q.scales, scale_b=ops["scale"])


def _blockscale_ck(q, ops, dtype):
    return _entry(_G8 + "gemm_a8w8_blockscale")(q.values, ops["weight"], q.scales, ops["scale"], dtype=dtype)


def _blockscale_cktile(q, ops, dtype):
    out = _out(q, ops["weight"].shape[0], dtype)
    return _entry(_G8 + "gemm_a8w8_blockscale_cktile")(q.values, ops["weight"], q.scales, ops["scale"], out)


def _blockscale_bpreshuffle(q, ops, dtype):
    return _entry(_G8 + "gemm_a8w8_blockscale_bpreshuffle")(
        q.values, ops["weight"], q.scales, ops["scale"], dtype=dtype
    )


def _blockscale_triton(q, ops, dtype):
    return _entry(_TG + "gemm_a8w8_blockscale.gemm_a8w8_blockscale")(
        q.values, ops["weight"], q.scales, ops["scale"], dtype=dtype
    )


def _blockscale_triton_preshuffle(q, ops, dtype):
    weight = ops["weight"]
    flat = weight.reshape(weight.shape[0] // 16, weight.shape[1] * 16)
    return _entry(_TG + "gemm_a8w8_blockscale.gemm_a8w8_blockscale_preshuffle")(
        q.values, flat, q.scales, ops["scale"], dtype=dtype, is_x_scale_tranposed=True
    )


def _blockscale_bpreshuffle_asm(q, ops, dtype):
    # The ASM kernel writes bf16 into a caller-owned buffer; note its (A, B, out, A_scale, B_scale) order.
    out = _out(q, ops["weight"].shape[0], torch.bfloat16)
    result = _entry(_G8 + "gemm_a8w8_blockscale_bpreshuffle_asm")(q.values, ops["weight"], out, q.scales, ops["scale"])
    return result.to(dtype)


def _blockscale_gfx950_asm(q, ops, dtype):
    # gemm_a8w8_blockscale(isBpreshuffled=True) dispatches internally to gfx950_a8w8_blockscale_ASM.
    return _entry(_G8 + "gemm_a8w8_blockscale")(
        q.values, ops["weight"], q.scales, ops["scale"], dtype=dtype, isBpreshuffled=True
    )


def _a4w4(q, ops, dtype):
    return _entry(_G4 + "gemm_a4w4")(q.values, ops["weight"], q.scales, ops["scale"], dtype=dtype)


def _a4w4_ck(q, ops, dtype):
    m = q.values.shape[0]
    out = _out(q, ops["weight"].shape[0], dtype, rows=pad_to(m, 32))
    return _entry(_G4 + "gemm_a4w4_blockscale")(q.values, ops["weight"], q.scales, ops["scale"], out)[:m]


def _afp4wfp4(q, ops, dtype):
    return _entry(_TG + "gemm_afp4wfp4.gemm_afp4wfp4")(
        q.values.view(torch.uint8),
        ops["weight"].view(torch.uint8),
        q.scales.view(torch.uint8),
        ops["scale"].view(torch.uint8),
        dtype=dtype,
    )


def _afp4wfp4_preshuffle(q, ops, dtype):
    rows = q.values.shape[0]
    scales = q.scales.view(torch.uint8)
    swizzled = rows >= qw.MX_GROUP
    scales = scales.view(scales.shape[0] // qw.MX_GROUP, -1) if swizzled else scales[:rows]
    weight, w_scale = ops["weight"].view(torch.uint8), ops["scale"].view(torch.uint8)
    return _entry(_TG + "gemm_afp4wfp4.gemm_afp4wfp4_preshuffle")(
        q.values.view(torch.uint8),
        weight.view(weight.shape[0] // 16, -1),
        scales,
        w_scale.view(w_scale.shape[0] // qw.MX_GROUP, -1),
        dtype=dtype,
    )


def _int4_prepare(weight: QuantWeight) -> Operands:
    return {"weight": weight.dequantized}


def _no_quant(x: torch.Tensor) -> Quantized:
    return Quantized(x, torch.ones(1, dtype=torch.float32, device=x.device), 0, "none", INT8)


def _int4_torch(q, ops, dtype):
    return (q.values.float() @ ops["weight"].T).to(dtype)


# -- the table ----------------------------------------------------------------------------------------

_PER_TOKEN_HIP = _Q + "per_token_quant_hip"
_PER_TOKEN_TRITON = _TQ + "dynamic_per_token_quant_fp8_i8"
_GROUPS = _Q + "per_group_quant_hip(group_size=128, transpose_scale={})"
_MX_HIP = _Q + "per_1x32_mx_quant_hip(fp4x2, shuffle={})"
_F4_HIP = _Q + "per_1x32_f4_quant_hip(fp4x2, shuffle={})"
_MX_TRITON = _TQ + "dynamic_mxfp4_quant (scaling_mode='even')"


def _fp8_chains() -> list[Chain]:
    hip_token, triton_token = _hip_per_token("fp8"), _triton_per_token("fp8")
    rows_t, rows_r = _hip_groups(True), _hip_groups(False)
    block = dict(n_multiple=qw.BLOCK, k_multiple=qw.BLOCK)
    return [
        Chain(
            "fp8_per_token",
            "ck",
            "",
            _PER_TOKEN_HIP,
            _G8 + "gemm_a8w8_CK",
            "logical",
            _plain,
            hip_token,
            _a8w8_ck,
            ck=True,
        ),
        Chain(
            "fp8_per_token",
            "ck",
            "bpreshuffle",
            _PER_TOKEN_HIP,
            _G8 + "gemm_a8w8_bpreshuffle",
            "logical",
            _shuffled(),
            hip_token,
            _a8w8_bpreshuffle,
            ck=True,
            n_multiple=16,
            k_multiple=32,
        ),
        Chain(
            "fp8_per_token",
            "cktile",
            "bpreshuffle",
            _PER_TOKEN_HIP,
            _G8 + "gemm_a8w8_bpreshuffle_cktile",
            "logical",
            _shuffled(),
            hip_token,
            _a8w8_bpreshuffle_cktile,
            ck=True,
            n_multiple=16,
            k_multiple=32,
        ),
        Chain(
            "fp8_per_token",
            "triton",
            "",
            _PER_TOKEN_TRITON,
            _TG + "gemm_a8w8.gemm_a8w8",
            "logical",
            _plain,
            triton_token,
            _a8w8_triton,
        ),
        Chain(
            "fp8_blockscale",
            "ck",
            "",
            _GROUPS.format(False),
            _G8 + "gemm_a8w8_blockscale",
            "row_major",
            _plain,
            rows_r,
            _blockscale_ck,
            ck=True,
            **block,
        ),
        Chain(
            "fp8_blockscale",
            "ck",
            "bpreshuffle",
            _GROUPS.format(True),
            _G8 + "gemm_a8w8_blockscale_bpreshuffle",
            "transposed",
            _shuffled(),
            rows_t,
            _blockscale_bpreshuffle,
            ck=True,
            **block,
        ),
        Chain(
            "fp8_blockscale",
            "cktile",
            "",
            _GROUPS.format(False),
            _G8 + "gemm_a8w8_blockscale_cktile",
            "row_major",
            _plain,
            rows_r,
            _blockscale_cktile,
            ck=True,
            **block,
        ),
        Chain(
            "fp8_blockscale",
            "triton",
            "",
            _GROUPS.format(False),
            _TG + "gemm_a8w8_blockscale.gemm_a8w8_blockscale",
            "logical",
            _plain,
            rows_r,
            _blockscale_triton,
            **block,
        ),
        Chain(
            "fp8_blockscale",
            "triton",
            "preshuffle",
            _GROUPS.format(True),
            _TG + "gemm_a8w8_blockscale.gemm_a8w8_blockscale_preshuffle",
            "transposed",
            _shuffled(),
            rows_t,
            _blockscale_triton_preshuffle,
            **block,
        ),
        Chain(
            "fp8_blockscale",
            "asm",
            "bpreshuffle",
            _GROUPS.format(True),
            _G8 + "gemm_a8w8_blockscale_bpreshuffle_asm",
            "transposed",
            _shuffled(),
            rows_t,
            _blockscale_bpreshuffle_asm,
            asm=True,
            **block,
        ),
        Chain(
            "fp8_blockscale",
            "asm",
            "gfx950",
            _GROUPS.format(False),
            _G8 + "gemm_a8w8_blockscale(isBpreshuffled=True) -> gfx950_a8w8_blockscale_ASM",
            "row_major",
            _shuffled(),
            rows_r,
            _blockscale_gfx950_asm,
            archs=("gfx950",),
            asm=True,
            m_min=16,
            k_min=512,
            **block,
        ),
        Chain(
            "fp8_per_tensor",
            "hipblaslt",
            "",
            _Q + "dynamic_per_tensor_quant",
            "aiter.tuned_gemm.tgemm.mm",
            "logical",
            _plain,
            _hip_per_tensor,
            _hipblaslt,
        ),
        Chain(
            "fp8_per_tensor",
            "ck",
            "",
            _Q + "dynamic_per_tensor_quant",
            _G8 + "gemm_a8w8_CK",
            "logical",
            _plain,
            _hip_per_tensor,
            _a8w8_ck,
            ck=True,
        ),
        Chain(
            "fp8_per_tensor",
            "triton",
            "",
            _TQ + "dynamic_per_tensor_quant_fp8_i8",
            _TG + "gemm_a8w8.gemm_a8w8",
            "logical",
            _plain,
            _triton_per_tensor,
            _a8w8_triton,
        ),
    ]


def _fp4_chains() -> list[Chain]:
    fp4 = dict(archs=_FP4_ARCHS, n_multiple=16, k_multiple=64)
    return [
        Chain(
            "mxfp4",
            "asm",
            "",
            _MX_HIP.format(True),
            _G4 + "gemm_a4w4 -> gemm_a4w4_asm",
            "mx_swizzle",
            _mx_shuffled,
            _hip_mx("per_1x32_mx_quant_hip", True),
            _a4w4,
            asm=True,
            **fp4,
        ),
        Chain(
            "mxfp4",
            "ck",
            "",
            _MX_HIP.format(True),
            _G4 + "gemm_a4w4_blockscale",
            "mx_swizzle",
            _mx_shuffled,
            _hip_mx("per_1x32_mx_quant_hip", True),
            _a4w4_ck,
            ck=True,
            **fp4,
        ),
        Chain(
            "mxfp4",
            "triton",
            "",
            _MX_HIP.format(False),
            _TG + "gemm_afp4wfp4.gemm_afp4wfp4",
            "logical",
            _plain,
            _hip_mx("per_1x32_mx_quant_hip", False),
            _afp4wfp4,
            **fp4,
        ),
        Chain(
            "mxfp4",
            "triton",
            "preshuffle",
            _MX_HIP.format("M>=32"),
            _TG + "gemm_afp4wfp4.gemm_afp4wfp4_preshuffle",
            "mx_swizzle",
            _mx_shuffled,
            _hip_mx("per_1x32_mx_quant_hip", None),
            _afp4wfp4_preshuffle,
            layout_below_32_rows="row_major",
            **fp4,
        ),
        Chain(
            "fp4",
            "asm",
            "",
            _F4_HIP.format(True),
            _G4 + "gemm_a4w4 -> gemm_a4w4_asm",
            "mx_swizzle",
            _mx_shuffled,
            _hip_mx("per_1x32_f4_quant_hip", True),
            _a4w4,
            asm=True,
            **fp4,
        ),
        Chain(
            "fp4",
            "triton",
            "",
            _MX_TRITON,
            _TG + "gemm_afp4wfp4.gemm_afp4wfp4",
            "logical",
            _plain,
            _triton_mx,
            _afp4wfp4,
            **fp4,
        ),
    ]


def _int_chains() -> list[Chain]:
    hip_token = _hip_per_token("i8")
    return [
        Chain(
            "int8",
            "asm",
            "",
            _PER_TOKEN_HIP,
            _G8 + "gemm_a8w8_ASM",
            "logical",
            _shuffled((32, 16)),
            hip_token,
            _a8w8_asm,
            asm=True,
            n_multiple=32,
            k_multiple=32,
        ),
        Chain("int8", "ck", "", _PER_TOKEN_HIP, _G8 + "gemm_a8w8_CK", "logical", _plain, hip_token, _a8w8_ck, ck=True),
        Chain(
            "int8",
            "triton",
            "",
            _PER_TOKEN_TRITON,
            _TG + "gemm_a8w8.gemm_a8w8",
            "logical",
            _plain,
            _triton_per_token("i8"),
            _a8w8_triton,
        ),
        Chain(
            "int4",
            "torch",
            "W4A16",
            "none (16-bit activations)",
            "torch W4A16 (AITER has no INT4 linear GEMM)",
            "none",
            _int4_prepare,
            _no_quant,
            _int4_torch,
            k_multiple=qw.INT4_GROUP,
        ),
    ]


CHAINS: tuple[Chain, ...] = tuple(_fp8_chains() + _fp4_chains() + _int_chains())


def chains_for(schemes: tuple[str, ...] | list[str], backends: tuple[str, ...] | list[str]) -> list[Chain]:
    """The chains of the requested schemes and backends, in table order."""
    return [chain for chain in CHAINS if chain.scheme in schemes and chain.backend in backends]


def dequantize_activation(q: Quantized, layout: str) -> torch.Tensor | None:
    """fp32 (M, K) activation as a GEMM reading its scales in ``layout`` sees it; ``None`` if unreadable."""
    if q.encoding == "none":
        return q.values.float()
    m = q.values.shape[0]
    packed = q.element is FP4_E2M1
    k = q.values.shape[1] * (2 if packed else 1)
    if q.group == 0:
        return dequantize_rows(q.values, q.scales.reshape(1, 1).float(), None, packed_fp4=packed)
    groups = 1 if q.group is None else -(-k // q.group)
    grid = read_scales(q.scales.view(torch.uint8) if q.encoding == "e8m0" else q.scales, layout, m, groups)
    if grid is None:
        return None
    return dequantize_rows(q.values, scale_values(grid), q.group, packed_fp4=packed)
