"""FP8/INT8 element conversions as AMD kernels perform them.

The same FP8 byte means a different number on gfx942 (e4m3fnuz, bias 8) and
gfx950 (e4m3fn, bias 7). Kernels read bytes in their own arch's format
whatever dtype the tensor claims, which is how an e4m3fn checkpoint silently
becomes 2x off on MI300X; :func:`to_float` reproduces that.
"""

from __future__ import annotations

import torch

FP8_DTYPES = (torch.float8_e4m3fn, torch.float8_e4m3fnuz)


def dtype_max(dtype: torch.dtype) -> float:
    """Largest finite value of a quantized element dtype."""
    if dtype.is_floating_point:
        return float(torch.finfo(dtype).max)
    return float(torch.iinfo(dtype).max)


def saturate(values: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Convert fp32 ``values`` to ``dtype``, clamping to its range first.

    Integers round half to even, as the HIP conversion does.
    """
    limit = dtype_max(dtype)
    if dtype.is_floating_point:
        return values.clamp(-limit, limit).to(dtype)
    return torch.round(values).clamp(-limit, limit).to(dtype)


def to_float(tensor: torch.Tensor, arch_fp8: torch.dtype) -> torch.Tensor:
    """Values of an 8-bit operand as the kernel of an arch reads them, in fp32.

    FP8 (either flavour) and raw uint8 bytes are decoded as ``arch_fp8``;
    int8 is read as integers; wider dtypes are plain casts.
    """
    if tensor.dtype in FP8_DTYPES or tensor.dtype == torch.uint8:
        return tensor.view(torch.uint8).view(arch_fp8).float()
    return tensor.float()
