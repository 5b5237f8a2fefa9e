"""Torch references that turn a high-precision weight into a quantized checkpoint tensor.

A validation quantizes weights the way checkpoints are shipped and loaded, not
with the kernels under test, so a broken activation-quant kernel cannot hide
behind an equally broken weight: FP8 values are ``saturate(w / scale)`` with
``scale = amax / fp8_max`` per output channel, per tensor or per 128x128 block,
INT8 codes ``round(w / scale)`` with ``scale = amax / 127`` per output channel, MXFP4 groups
of 32 get round-to-even e8m0 scales (as Quark writes them), INT4 groups of 128
are symmetric with ``scale = amax / 7``.
"""

from __future__ import annotations

import torch

from quantguard.numerics.formats import FP4_E2M1, e8m0_decode, e8m0_encode

__all__ = [
    "BLOCK",
    "INT4_GROUP",
    "MX_GROUP",
    "dequantize_int4",
    "fp8_blocks",
    "fp8_per_channel",
    "fp8_per_tensor",
    "int4_groups",
    "int8_per_channel",
    "mxfp4_groups",
]

#: Side of an FP8 weight block (DeepSeek-style 128x128 block scales).
BLOCK = 128
#: Elements sharing one MXFP4 e8m0 scale.
MX_GROUP = 32
#: Elements sharing one INT4 scale.
INT4_GROUP = 128

_INT4_MAX = 7
_INT8_MAX = 127
_MIN_AMAX = 1e-10


def _saturate(values: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    limit = torch.finfo(dtype).max
    return values.clamp(-limit, limit).to(dtype)


def fp8_per_channel(weight: torch.Tensor, fp8: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, K) weight -> FP8 values and an (N, 1) fp32 dequant scale per output channel."""
    w = weight.float()
    scale = w.abs().amax(dim=1, keepdim=True).clamp_min(_MIN_AMAX) / torch.finfo(fp8).max
    return _saturate(w / scale, fp8), scale


def fp8_per_tensor(weight: torch.Tensor, fp8: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, K) weight -> FP8 values and a (1,) fp32 dequant scale for the whole tensor."""
    w = weight.float()
    scale = w.abs().amax().clamp_min(_MIN_AMAX).reshape(1) / torch.finfo(fp8).max
    return _saturate(w / scale, fp8), scale


def int8_per_channel(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, K) weight -> symmetric INT8 codes (round to nearest) and an (N, 1) fp32 scale ``amax / 127``."""
    w = weight.float()
    scale = w.abs().amax(dim=1, keepdim=True).clamp_min(_MIN_AMAX) / _INT8_MAX
    return torch.round(w / scale).clamp(-_INT8_MAX, _INT8_MAX).to(torch.int8), scale


def fp8_blocks(weight: torch.Tensor, fp8: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, K) weight, both multiples of 128 -> FP8 values and an (N/128, K/128) fp32 scale."""
    w = weight.float()
    rows, cols = w.shape
    blocks = w.reshape(rows // BLOCK, BLOCK, cols // BLOCK, BLOCK)
    scale = blocks.abs().amax(dim=(1, 3)).clamp_min(_MIN_AMAX) / torch.finfo(fp8).max
    expanded = scale.repeat_interleave(BLOCK, 0).repeat_interleave(BLOCK, 1)
    return _saturate(w / expanded, fp8), scale


def mxfp4_groups(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, K) weight -> packed fp4x2 (N, K/2) and row-major e8m0 scales (N, K/32).

    Packing uses AITER's torch helper ``aiter.utility.fp4_utils.f32_to_mxfp4``
    (round to nearest even, saturating, element 2i in the low nibble).
    """
    from aiter import dtypes
    from aiter.utility.fp4_utils import f32_to_mxfp4

    groups = weight.float().unflatten(-1, (-1, MX_GROUP))
    scale_bytes = e8m0_encode(groups.abs().amax(-1), "even", FP4_E2M1).to(torch.uint8)
    scaled = (groups / e8m0_decode(scale_bytes).unsqueeze(-1)).flatten(-2)
    return f32_to_mxfp4(scaled).view(dtypes.fp4x2), scale_bytes.view(dtypes.fp8_e8m0)


def int4_groups(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, K) weight -> int4 codes in [-7, 7] (stored as int8) and an (N, K/128) fp32 scale."""
    groups = weight.float().unflatten(-1, (-1, INT4_GROUP))
    scale = groups.abs().amax(-1).clamp_min(_MIN_AMAX) / _INT4_MAX
    codes = torch.round(groups / scale.unsqueeze(-1)).clamp(-_INT4_MAX, _INT4_MAX)
    return codes.flatten(-2).to(torch.int8), scale


def dequantize_int4(codes: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The ``dtype`` weight a W4A16 kernel multiplies with: codes x group scale, rounded once."""
    expanded = scale.repeat_interleave(INT4_GROUP, dim=-1)
    return (codes.float() * expanded).to(dtype)
