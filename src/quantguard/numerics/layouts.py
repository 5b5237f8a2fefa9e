"""Scale and weight memory layouts AITER uses, read back into logical form.

AITER's kernels read raw memory and ignore strides, so every function here
works on the *bytes in memory order* of a buffer:

``row_major``   group ``(m, g)`` at ``m * G + g``
``transposed``  group ``(m, g)`` at ``g * M + m`` (``shuffle_scale``/``transpose_scale``
                with a non-MX layout; strides of the returned tensor still say ``(M, G)``)
``mx_swizzle``  e8m0, group 32, ``shuffle=True``: a ``(pad256(M), pad8(G))`` buffer
                with AITER's hardware scale-load swizzle
``padded``      row-major rows of a padded buffer (``buffer[m, g]`` of a wider buffer)
``logical``     ``buffer[m, g]`` through the tensor's own strides (stride-aware kernels: Triton)

and the 16x16 weight preshuffle of ``aiter.ops.shuffle.shuffle_weight``.
"""

from __future__ import annotations

import torch

__all__ = [
    "LAYOUT_NAMES",
    "memory_order",
    "read_scales",
    "scale_address_strides",
    "mx_swizzle_index",
    "mx_swizzled_size",
    "pad_to",
    "unshuffle_weight",
    "shuffle_weight",
    "describe_layout",
]

LAYOUT_NAMES = ("row_major", "transposed", "mx_swizzle", "padded", "logical")
_DESCRIPTIONS = {
    "row_major": "row-major (M, G)",
    "transposed": "column-major: (G, M) bytes",
    "mx_swizzle": "MX-swizzled (pad256(M), pad8(G))",
    "padded": "row-major rows of the padded buffer",
    "logical": "(M, G) read through its strides",
}


def describe_layout(layout: str) -> str:
    return _DESCRIPTIONS.get(layout, layout)


def pad_to(value: int, multiple: int) -> int:
    return (value + multiple - 1) // multiple * multiple


def mx_swizzled_size(rows: int, groups: int) -> int:
    """Elements of the ``(pad256(rows), pad8(groups))`` buffer that holds ``rows x groups`` MX-swizzled scales."""
    return pad_to(rows, 256) * pad_to(groups, 8)


def memory_order(buffer: torch.Tensor) -> torch.Tensor | None:
    """The buffer's elements in memory order (1-D), or ``None`` if it is not one dense block."""
    if buffer.is_contiguous():
        return buffer.reshape(-1)
    order = sorted(range(buffer.dim()), key=lambda d: buffer.stride(d), reverse=True)
    permuted = buffer.permute(*order)
    if permuted.is_contiguous():
        return permuted.reshape(-1)
    return None


def mx_swizzle_index(rows: int, groups: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Flat byte index of scale ``(x, y)`` in AITER's MX swizzle, shape ``(rows, groups)``."""
    padded_groups = pad_to(groups, 8)
    x = torch.arange(rows, device=device, dtype=torch.int64).view(-1, 1)
    y = torch.arange(groups, device=device, dtype=torch.int64).view(1, -1)
    return (
        (x // 32) * padded_groups * 32
        + (y // 8) * 256
        + (y % 4) * 64
        + (x % 16) * 4
        + ((y % 8) // 4) * 2
        + (x % 32) // 16
    )


def read_scales(
    buffer: torch.Tensor, layout: str, rows: int, groups: int, row_index: torch.Tensor | slice | None = None
) -> torch.Tensor | None:
    """Scales of ``rows x groups`` groups read from ``buffer`` in ``layout``; ``None`` if it cannot hold them.

    ``row_index`` selects a subset of rows (the sampled ones) without reading the rest.
    """
    selected = slice(None) if row_index is None else row_index
    if layout == "logical":
        if buffer.dim() != 2 or buffer.shape[0] < rows or buffer.shape[1] < groups:
            return None
        return buffer[:rows, :groups][selected]
    flat = memory_order(buffer)
    if flat is None:
        return None
    if layout == "row_major":
        if flat.numel() < rows * groups:
            return None
        return flat[: rows * groups].view(rows, groups)[selected]
    if layout == "transposed":
        if flat.numel() < rows * groups:
            return None
        return flat[: rows * groups].view(groups, rows).t()[selected]
    if layout == "padded":
        if buffer.dim() != 2 or buffer.shape[0] < rows or buffer.shape[1] < groups or not buffer.is_contiguous():
            return None
        return buffer[:rows, :groups][selected]
    if layout == "mx_swizzle":
        if flat.numel() < mx_swizzled_size(rows, groups):
            return None
        index = mx_swizzle_index(rows, groups, flat.device)[selected]
        return flat[index]
    raise ValueError(f"unknown layout {layout!r}; known: {', '.join(LAYOUT_NAMES)}")


def scale_address_strides(layout: str, tensor: torch.Tensor, rows: int, groups: int) -> tuple[int, int] | None:
    """Element offsets ``(per row, per group)`` at which a reader (or writer) finds group ``(m, g)``.

    :func:`read_scales` as strides, for the device kernels that address scales
    themselves: ``row_major`` is ``m * G + g``, ``transposed`` ``g * M + m``;
    ``None`` for a layout that is not a pair of strides (the MX swizzle).
    """
    if layout == "logical":
        return (tensor.stride(0), tensor.stride(1)) if tensor.dim() == 2 else None
    if layout == "row_major":
        return (groups, 1)
    if layout == "transposed":
        return (1, rows)
    return None


def _elements(weight: torch.Tensor) -> torch.Tensor:
    """What AITER's shuffle indexes: the tensor's elements (packed fp4x2 as its uint8 bytes)."""
    return weight.view(torch.uint8) if str(weight.dtype).endswith("float4_e2m1fn_x2") else weight


def _block_shape(weight: torch.Tensor, layout: tuple[int, int]) -> tuple[int, int, int]:
    """``(rows per block, K elements per block, K elements per 16-byte pack)`` as AITER computes them."""
    rows_per_block, k_lanes = layout
    return rows_per_block, k_lanes * 2, 16 // weight.element_size()


def shuffle_weight(weight: torch.Tensor, layout: tuple[int, int] = (16, 16)) -> torch.Tensor:
    """AITER's preshuffle of an ``(..., N, K)`` weight: 16-byte packs of K, blocks of ``layout``.

    Indexed by elements (a pack is ``16 // element_size`` of them: 16 fp8 bytes, 8 bf16 values,
    4 int32), like ``aiter.ops.shuffle.shuffle_weight``; for tests, reroutes and checks.
    """
    values = _elements(weight)
    rows, block_k, k_pack = _block_shape(values, layout)
    n, k = values.shape[-2], values.shape[-1]
    out = values.reshape(-1, n // rows, rows, k // block_k, block_k // k_pack, k_pack)
    out = out.permute(0, 1, 3, 4, 2, 5).contiguous().view(values.shape)
    return out.view(weight.dtype)


def unshuffle_weight(weight: torch.Tensor, layout: tuple[int, int] = (16, 16)) -> torch.Tensor:
    """Inverse of :func:`shuffle_weight`: the plain ``(N, K)`` layout kernels' references read."""
    values = _elements(weight)
    rows, block_k, k_pack = _block_shape(values, layout)
    n, k = values.shape[-2], values.shape[-1]
    out = values.reshape(-1, n // rows, k // block_k, block_k // k_pack, rows, k_pack)
    out = out.permute(0, 1, 4, 2, 3, 5).contiguous().view(values.shape)
    return out.view(weight.dtype)
