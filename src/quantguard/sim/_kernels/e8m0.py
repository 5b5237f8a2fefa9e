"""E8M0 block scales: the four AITER rounding modes and byte <-> value.

Byte ``b`` means ``2**(b - 127)`` (0 -> 2^-127, 0xFF -> NaN). The modes follow
``csrc/include/mx_quant_utils.h``; ``t`` is log2 of the largest power of two
not above the element format's maximum (2 for fp4, 8 for e4m3fn, 7 for
e4m3fnuz) and ``mbits`` its mantissa width.
"""

from __future__ import annotations

import torch

ROUND_DOWN, ROUND_UP, EVEN, CEIL = 0, 1, 2, 3
MODES = {"round_down": ROUND_DOWN, "round_up": ROUND_UP, "even": EVEN, "ceil": CEIL}

#: Element format -> (t, max_pos, mbits).
FORMATS = {
    "fp4": (2, 6.0, 1),
    "e4m3fn": (8, 448.0, 3),
    "e4m3fnuz": (7, 240.0, 3),
}


#: FP8 element dtype -> its :data:`FORMATS` key.
FP8_FORMATS = {torch.float8_e4m3fn: "e4m3fn", torch.float8_e4m3fnuz: "e4m3fnuz"}


def _exponent(values: torch.Tensor) -> torch.Tensor:
    return (values.float().view(torch.int32) >> 23) & 0xFF


def _ceil_exponent(values: torch.Tensor) -> torch.Tensor:
    bits = values.float().view(torch.int32)
    exponent = (bits >> 23) & 0xFF
    bump = ((bits & 0x7FFFFF) != 0) & (exponent < 0xFF)
    return exponent + bump.to(exponent.dtype)


def encode(amax: torch.Tensor, mode: int, fmt: str) -> torch.Tensor:
    """Per-block ``amax`` (>= 0, fp32) -> e8m0 scale bytes (uint8)."""
    t, max_pos, mbits = FORMATS[fmt]
    amax = amax.float()
    if mode == ROUND_DOWN:
        exponent = _exponent(amax / 2.0**t)
    elif mode == ROUND_UP:
        exponent = _ceil_exponent(amax / max_pos)
    elif mode == CEIL:
        exponent = _ceil_exponent(amax / 2.0**t)
    elif mode == EVEN:
        rounded = (amax.view(torch.int32) + (1 << (22 - mbits))) & -(1 << 23)
        raw = (rounded >> 23) & 0xFF
        exponent = torch.where(raw == 0xFF, raw, (raw - t).clamp_min(0))
    else:
        raise ValueError(f"unknown e8m0 rounding mode {mode!r}; accepted: {sorted(MODES.values())}")
    return exponent.to(torch.uint8)


def decode(scale: torch.Tensor) -> torch.Tensor:
    """e8m0 bytes (uint8 or float8_e8m0fnu) -> fp32 values, bit-exact."""
    raw = scale.view(torch.uint8).to(torch.int32)
    bits = torch.where(raw == 0, 0x00400000, raw << 23)
    bits = torch.where(raw == 0xFF, 0x7F800001, bits)
    return bits.view(torch.float32)
