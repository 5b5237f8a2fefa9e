"""Simulated ``aiter.ops.triton.quant.fused_fp8_quant``."""

import torch

from quantguard.sim._kernels import quantize as _quantize

from ....utility import dtypes

__all__ = ["fused_flatten_fp8_group_quant"]

fp8_dtype = dtypes.fp8


def fused_flatten_fp8_group_quant(
    x: torch.Tensor,
    group_size,
    dtype_quant=fp8_dtype,
    transpose_scale: bool = False,
):
    """Flatten (M, N1, N2) to (M, N1 * N2) and FP8-quantize groups along each N2 segment.

    Each N2 segment has ceil(N2 / group_size) groups. The scale is (M, groups);
    with ``transpose_scale`` it is a column-major view (strides (1, M)).
    """
    m, n1, n2 = x.shape
    segment_groups = -(-n2 // group_size)
    padded = torch.nn.functional.pad(x.float(), (0, segment_groups * group_size - n2))
    rows = padded.reshape(m, n1 * segment_groups * group_size)
    scale = _quantize.fp32_scale(_quantize.group_amax(rows, group_size), dtype_quant)
    values = _quantize.apply(rows, scale, group_size, dtype_quant)
    out = values.view(m, n1, -1)[..., :n2].reshape(m, n1 * n2)
    if transpose_scale:
        block_scales = torch.empty(
            (scale.shape[1], m), dtype=torch.float32, device=x.device
        ).T
        block_scales.copy_(scale)
    else:
        block_scales = scale
    return out, block_scales
