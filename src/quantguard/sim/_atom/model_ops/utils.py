"""Simulated ``atom.model_ops.utils``: parameter helpers and the gfx942 FP8 fix-up."""

import torch
from aiter import dtypes
from aiter.ops.shuffle import shuffle_weight
from torch import nn

__all__ = [
    "MXFP4_QUANT_BLOCK_SIZE",
    "atom_parameter",
    "normalize_e4m3fn_to_e4m3fnuz",
    "requantize_with_max_scale",
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


def requantize_with_max_scale(
    weight: torch.Tensor,
    weight_scale: torch.Tensor,
    logical_widths: list[int],
    normalize_e4m3fn_to_e4m3fnuz: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Requantize a fused per-tensor FP8 weight's shards with their largest scale, in place; ``(max_scale, weight)``.

    As ATOM: shard ``i`` (``logical_widths[i]`` rows) is dequantized with its own
    scale and quantized again with the max (doubled, and written as e4m3fnuz,
    when normalizing an e4m3fn checkpoint for gfx942).
    """
    if normalize_e4m3fn_to_e4m3fnuz:
        quant_dtype = torch.float8_e4m3fnuz
        weight = weight.view(torch.float8_e4m3fn)
        max_w_scale = weight_scale.max() * 2.0
    else:
        quant_dtype = weight.dtype
        max_w_scale = weight_scale.max()
    # a fused checkpoint shard left at the initial (finfo.min) scale is already quantized with one scale
    unfused = weight_scale[-1] > torch.finfo(torch.float8_e4m3fn).min
    if unfused or normalize_e4m3fn_to_e4m3fnuz:
        limit = torch.finfo(quant_dtype).max
        start = 0
        for index, width in enumerate(logical_widths):
            end = start + width
            per_row = weight_scale.ndim > 0 and weight_scale.shape[0] == weight.shape[0]
            shard_scale = weight_scale[start:end, :] if per_row else weight_scale[index]
            dequantized = weight[start:end, :].to(torch.float32) * shard_scale
            requantized = (dequantized / max_w_scale).clamp(-limit, limit).to(quant_dtype)
            weight.view(quant_dtype)[start:end, :] = requantized
            start = end
    return max_w_scale, weight.view(quant_dtype)


def shuffle_weights(*tensors: nn.Parameter, layout: tuple[int, int] = (16, 16)):
    """Preshuffle 2D or 3D (per-expert) weights in place for the preshuffle GEMMs."""
    for tensor in tensors:
        if not isinstance(tensor, nn.Parameter):
            raise TypeError(f"Expected torch.nn.Parameter, but got {type(tensor)}")
        if tensor.data.dim() not in (2, 3):
            raise ValueError(f"Expected weight dim to be 2 or 3 for shuffle, got {tensor.data.dim()}")
        tensor.data = shuffle_weight(tensor.data, layout=layout)
        tensor.is_shuffled = True
