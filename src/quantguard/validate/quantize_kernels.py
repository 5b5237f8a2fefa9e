"""Running the paths of :mod:`quantguard.contracts.aiter_paths` on AITER: weights, calls, and accuracy's choice.

The table says which entry points a path calls, with which flags, and which
layouts its GEMM reads; this module knows how each entry point is called
(which operands it takes in which order, whether it returns its outputs or
writes into buffers) and turns a row into a :class:`KernelPath` that
``validate quant`` and ``validate accuracy`` both run:

* ``prepare`` lays a checkpoint weight (:func:`quantize_weight`, quantized by
  :mod:`quantguard.validate.quantize_weights`, not by the kernels under test)
  out the way the GEMM reads it;
* ``quantize`` calls the quant entry point on an (M, K) activation;
* ``run_gemm`` calls the GEMM.

Entry points are looked up by their dotted path at every call, so the
simulator (``quantguard.sim``), the real package and quantguard's own wrappers
are used the same way. :func:`kernel_path` picks the row ``validate
accuracy`` runs for a scheme, backend and weight layout, as ATOM does.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch

from quantguard.contracts import aiter_paths
from quantguard.contracts.aiter_paths import PATHS, AiterPath, Call, DType, MinRows
from quantguard.numerics.dequant import dequantize_rows, expand_blocks_2d, scale_values
from quantguard.numerics.formats import FP4_E2M1, INT8, ElementFormat, element_format
from quantguard.numerics.layouts import pad_to
from quantguard.validate import quantize_weights as qw

__all__ = [
    "BACKENDS",
    "SCHEMES",
    "KernelPath",
    "Operands",
    "QuantWeight",
    "Quantized",
    "UnsupportedPath",
    "default_preshuffle",
    "entry_point",
    "kernel_path",
    "quantize_weight",
    "unsupported_arch",
]

#: Quantization schemes (the configurations ``validate accuracy`` runs).
SCHEMES: tuple[str, ...] = ("fp8_per_token", "fp8_blockscale", "mxfp4", "int4")
#: GEMM backends a configuration can ask for.
BACKENDS: tuple[str, ...] = aiter_paths.ATOM_BACKENDS

Operands = Mapping[str, torch.Tensor]


class UnsupportedPath(ValueError):
    """A scheme/backend/layout/arch combination AITER has no kernel for."""


@dataclass(frozen=True)
class Quantized:
    """An activation quant call's result and how to read its scale buffer.

    ``group``: ``None`` per token, ``0`` per tensor, else elements per scale.
    ``encoding``: ``"fp32"``, ``"e8m0"`` (with the rounding mode AITER declares for the producer) or ``"none"``.
    """

    values: torch.Tensor
    scales: torch.Tensor
    group: int | None
    encoding: str
    element: ElementFormat
    rounding: str | None = None


@dataclass(frozen=True)
class QuantWeight:
    """A checkpoint weight: quantized values (plain layout), their scale, and (on demand) the fp32 product.

    ``granularity`` is the scheme's weight-scale granularity; ``dtype`` the
    16-bit dtype the weight came in (a W4A16 kernel multiplies in it).
    """

    values: torch.Tensor
    scale: torch.Tensor
    granularity: str
    dtype: torch.dtype

    @cached_property
    def dequantized(self) -> torch.Tensor:
        """The fp32 weight the quantized values and scales stand for (computed once, when first read)."""
        if self.granularity in ("per_channel", "per_tensor"):
            return self.values.float() * self.scale
        if self.granularity == "block_128x128":
            rows, cols = self.values.shape
            return self.values.float() * expand_blocks_2d(self.scale, qw.BLOCK, qw.BLOCK, rows, cols)
        if self.granularity == "mx_1x32":
            return dequantize_rows(self.values, scale_values(self.scale), qw.MX_GROUP, packed_fp4=True)
        return qw.dequantize_int4(self.values, self.scale, self.dtype).float()


# -- entry points ---------------------------------------------------------------------------------


def entry_point(path: str) -> Any:
    """AITER's entry point at ``path`` (module.attr[.attr]), looked up at the call (the simulator, the real one,
    or quantguard's wrapper); UnsupportedPath if this AITER lacks it."""
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


def _aiter_dtype(name: str) -> torch.dtype:
    """``aiter.dtypes.<name>``: the arch's FP8 flavour (e4m3fnuz on gfx942, e4m3fn on gfx950), fp4x2, i8."""
    return getattr(importlib.import_module("aiter").dtypes, name)


def _kwargs(entry: Call, rows: int) -> dict[str, Any]:
    """The call's keyword arguments, with aiter dtypes looked up and row-dependent flags decided."""
    resolved: dict[str, Any] = {}
    for key, value in entry.arguments:
        if isinstance(value, DType):
            value = _aiter_dtype(value.name)
        elif isinstance(value, MinRows):
            value = value.holds(rows)
        resolved[key] = value
    return resolved


# -- weights --------------------------------------------------------------------------------------


#: The torch reference that writes each checkpoint format: (quantized dtype, weight-scale granularity).
_WEIGHT_QUANTIZERS: dict[tuple[str | None, str], Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]] = {
    ("fp8", "per_channel"): lambda w: qw.fp8_per_channel(w, _aiter_dtype("fp8")),
    ("fp8", "per_tensor"): lambda w: qw.fp8_per_tensor(w, _aiter_dtype("fp8")),
    ("fp8", "block_128x128"): lambda w: qw.fp8_blocks(w, _aiter_dtype("fp8")),
    ("i8", "per_channel"): qw.int8_per_channel,
    ("fp4x2", "mx_1x32"): qw.mxfp4_groups,
    (None, "int4_1x128"): qw.int4_groups,
}


def quantize_weight(scheme: str, weight: torch.Tensor) -> QuantWeight:
    """The checkpoint form of ``weight`` for ``scheme`` (shared by every backend of the scheme)."""
    if scheme not in aiter_paths.SCHEMES:
        raise UnsupportedPath(f"unknown scheme {scheme!r}; accepted: {', '.join(aiter_paths.SCHEMES)}")
    form = aiter_paths.SCHEMES[scheme]
    values, scale = _WEIGHT_QUANTIZERS[(form.quant_dtype, form.weight_scale)](weight.float())
    return QuantWeight(values, scale, form.weight_scale, weight.dtype)


def _w_scale(scale: torch.Tensor, layout: str, n: int) -> torch.Tensor:
    """The weight scale in the layout the GEMM reads (a per-tensor scale repeated per channel)."""
    if layout not in ("per_channel", "per_channel_row"):
        return scale
    column = scale.reshape(-1, 1).expand(n, 1).contiguous() if scale.numel() == 1 else scale.reshape(n, 1)
    return column.view(1, n) if layout == "per_channel_row" else column


def _x_scale(q: Quantized) -> torch.Tensor:
    """The (M, 1) activation scale the per-token GEMMs read (a per-tensor one repeated)."""
    if q.group != 0:
        return q.scales
    return q.scales.reshape(1, 1).expand(q.values.shape[0], 1).contiguous()


# -- activation quant entry points: (entry, x, kwargs, dtype) -> (values, scales) ----------------


def _returns_outputs(entry: Any, x: torch.Tensor, kwargs: dict[str, Any], dtype: torch.dtype) -> Any:
    return entry(x, **kwargs)


def _writes_per_token(entry: Any, x: torch.Tensor, kwargs: dict[str, Any], dtype: torch.dtype) -> Any:
    values = torch.empty(x.shape, dtype=dtype, device=x.device)
    scales = torch.empty(x.shape[0], 1, dtype=torch.float32, device=x.device)
    entry(values, x, scales, **kwargs)
    return values, scales


def _writes_per_tensor(entry: Any, x: torch.Tensor, kwargs: dict[str, Any], dtype: torch.dtype) -> Any:
    values = torch.empty(x.shape, dtype=dtype, device=x.device)
    scale = torch.empty(1, dtype=torch.float32, device=x.device)
    entry(values, x, scale, **kwargs)
    return values, scale


_QUANT_CALLS: dict[str, Callable[..., Any]] = {
    "aiter.ops.quant.per_token_quant_hip": _returns_outputs,
    "aiter.ops.quant.per_group_quant_hip": _returns_outputs,
    "aiter.ops.quant.per_1x32_mx_quant_hip": _returns_outputs,
    "aiter.ops.quant.per_1x32_f4_quant_hip": _returns_outputs,
    "aiter.ops.triton.quant.dynamic_mxfp4_quant": _returns_outputs,
    "aiter.ops.triton.quant.dynamic_per_token_quant_fp8_i8": _writes_per_token,
    "aiter.ops.quant.dynamic_per_tensor_quant": _writes_per_tensor,
    "aiter.ops.triton.quant.dynamic_per_tensor_quant_fp8_i8": _writes_per_tensor,
}

# -- GEMM entry points: (entry, q, operands, dtype, kwargs, x_scale layout) -> output ------------------------------


def _out(q: Quantized, n: int, dtype: torch.dtype, rows: int | None = None) -> torch.Tensor:
    return torch.empty(rows or q.values.shape[0], n, dtype=dtype, device=q.values.device)


def _returns_dtype(entry, q, ops, dtype, kwargs, layout):
    return entry(q.values, ops["weight"], _x_scale(q), ops["scale"], dtype=dtype, **kwargs)


def _writes_out(entry, q, ops, dtype, kwargs, layout):
    out = _out(q, ops["weight"].shape[0], dtype)
    return entry(q.values, ops["weight"], _x_scale(q), ops["scale"], out, **kwargs)


def _a8w8_asm(entry, q, ops, dtype, kwargs, layout):
    bias = torch.zeros(1, ops["weight"].shape[0], dtype=torch.float32, device=q.values.device)
    return entry(q.values, ops["weight"], _x_scale(q), ops["scale"], bias, dtype=dtype, **kwargs)


def _blockscale_bpreshuffle_asm(entry, q, ops, dtype, kwargs, layout):
    # The ASM kernel writes bf16 into a caller-owned buffer; note its (A, B, out, A_scale, B_scale) order.
    out = _out(q, ops["weight"].shape[0], torch.bfloat16)
    return entry(q.values, ops["weight"], out, q.scales, ops["scale"], **kwargs).to(dtype)


def _blockscale_preshuffle_triton(entry, q, ops, dtype, kwargs, layout):
    weight = ops["weight"]
    flat = weight.reshape(weight.shape[0] // 16, weight.shape[1] * 16)
    return entry(q.values, flat, q.scales, ops["scale"], dtype=dtype, **kwargs)


def _hipblaslt(entry, q, ops, dtype, kwargs, layout):
    return entry(q.values, ops["weight"], otype=dtype, scale_a=q.scales, scale_b=ops["scale"], **kwargs)


def _a4w4_blockscale(entry, q, ops, dtype, kwargs, layout):
    m = q.values.shape[0]
    out = _out(q, ops["weight"].shape[0], dtype, rows=pad_to(m, 32))
    return entry(q.values, ops["weight"], q.scales, ops["scale"], out, **kwargs)[:m]


def _afp4wfp4(entry, q, ops, dtype, kwargs, layout):
    as_bytes = (t.view(torch.uint8) for t in (q.values, ops["weight"], q.scales, ops["scale"]))
    return entry(*as_bytes, dtype=dtype, **kwargs)


def _afp4wfp4_preshuffle(entry, q, ops, dtype, kwargs, layout):
    rows = q.values.shape[0]
    scales = q.scales.view(torch.uint8)
    # swizzled scales are read as (pad256(M) / 32, ...) bytes, plain ones as the first M rows
    scales = scales.view(scales.shape[0] // qw.MX_GROUP, -1) if layout == "mx_swizzle" else scales[:rows]
    weight, w_scale = ops["weight"].view(torch.uint8), ops["scale"].view(torch.uint8)
    return entry(
        q.values.view(torch.uint8),
        weight.view(weight.shape[0] // 16, -1),
        scales,
        w_scale.view(w_scale.shape[0] // qw.MX_GROUP, -1),
        dtype=dtype,
        **kwargs,
    )


_G8 = "aiter.ops.gemm_op_a8w8."
_TG = "aiter.ops.triton.gemm.basic."
_GEMM_CALLS: dict[str, Callable[..., torch.Tensor]] = {
    _G8 + "gemm_a8w8_CK": _returns_dtype,
    _G8 + "gemm_a8w8_bpreshuffle": _returns_dtype,
    _G8 + "gemm_a8w8_bpreshuffle_cktile": _writes_out,
    _G8 + "gemm_a8w8_ASM": _a8w8_asm,
    _G8 + "gemm_a8w8_blockscale": _returns_dtype,
    _G8 + "gemm_a8w8_blockscale_cktile": _writes_out,
    _G8 + "gemm_a8w8_blockscale_bpreshuffle": _returns_dtype,
    _G8 + "gemm_a8w8_blockscale_bpreshuffle_asm": _blockscale_bpreshuffle_asm,
    _TG + "gemm_a8w8.gemm_a8w8": _returns_dtype,
    _TG + "gemm_a8w8_blockscale.gemm_a8w8_blockscale": _returns_dtype,
    _TG + "gemm_a8w8_blockscale.gemm_a8w8_blockscale_preshuffle": _blockscale_preshuffle_triton,
    "aiter.tuned_gemm.tgemm.mm": _hipblaslt,
    "aiter.ops.gemm_op_a4w4.gemm_a4w4": _returns_dtype,
    "aiter.ops.gemm_op_a4w4.gemm_a4w4_blockscale": _a4w4_blockscale,
    _TG + "gemm_afp4wfp4.gemm_afp4wfp4": _afp4wfp4,
    _TG + "gemm_afp4wfp4.gemm_afp4wfp4_preshuffle": _afp4wfp4_preshuffle,
}


# -- a runnable path ------------------------------------------------------------------------------


@dataclass(frozen=True)
class KernelPath:
    """One row of :data:`quantguard.contracts.aiter_paths.PATHS`, runnable.

    The attributes reports read (``name``, ``quant``, ``gemm``, ``expected_layout``...)
    are the row's, as text.
    """

    spec: AiterPath

    @property
    def scheme(self) -> str:
        return self.spec.scheme

    @property
    def backend(self) -> str:
        return self.spec.backend

    @property
    def variant(self) -> str:
        return self.spec.variant

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def quant(self) -> str:
        return self.spec.quant_label

    @property
    def gemm(self) -> str:
        return self.spec.gemm_label

    @property
    def description(self) -> str:
        return f"{self.quant} -> {self.gemm}"

    @property
    def expected_layout(self) -> str:
        """How the GEMM reads x_scale: logical | row_major | transposed | mx_swizzle | none."""
        return self.spec.x_scale

    @property
    def archs(self) -> tuple[str, ...]:
        return self.spec.archs

    @property
    def ck(self) -> bool:
        return self.spec.ck

    @property
    def asm(self) -> bool:
        return self.spec.asm

    @property
    def out_dtype(self) -> torch.dtype:
        return torch.bfloat16

    def layout_for(self, m: int) -> str:
        """How the GEMM reads x_scale for an M-row activation."""
        if self.spec.x_scale_below_32_rows is not None and m < qw.MX_GROUP:
            return self.spec.x_scale_below_32_rows
        return self.spec.x_scale

    def unsupported_shape(self, m: int, n: int, k: int) -> str | None:
        spec = self.spec
        if n % spec.n_multiple or k % spec.k_multiple:
            return f"needs N % {spec.n_multiple} == 0 and K % {spec.k_multiple} == 0"
        if m < spec.m_min or k < spec.k_min:
            return f"needs M >= {spec.m_min} and K >= {spec.k_min}"
        return None

    def supports(self, out_features: int, in_features: int) -> bool:
        """Whether a linear of this shape can be quantized onto the path (any M)."""
        return self.unsupported_shape(self.spec.m_min, out_features, in_features) is None

    def resolve(self) -> None:
        """Raise :class:`UnsupportedPath` unless this AITER has every entry point the path names."""
        try:
            for entry in self.spec.entry_points():
                entry_point(entry)
            quant_dtype = aiter_paths.SCHEMES[self.scheme].quant_dtype
            if quant_dtype is not None:
                _aiter_dtype(quant_dtype)
        except (UnsupportedPath, ImportError, AttributeError) as exc:
            raise UnsupportedPath(
                f"this AITER does not provide what {self.scheme} on {self.backend} calls: {exc}"
            ) from exc

    def prepare(self, weight: QuantWeight) -> Operands:
        """The GEMM's weight operands: the checkpoint weight preshuffled and its scale laid out as read."""
        spec = self.spec
        if spec.gemm is None:  # W4A16: the weight dequantized to the activation dtype
            return {"weight": qw.dequantize_int4(weight.values, weight.scale, weight.dtype)}
        values, scale = weight.values, weight.scale
        if spec.weight_prep is not None:
            values = entry_point(spec.weight_prep.path)(values, **_kwargs(spec.weight_prep, 0))
        if spec.w_scale_prep is not None:
            scale = entry_point(spec.w_scale_prep.path)(scale, **_kwargs(spec.w_scale_prep, 0))
        return {"weight": values, "scale": _w_scale(scale, spec.w_scale, values.shape[0])}

    def quantize(self, x: torch.Tensor) -> Quantized:
        """Quantize an (M, K) activation with the path's quant entry point."""
        spec, form = self.spec, aiter_paths.SCHEMES[self.spec.scheme]
        if spec.quant is None or form.quant_dtype is None:  # W4A16: activations stay 16-bit
            return Quantized(x, torch.ones(1, dtype=torch.float32, device=x.device), 0, "none", INT8)
        dtype = _aiter_dtype(form.quant_dtype)
        values, scales = _QUANT_CALLS[spec.quant.path](
            entry_point(spec.quant.path), x, _kwargs(spec.quant, x.shape[0]), dtype
        )
        element = FP4_E2M1 if form.quant_dtype == "fp4x2" else element_format(dtype)
        assert element is not None, f"{dtype} is not a quantized element format"
        return Quantized(values, scales, form.activation_group, form.x_scale_dtype, element, spec.x_scale_rounding)

    def run_gemm(self, q: Quantized, operands: Operands, dtype: torch.dtype) -> torch.Tensor:
        """Multiply a quantized activation with the prepared weight on the path's GEMM."""
        gemm = self.spec.gemm
        if gemm is None:  # W4A16: fp32 accumulation of the 16-bit weight
            return (q.values.float() @ operands["weight"].float().T).to(dtype)
        rows = q.values.shape[0]
        return _GEMM_CALLS[gemm.path](
            entry_point(gemm.path), q, operands, dtype, _kwargs(gemm, rows), self.layout_for(rows)
        )

    def run(self, x: torch.Tensor, operands: Operands, dtype: torch.dtype) -> torch.Tensor:
        """Quantize ``x`` and run the GEMM: one quantized linear layer's forward."""
        return self.run_gemm(self.quantize(x), operands, dtype)


# -- the path validate accuracy runs --------------------------------------------------------------

#: Where ATOM calls another backend's entry point: MXFP4 on CK goes through ``gemm_a4w4``, which runs
#: its ASM kernel unless AITER has a tuned CK kernel for the shape.
_CALLED_AS = {("mxfp4", "ck"): "asm"}


def default_preshuffle(backend: str) -> bool:
    """ATOM's default: preshuffled weights unless the GEMMs run on Triton."""
    return aiter_paths.atom_preshuffles(backend)


def unsupported_arch(scheme: str, arch: str) -> str | None:
    """Why AITER has no path for ``scheme`` on ``arch``, or ``None``."""
    archs = aiter_paths.scheme_archs(scheme)
    if arch in archs:
        return None
    kind = "an FP4 GEMM" if aiter_paths.SCHEMES[scheme].quant_dtype == "fp4x2" else "a GEMM"
    return f"{scheme} needs {kind}, which AITER has only on {', '.join(archs)} (this is {arch})"


def _path_for(scheme: str, backend: str, preshuffle: bool) -> AiterPath:
    rows = [path for path in PATHS if path.scheme == scheme]
    if all(path.gemm is None for path in rows):  # no AITER kernel: one stand-in for every backend
        return rows[0]
    called = _CALLED_AS.get((scheme, backend), backend)
    candidates = [path for path in rows if path.backend == called]
    if not candidates:
        # The backend's GEMMs for the same scale granularity serve other schemes only (ASM per-token: INT8).
        group = aiter_paths.SCHEMES[scheme].activation_group
        serving = {
            path.gemm.name: path.scheme
            for path in PATHS
            if path.backend == called and path.gemm and aiter_paths.SCHEMES[path.scheme].activation_group == group
        }
        detail = "".join(f" ({gemm} is {other.upper()}-only)" for gemm, other in serving.items())
        others = [b for b in BACKENDS if any(path.backend == b for path in rows)]
        raise UnsupportedPath(
            f"{scheme} has no {backend.upper()} GEMM in AITER{detail}; use --backend {' or '.join(others)}"
        )
    if scheme == "fp8_per_token" and backend == "triton":
        preshuffle = False  # Triton's per-token GEMM has no preshuffled variant
    for path in candidates:
        if path.preshuffled == preshuffle:
            return path
    only = candidates[0]
    advice = "drop --preshuffle" if preshuffle else "drop --no-preshuffle"
    if any(path.backend == "triton" and path.preshuffled == preshuffle for path in rows):
        advice += " or use --backend triton"
    gemm = only.gemm.name if only.gemm else only.gemm_label
    raise UnsupportedPath(f"{gemm} reads {'preshuffled' if only.preshuffled else 'plain'} weights only; {advice}")


def kernel_path(scheme: str, backend: str, preshuffle: bool | None, arch: str) -> KernelPath:
    """The path a linear of ``scheme`` takes on ``backend``, as ATOM picks it; checks AITER has it.

    ``preshuffle=None`` takes ATOM's default for the backend. Raises
    :class:`UnsupportedPath` where AITER has no kernel: per-token FP8 on ASM
    (its ASM GEMMs are INT8-only), FP4 before gfx950, blockscale ASM on a plain
    weight, or an entry point this AITER does not export.
    """
    if scheme not in SCHEMES:
        raise UnsupportedPath(f"unknown configuration {scheme!r}; accepted: {', '.join(SCHEMES)}")
    if backend not in BACKENDS:
        raise UnsupportedPath(f"unknown backend {backend!r}; accepted: {', '.join(BACKENDS)}")
    reason = unsupported_arch(scheme, arch)
    if reason:
        raise UnsupportedPath(reason)
    path = KernelPath(_path_for(scheme, backend, default_preshuffle(backend) if preshuffle is None else preshuffle))
    path.resolve()
    return path
