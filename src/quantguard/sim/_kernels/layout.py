"""Memory layouts: preshuffled weights, the MX e8m0 scale swizzle, scale major order.

Several of these layouts are invisible in a tensor's shape and strides (a
"transposed" x_scale is a contiguous (M, G) tensor whose bytes are (G, M));
the kernels below read raw memory the way the real kernels do.
"""

from __future__ import annotations

import torch


def round_up(value: int, multiple: int) -> int:
    return (value + multiple - 1) // multiple * multiple


def _weight_tiles(shape: torch.Size, element_size: int, layout: tuple[int, int]):
    tile_n, tile_k = layout
    block_k = tile_k * 2
    pack = 16 // element_size
    n, k = shape[-2], shape[-1]
    if n % tile_n or k % block_k:
        raise ValueError(f"weight shape {tuple(shape)} is not a multiple of the ({tile_n}, {block_k}) shuffle tile")
    return (-1, n // tile_n, tile_n, k // block_k, block_k // pack, pack)


def shuffle_weight(weight: torch.Tensor, layout: tuple[int, int]) -> torch.Tensor:
    """AITER's ``shuffle_weight`` permutation (on raw bytes for fp4x2)."""
    tiles = _weight_tiles(weight.shape, weight.element_size(), layout)
    shuffled = weight.reshape(tiles).permute(0, 1, 3, 4, 2, 5).contiguous()
    return shuffled.view(weight.shape)


def unshuffle_weight(weight: torch.Tensor, layout: tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`shuffle_weight`; what a preshuffle kernel effectively reads."""
    b, n_tiles, tile_n, k_tiles, k_packs, pack = _weight_tiles(weight.shape, weight.element_size(), layout)
    tiled = weight.reshape(b, n_tiles, k_tiles, k_packs, tile_n, pack)
    return tiled.permute(0, 1, 4, 2, 3, 5).contiguous().view(weight.shape)


def mx_swizzle_index(rows: int, cols: int, cols_padded: int, device: torch.device) -> torch.Tensor:
    """Flat byte index of scale (x, y) in the MX swizzled buffer, shape (rows, cols)."""
    x = torch.arange(rows, device=device).unsqueeze(1)
    y = torch.arange(cols, device=device).unsqueeze(0)
    return (
        (x // 32 * cols_padded) * 32
        + (y // 8) * 256
        + (y % 4) * 64
        + (x % 16) * 4
        + ((y % 8) // 4) * 2
        + (x % 32) // 16
    )


def mx_swizzled_shape(rows: int, cols: int) -> tuple[int, int]:
    return round_up(rows, 256), round_up(cols, 8)


def mx_swizzle(scale: torch.Tensor) -> torch.Tensor:
    """Row-major (M, G) e8m0 bytes -> swizzled (pad256(M), pad8(G)) buffer.

    The padding is allocated with ``torch.empty`` and never written, as in AITER.
    """
    rows, cols = scale.shape
    out = torch.empty(mx_swizzled_shape(rows, cols), dtype=torch.uint8, device=scale.device)
    index = mx_swizzle_index(rows, cols, out.shape[1], scale.device)
    out.view(-1)[index.flatten()] = scale.view(torch.uint8).flatten()
    return out.view(scale.dtype)


def mx_unswizzle(buffer: torch.Tensor, rows: int, cols: int, cols_padded: int) -> torch.Tensor:
    """Swizzled e8m0 buffer (row pitch ``cols_padded``) -> row-major (rows, cols) bytes."""
    flat = buffer.reshape(-1).view(torch.uint8)
    return flat[mx_swizzle_index(rows, cols, cols_padded, buffer.device)]


def read_row_major(scale: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """Raw memory at ``scale.data_ptr()`` read as (rows, cols) row-major."""
    return torch.as_strided(scale, (rows, cols), (cols, 1), scale.storage_offset())


def read_col_major(scale: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """Raw memory at ``scale.data_ptr()`` read as (rows, cols) whose bytes are (cols, rows)."""
    return torch.as_strided(scale, (rows, cols), (1, rows), scale.storage_offset())


def read_scrambled_weight(weight: torch.Tensor, layout: tuple[int, int]) -> torch.Tensor:
    """A broken read of a preshuffled (N, K) weight: no unshuffle and N/K strides swapped."""
    # The broken kernel never consults ``layout``: that is the bug.
    n, k = weight.shape[-2], weight.shape[-1]
    return weight.reshape(k, n).transpose(0, 1)
