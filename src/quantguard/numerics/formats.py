"""Element and scale formats as AITER defines them, with exact encoders for references.

The e8m0 encoders reproduce AITER's four rounding modes bit for bit
(``csrc/include/mx_quant_utils.h``): the scale is a power of two whose biased
f32 exponent is the stored byte.  ``t`` (``target_max_pow2``) is 2 for fp4,
8 for e4m3fn and 7 for e4m3fnuz.  A producer that rounds with another mode
than the one it declares is exactly the DeepSeek-V4 incident, so these must
match the kernels, not approximate them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = [
    "ElementFormat",
    "FP8_E4M3FN",
    "FP8_E4M3FNUZ",
    "INT8",
    "FP4_E2M1",
    "INT4",
    "ROUNDING_MODES",
    "element_format",
    "fp8_format",
    "e8m0_encode",
    "e8m0_decode",
    "is_e8m0_dtype",
    "E2M1_VALUES",
    "saturating_cast",
    "round_to_format",
    "e8m0_format",
    "raw_bits",
    "scale_storage",
]

ROUNDING_MODES = ("up", "down", "even", "ceil")
#: Names AITER/Quark use for the modes (for messages).
MODE_NAMES = {"up": "RoundUp", "down": "RoundDown", "even": "Even", "ceil": "Ceil"}


@dataclass(frozen=True)
class ElementFormat:
    """A quantized element format: its name, largest magnitude and e8m0 constants."""

    name: str
    max: float
    kind: str  # "float" or "int"
    target_max_pow2: int = 0  # log2 of the largest power of two <= max (e8m0 modes)
    mbits: int = 0  # mantissa bits (Even mode)
    family: str = ""  # fp8 | int8 | fp4 | int4 (threshold keys)


FP8_E4M3FN = ElementFormat("float8_e4m3fn", 448.0, "float", 8, 3, "fp8")
FP8_E4M3FNUZ = ElementFormat("float8_e4m3fnuz", 240.0, "float", 7, 3, "fp8")
INT8 = ElementFormat("int8", 127.0, "int", 0, 0, "int8")
FP4_E2M1 = ElementFormat("float4_e2m1", 6.0, "float", 2, 1, "fp4")
INT4 = ElementFormat("int4", 7.0, "int", 0, 0, "int4")

#: e2m1 magnitudes by the low three bits of a nibble (bit 3 is the sign).
E2M1_VALUES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)

_BY_DTYPE_NAME = {
    "float8_e4m3fn": FP8_E4M3FN,
    "float8_e4m3fnuz": FP8_E4M3FNUZ,
    "int8": INT8,
    "float4_e2m1fn_x2": FP4_E2M1,
}


def element_format(dtype: torch.dtype) -> ElementFormat | None:
    """The element format a tensor of ``dtype`` holds (``None`` for uint8 and high precision)."""
    return _BY_DTYPE_NAME.get(str(dtype).replace("torch.", ""))


def fp8_format(name: str | None) -> ElementFormat | None:
    return {"float8_e4m3fn": FP8_E4M3FN, "float8_e4m3fnuz": FP8_E4M3FNUZ}.get(name or "")


def is_e8m0_dtype(dtype: torch.dtype) -> bool:
    return str(dtype).replace("torch.", "") == "float8_e8m0fnu"


def e8m0_format(element: ElementFormat | None) -> ElementFormat:
    """The format whose e8m0 constants (``t``, ``mbits``, max) a producer of ``element`` uses.

    fp4 and the fp8 variants carry their own (t = 2, 8, 7); anything else gets
    e4m3fn's as a default (AITER has no e8m0 scales for integer elements).
    """
    return element if element is not None and element.target_max_pow2 else FP8_E4M3FN


_SAME_WIDTH_INTEGERS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def raw_bits(tensor: torch.Tensor) -> torch.Tensor:
    """The same memory as integers of the same element size (integer tensors as they are).

    Bytes then compare exactly (NaN payloads, -0) and are copied bit for bit by
    the device kernels.  Raises ``ValueError`` for an element size no integer
    dtype has.
    """
    if tensor.dtype in (torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64):
        return tensor
    width = _SAME_WIDTH_INTEGERS.get(tensor.element_size())
    if width is None:
        raise ValueError(f"{tensor.dtype} elements are {tensor.element_size()} bytes: no integer dtype has that size")
    return tensor.view(width)


def scale_storage(scales: torch.Tensor) -> torch.Tensor:
    """A scale tensor as layouts are read and compared: one-byte (e8m0) scales as uint8 codes, others as they are.

    ``float8_e8m0fnu`` supports almost no torch operations, and a uint8
    parameter holding e8m0 codes must not be read as numbers.
    """
    return scales.view(torch.uint8) if scales.element_size() == 1 else scales


def _f32_bits(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.float32).contiguous().view(torch.int32).to(torch.int64) & 0xFFFFFFFF


def e8m0_encode(amax: torch.Tensor, mode: str, fmt: ElementFormat) -> torch.Tensor:
    """The e8m0 byte (int64 tensor, 0..255) AITER stores for a group with this ``amax``."""
    amax = amax.to(torch.float32)
    if mode == "up":
        bits = _f32_bits(amax * (1.0 / fmt.max))  # the scalar is rounded to f32 first, like the kernel's constant
        exponent = (bits >> 23) & 0xFF
        bump = (exponent < 0xFF) & ((bits & 0x7FFFFF) != 0)
        return exponent + bump.to(torch.int64)
    if mode in ("down", "ceil"):
        bits = _f32_bits(amax * 2.0**-fmt.target_max_pow2)
        exponent = (bits >> 23) & 0xFF
        if mode == "ceil":
            exponent = exponent + ((exponent < 0xFF) & ((bits & 0x7FFFFF) != 0)).to(torch.int64)
        return exponent
    if mode == "even":
        bits = _f32_bits(amax)
        half_step = 1 << (23 - fmt.mbits - 1)
        rounded = (bits + half_step) & 0xFF800000
        raw = (rounded >> 23) & 0xFF
        return torch.where(raw >= fmt.target_max_pow2, raw - fmt.target_max_pow2, torch.zeros_like(raw))
    raise ValueError(f"unknown e8m0 rounding mode {mode!r}; accepted: {', '.join(ROUNDING_MODES)}")


def e8m0_decode(byte: torch.Tensor) -> torch.Tensor:
    """2^(byte-127) as float32; 0xFF is NaN."""
    byte = byte.to(torch.int64)
    value = torch.exp2((byte - 127).to(torch.float32))
    return torch.where(byte == 0xFF, torch.full_like(value, float("nan")), value)


def saturating_cast(x: torch.Tensor, dtype: torch.dtype, fmt: ElementFormat) -> torch.Tensor:
    """Clamp to ±max before casting, as AITER's quant kernels do (torch's cast would give NaN/inf)."""
    return x.clamp(-fmt.max, fmt.max).to(dtype)


def round_to_format(x: torch.Tensor, dtype: torch.dtype, fmt: ElementFormat) -> torch.Tensor:
    """``x`` (already divided by its scale) rounded into an fp8 or integer format, as float32 values."""
    if dtype.is_floating_point:
        return saturating_cast(x, dtype, fmt).to(torch.float32)
    return torch.round(x).clamp(-fmt.max, fmt.max)
