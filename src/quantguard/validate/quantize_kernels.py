"""Which AITER entry points a quantized linear calls, per scheme, backend and weight layout.

Every path is declared once, as data plus two small functions: ``prepare``
turns a high-precision weight into the operands the GEMM reads (quantized by
:mod:`quantguard.validate.quantize_weights`, preshuffled with
``aiter.ops.shuffle.shuffle_weight`` where the kernel expects it), ``run``
quantizes a (M, K) activation with AITER's quant entry point and calls the
GEMM. The entry points are AITER's public ones with their real signatures
and are looked up when a path is built, so the simulator (``quantguard.sim``)
and the real package are used the same way.

The calls follow ATOM's linear layers: per-token FP8 runs
``gemm_a8w8_bpreshuffle`` on a preshuffled weight (``gemm_a8w8_CK`` on a plain
one, Triton ``gemm_a8w8``); FP8 blockscale quantizes activations with
``per_group_quant_hip(transpose_scale=preshuffle)`` for the CK, Triton or ASM
blockscale GEMM; MXFP4 quantizes with ``per_1x32_mx_quant_hip`` for
``gemm_a4w4`` (ASM, or CK where a tuned CK kernel exists) or the Triton FP4
GEMMs. AITER has no INT4 GEMM for linear layers, so INT4 (W4A16, group 128)
runs a precision-matched torch path and says so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from quantguard.validate import quantize_weights

__all__ = ["BACKENDS", "SCHEMES", "KernelPath", "UnsupportedPath", "default_preshuffle", "kernel_path"]

#: Quantization schemes (the configurations ``validate accuracy`` runs).
SCHEMES: tuple[str, ...] = ("fp8_per_token", "fp8_blockscale", "mxfp4", "int4")
#: GEMM backends a configuration can ask for.
BACKENDS: tuple[str, ...] = ("ck", "triton", "asm")
#: Archs with FP4 GEMMs in AITER (``gemm_a4w4`` raises and the Triton FP4 GEMMs assert elsewhere).
_FP4_ARCHS = ("gfx950",)
_SHUFFLE_LAYOUT = (16, 16)

Operands = Mapping[str, torch.Tensor]


class UnsupportedPath(ValueError):
    """A scheme/backend/layout/arch combination AITER has no kernel for."""


@dataclass(frozen=True)
class KernelPath:
    """How one quantized linear runs: the entry points, the weight layout, the shape rules.

    ``in_multiple``/``out_multiple``: K and N must be multiples of these for the
    layer to be quantized (other layers keep their original precision).
    """

    scheme: str
    backend: str
    preshuffle: bool
    activation_quant: str
    gemm: str
    in_multiple: int
    out_multiple: int
    prepare: Callable[[torch.Tensor], Operands]
    run: Callable[[torch.Tensor, Operands, torch.dtype], torch.Tensor]

    def supports(self, out_features: int, in_features: int) -> bool:
        return in_features % self.in_multiple == 0 and out_features % self.out_multiple == 0

    @property
    def description(self) -> str:
        return f"{self.activation_quant} -> {self.gemm}"


def default_preshuffle(backend: str) -> bool:
    """ATOM's default: preshuffled weights unless the GEMMs run on Triton."""
    return backend != "triton"


def _shuffled(weight: torch.Tensor) -> torch.Tensor:
    from aiter.ops.shuffle import shuffle_weight

    return shuffle_weight(weight, layout=_SHUFFLE_LAYOUT)


# --------------------------------------------------------------------------
# FP8 per-token activations x per-channel weights
# --------------------------------------------------------------------------


def _fp8_per_token(backend: str, preshuffle: bool) -> KernelPath:
    from aiter import dtypes
    from aiter.ops.quant import per_token_quant_hip

    def prepare(weight: torch.Tensor) -> Operands:
        values, scale = quantize_weights.fp8_per_channel(weight, dtypes.fp8)
        return {"weight": _shuffled(values) if preshuffle else values, "scale": scale}

    if backend == "triton":
        from aiter.ops.triton.gemm.basic.gemm_a8w8 import gemm_a8w8

        def gemm(xq, xs, ops, dtype):
            return gemm_a8w8(xq, ops["weight"], xs, ops["scale"].view(1, -1), dtype=dtype)

        name = "aiter.ops.triton.gemm.basic.gemm_a8w8.gemm_a8w8"
    elif preshuffle:
        from aiter import gemm_a8w8_bpreshuffle

        def gemm(xq, xs, ops, dtype):
            return gemm_a8w8_bpreshuffle(xq, ops["weight"], xs, ops["scale"], dtype=dtype)

        name = "aiter.gemm_a8w8_bpreshuffle"
    else:
        from aiter import gemm_a8w8_CK

        def gemm(xq, xs, ops, dtype):
            return gemm_a8w8_CK(xq, ops["weight"], xs, ops["scale"], dtype=dtype)

        name = "aiter.gemm_a8w8_CK"

    def run(x: torch.Tensor, ops: Operands, dtype: torch.dtype) -> torch.Tensor:
        xq, xs = per_token_quant_hip(x, quant_dtype=dtypes.fp8)
        return gemm(xq, xs, ops, dtype)

    multiple = (32, 16) if preshuffle else (1, 1)
    return KernelPath(
        "fp8_per_token", backend, preshuffle, "aiter.ops.quant.per_token_quant_hip", name, *multiple, prepare, run
    )


# --------------------------------------------------------------------------
# FP8 1x128 activation groups x 128x128 weight blocks
# --------------------------------------------------------------------------


def _fp8_blockscale(backend: str, preshuffle: bool) -> KernelPath:
    from aiter import dtypes
    from aiter.ops.quant import per_group_quant_hip

    def prepare(weight: torch.Tensor) -> Operands:
        values, scale = quantize_weights.fp8_blocks(weight, dtypes.fp8)
        return {"weight": _shuffled(values) if preshuffle else values, "scale": scale}

    if backend == "asm":
        from aiter.ops.gemm_op_a8w8 import gemm_a8w8_blockscale_bpreshuffle_asm

        def gemm(xq, xs, ops, dtype):
            # The ASM kernel writes bf16 into a caller-owned buffer; note its argument order.
            out = torch.empty(xq.shape[0], ops["weight"].shape[0], dtype=torch.bfloat16, device=xq.device)
            return gemm_a8w8_blockscale_bpreshuffle_asm(xq, ops["weight"], out, xs, ops["scale"]).to(dtype)

        name = "aiter.ops.gemm_op_a8w8.gemm_a8w8_blockscale_bpreshuffle_asm"
    elif backend == "triton" and preshuffle:
        from aiter.ops.triton.gemm.basic.gemm_a8w8_blockscale import gemm_a8w8_blockscale_preshuffle

        def gemm(xq, xs, ops, dtype):
            weight = ops["weight"]
            flat = weight.reshape(weight.shape[0] // 16, weight.shape[1] * 16)
            return gemm_a8w8_blockscale_preshuffle(xq, flat, xs, ops["scale"], dtype=dtype, is_x_scale_tranposed=True)

        name = "aiter.ops.triton.gemm.basic.gemm_a8w8_blockscale.gemm_a8w8_blockscale_preshuffle"
    elif backend == "triton":
        from aiter.ops.triton.gemm.basic.gemm_a8w8_blockscale import gemm_a8w8_blockscale

        def gemm(xq, xs, ops, dtype):
            return gemm_a8w8_blockscale(xq, ops["weight"], xs, ops["scale"], dtype=dtype)

        name = "aiter.ops.triton.gemm.basic.gemm_a8w8_blockscale.gemm_a8w8_blockscale"
    elif preshuffle:
        from aiter import gemm_a8w8_blockscale_bpreshuffle

        def gemm(xq, xs, ops, dtype):
            return gemm_a8w8_blockscale_bpreshuffle(xq, ops["weight"], xs, ops["scale"], dtype=dtype)

        name = "aiter.gemm_a8w8_blockscale_bpreshuffle"
    else:
        from aiter import gemm_a8w8_blockscale

        def gemm(xq, xs, ops, dtype):
            return gemm_a8w8_blockscale(xq, ops["weight"], xs, ops["scale"], dtype=dtype)

        name = "aiter.gemm_a8w8_blockscale"

    def run(x: torch.Tensor, ops: Operands, dtype: torch.dtype) -> torch.Tensor:
        # Preshuffle GEMMs read a transposed x_scale: (M, G) whose bytes are (G, M).
        xq, xs = per_group_quant_hip(
            x, quant_dtype=dtypes.fp8, group_size=quantize_weights.BLOCK, transpose_scale=preshuffle
        )
        return gemm(xq, xs, ops, dtype)

    quant = f"aiter.ops.quant.per_group_quant_hip(group_size=128, transpose_scale={preshuffle})"
    block = quantize_weights.BLOCK
    return KernelPath("fp8_blockscale", backend, preshuffle, quant, name, block, block, prepare, run)


# --------------------------------------------------------------------------
# MXFP4: fp4 values with e8m0 scales per 32 elements
# --------------------------------------------------------------------------


def _mxfp4(backend: str, preshuffle: bool) -> KernelPath:
    from aiter import dtypes
    from aiter.ops.quant import per_1x32_mx_quant_hip
    from aiter.utility.fp4_utils import e8m0_shuffle

    def prepare(weight: torch.Tensor) -> Operands:
        values, scale = quantize_weights.mxfp4_groups(weight)
        if not preshuffle:
            return {"weight": values, "scale": scale}
        return {"weight": _shuffled(values), "scale": e8m0_shuffle(scale)}

    def quant(x: torch.Tensor, shuffle: bool):
        return per_1x32_mx_quant_hip(x, quant_dtype=dtypes.fp4x2, shuffle=shuffle)

    if backend == "triton" and preshuffle:
        from aiter.ops.triton.gemm.basic.gemm_afp4wfp4 import gemm_afp4wfp4_preshuffle

        def run(x: torch.Tensor, ops: Operands, dtype: torch.dtype) -> torch.Tensor:
            # As ATOM: activation scales are swizzled only from 32 rows on.
            rows = x.shape[0]
            swizzled = rows >= quantize_weights.MX_GROUP
            xq, xs = quant(x, swizzled)
            xs = xs.view(torch.uint8)
            xs = xs.view(xs.shape[0] // quantize_weights.MX_GROUP, -1) if swizzled else xs[:rows]
            weight, scale = ops["weight"].view(torch.uint8), ops["scale"].view(torch.uint8)
            return gemm_afp4wfp4_preshuffle(
                xq.view(torch.uint8),
                weight.view(weight.shape[0] // 16, -1),
                xs,
                scale.view(scale.shape[0] // quantize_weights.MX_GROUP, -1),
                dtype=dtype,
            )

        name = "aiter.ops.triton.gemm.basic.gemm_afp4wfp4.gemm_afp4wfp4_preshuffle"
    elif backend == "triton":
        from aiter.ops.triton.gemm.basic.gemm_afp4wfp4 import gemm_afp4wfp4

        def run(x: torch.Tensor, ops: Operands, dtype: torch.dtype) -> torch.Tensor:
            xq, xs = quant(x, False)
            return gemm_afp4wfp4(
                xq.view(torch.uint8),
                ops["weight"].view(torch.uint8),
                xs.view(torch.uint8),
                ops["scale"].view(torch.uint8),
                dtype=dtype,
            )

        name = "aiter.ops.triton.gemm.basic.gemm_afp4wfp4.gemm_afp4wfp4"
    else:
        if not preshuffle:
            raise UnsupportedPath(
                "gemm_a4w4 reads preshuffled weights only; drop --no-preshuffle or use --backend triton"
            )
        from aiter import gemm_a4w4

        def run(x: torch.Tensor, ops: Operands, dtype: torch.dtype) -> torch.Tensor:
            xq, xs = quant(x, True)
            return gemm_a4w4(xq, ops["weight"], xs, ops["scale"], dtype=dtype)

        name = "aiter.gemm_a4w4 (ASM kernel, or CK where a tuned CK kernel exists)"

    quant_name = f"aiter.ops.quant.per_1x32_mx_quant_hip(quant_dtype=fp4x2, shuffle={preshuffle})"
    # Preshuffled fp4 bytes need N % 16 and (K/2) % 32; plain ones K % 32.
    multiple = (64, 16) if preshuffle else (quantize_weights.MX_GROUP, 1)
    return KernelPath("mxfp4", backend, preshuffle, quant_name, name, *multiple, prepare, run)


# --------------------------------------------------------------------------
# INT4 weight-only (W4A16), group 128: torch, not an AITER kernel
# --------------------------------------------------------------------------


def _int4(backend: str, preshuffle: bool) -> KernelPath:
    def prepare(weight: torch.Tensor) -> Operands:
        codes, scale = quantize_weights.int4_groups(weight)
        return {"weight": quantize_weights.dequantize_int4(codes, scale, weight.dtype)}

    def run(x: torch.Tensor, ops: Operands, dtype: torch.dtype) -> torch.Tensor:
        # A W4A16 kernel: weight dequantized to the activation dtype, fp32 accumulation.
        return (x.float() @ ops["weight"].float().T).to(dtype)

    return KernelPath(
        "int4",
        backend,
        False,
        "none (16-bit activations)",
        "torch W4A16 reference (AITER has no INT4 linear GEMM)",
        quantize_weights.INT4_GROUP,
        1,
        prepare,
        run,
    )


_BUILDERS: dict[str, Callable[[str, bool], KernelPath]] = {
    "fp8_per_token": _fp8_per_token,
    "fp8_blockscale": _fp8_blockscale,
    "mxfp4": _mxfp4,
    "int4": _int4,
}


def kernel_path(scheme: str, backend: str, preshuffle: bool | None, arch: str) -> KernelPath:
    """The path a linear of ``scheme`` takes on ``backend``; imports AITER.

    ``preshuffle=None`` takes ATOM's default for the backend. Raises
    :class:`UnsupportedPath` where AITER has no kernel: per-token FP8 on ASM
    (its ASM GEMMs are INT8-only), FP4 before gfx950, blockscale ASM on a plain
    weight, or an entry point this AITER does not export.
    """
    if scheme not in _BUILDERS:
        raise UnsupportedPath(f"unknown configuration {scheme!r}; accepted: {', '.join(SCHEMES)}")
    if backend not in BACKENDS:
        raise UnsupportedPath(f"unknown backend {backend!r}; accepted: {', '.join(BACKENDS)}")
    if scheme == "mxfp4" and arch not in _FP4_ARCHS:
        raise UnsupportedPath(
            f"mxfp4 needs an FP4 GEMM, which AITER has only on {', '.join(_FP4_ARCHS)} (this is {arch})"
        )
    if scheme == "fp8_per_token" and backend == "asm":
        raise UnsupportedPath(
            "fp8_per_token has no ASM GEMM in AITER (gemm_a8w8_ASM is INT8-only); use --backend ck or triton"
        )
    if preshuffle is None:
        preshuffle = default_preshuffle(backend)
    if scheme == "fp8_blockscale" and backend == "asm" and not preshuffle:
        raise UnsupportedPath("the ASM blockscale GEMM reads preshuffled weights only; drop --no-preshuffle")
    if scheme == "fp8_per_token" and backend == "triton":
        preshuffle = False  # Triton's per-token GEMM has no preshuffled variant
    try:
        return _BUILDERS[scheme](backend, preshuffle)
    except ImportError as exc:  # e.g. AITER_TRITON_ONLY=1 hides the HIP/CK entry points
        raise UnsupportedPath(f"this AITER does not provide what {scheme} on {backend} calls: {exc}") from exc
