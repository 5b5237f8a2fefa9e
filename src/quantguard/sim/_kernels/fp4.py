"""FP4 (e2m1) encoding and the fp4x2 packing AMD kernels use.

Element ``2i`` sits in the low nibble and ``2i + 1`` in the high nibble; bit 3
of a nibble is the sign. Encoding rounds to nearest, ties to even code, and
saturates at 6.
"""

from __future__ import annotations

import torch

MAGNITUDES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
# Midpoints between neighbouring magnitudes, and whether a tie there rounds up
# (to the even code) or down.
_MIDPOINTS = (0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0)
_TIE_ROUNDS_UP = (False, True, False, True, False, True, False)


def encode(values: torch.Tensor) -> torch.Tensor:
    """fp32 values (already divided by their scale) -> 4-bit codes in uint8."""
    magnitude = values.abs().unsqueeze(-1)
    midpoints = torch.tensor(_MIDPOINTS, device=values.device)
    tie_up = torch.tensor(_TIE_ROUNDS_UP, device=values.device)
    above = (magnitude > midpoints) | ((magnitude == midpoints) & tie_up)
    code = above.sum(-1, dtype=torch.uint8)
    return code | (torch.signbit(values).to(torch.uint8) << 3)


def decode(codes: torch.Tensor) -> torch.Tensor:
    """4-bit codes -> fp32 values."""
    table = torch.tensor(MAGNITUDES + tuple(-m for m in MAGNITUDES), device=codes.device)
    return table[codes.long()]


def pack(codes: torch.Tensor) -> torch.Tensor:
    """(..., K) codes -> (..., K/2) bytes, even element in the low nibble."""
    return codes[..., 0::2] | (codes[..., 1::2] << 4)


def unpack(packed: torch.Tensor) -> torch.Tensor:
    """(..., K/2) bytes (uint8 or fp4x2) -> (..., K) codes."""
    raw = packed.view(torch.uint8)
    return torch.stack((raw & 0xF, raw >> 4), dim=-1).flatten(-2)


def to_float(packed: torch.Tensor) -> torch.Tensor:
    """(..., K/2) packed fp4 -> (..., K) fp32 values (unscaled)."""
    return decode(unpack(packed))
