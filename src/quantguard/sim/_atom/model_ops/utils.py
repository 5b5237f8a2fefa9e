"""Simulated ``atom.model_ops.utils``: parameter helpers and the gfx942 FP8 fix-up."""

import torch
from aiter import dtypes
from aiter.ops.shuffle import shuffle_weight
from torch import nn

__all__ = [
    "MXFP4_QUANT_BLOCK_SIZE",
    "atom_parameter",
    "normalize_e4m3fn_to_e4m3fnuz",
    "shuffle_weights",
]

MXFP4_QUANT_BLOCK_SIZE = 32


def atom_parameter(data: torch.Tensor) -> nn.Parameter:
    """An inference parameter (no gradient)."""
    return nn.Parameter(data, requires_grad=False)


def normalize_e4m3fn_to_e4m3fnuz(
    weight: torch.Tensor,
    weight_scale: torch.Tensor,
    input_scale: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Re-read OCP e4m3fn weight bytes as e4m3fnuz (MI300X) without changing their value.

    The same byte is half as large in e4m3fnuz, so scales double (fp32 x2, e8m0
    byte + 1 except 0x00/0xFF); byte 0x80 (-0 in e4m3fn, NaN in e4m3fnuz)
    becomes 0. Like ATOM, the weight's bytes are rewritten in place.
    """

    def double(scale):
        if scale.dtype == dtypes.fp8_e8m0:
            raw = scale.view(torch.uint8)
            bumped = torch.clamp(raw.to(torch.int16) + 1, max=0xFE).to(torch.uint8)
            return torch.where((raw == 0) | (raw == 0xFF), raw, bumped).view(dtypes.fp8_e8m0)
        return scale * 2.0

    as_int8 = weight.view(torch.int8)
    as_int8[as_int8 == -128] = 0
    weight = as_int8.view(torch.float8_e4m3fnuz)
    weight_scale = double(weight_scale)
    if input_scale is not None:
        input_scale = double(input_scale)
    return weight, weight_scale, input_scale


def shuffle_weights(*tensors: nn.Parameter, layout: tuple[int, int] = (16, 16)):
    """Preshuffle 2D or 3D (per-expert) weights in place for the preshuffle GEMMs."""
    for tensor in tensors:
        if not isinstance(tensor, nn.Parameter):
            raise TypeError(f"Expected torch.nn.Parameter, but got {type(tensor)}")
        if tensor.data.dim() not in (2, 3):
            raise ValueError(f"Expected weight dim to be 2 or 3 for shuffle, got {tensor.data.dim()}")
        tensor.data = shuffle_weight(tensor.data, layout=layout)
        tensor.is_shuffled = True
