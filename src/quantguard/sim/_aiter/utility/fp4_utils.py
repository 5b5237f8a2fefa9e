"""Simulated ``aiter.utility.fp4_utils``: MXFP4 helpers used by ATOM."""

from quantguard.sim._kernels import e8m0, fp4

from . import dtypes

__all__ = ["e8m0_shuffle", "e8m0_to_f32", "f32_to_mxfp4", "mxfp4_to_f32"]


def f32_to_mxfp4(x):
    """Already-scaled fp32 values -> packed fp4x2 (round to nearest even, saturating)."""
    return fp4.pack(fp4.encode(x.float())).view(dtypes.fp4x2)


def mxfp4_to_f32(x):
    """Packed fp4x2 (or uint8) -> unscaled fp32 values, last dim doubled."""
    return fp4.to_float(x)


def e8m0_to_f32(scale_e8m0_biased):
    """e8m0 bytes -> fp32 (byte 0 is 2^-127, 0xFF is NaN)."""
    return e8m0.decode(scale_e8m0_biased)


def e8m0_shuffle(scale):
    """MX-swizzle a row-major e8m0 scale for the preshuffled FP4 GEMMs."""
    from aiter.ops.shuffle import shuffle_scale

    return shuffle_scale(scale)
