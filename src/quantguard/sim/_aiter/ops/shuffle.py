"""Simulated ``aiter.ops.shuffle``: weight preshuffle and e8m0 scale swizzle."""

import torch

from quantguard.sim._kernels import layout as _layout

__all__ = ["shuffle_scale", "shuffle_weight"]


def shuffle_weight(x, layout=(16, 16)):
    """Permute an (..., N, K) weight into the tile order preshuffle GEMMs read.

    Tiles are ``layout[0]`` rows by ``2 * layout[1]`` bytes-worth of K, split in
    16-byte packs; fp4x2 weights are shuffled as raw bytes. The result carries
    ``is_shuffled = True``, which is lost when the data is copied elsewhere.
    """
    raw = x.view(torch.uint8) if x.dtype == torch.float4_e2m1fn_x2 else x
    shuffled = _layout.shuffle_weight(raw, tuple(layout)).view(x.dtype)
    shuffled.is_shuffled = True
    return shuffled


def shuffle_scale(src):
    """Swizzle a 2D e8m0 scale into the MX hardware layout; fp32 scales pass through."""
    if src.dtype == torch.float32:
        return src
    return _layout.mx_swizzle(src)
