"""What every AITER adapter reads from a call: element formats, flags, results, the machine's fp8.

Shared by the adapter modules so each reads a call the same way; torch is
imported only when a guarded call is interpreted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.calls import CallRecord

__all__ = [
    "arch_fp8",
    "element_of",
    "flag",
    "fp8_or_none",
    "group_request",
    "is_e8m0",
    "is_fp4",
    "load_torch",
    "result_at",
    "rows2d",
]


def load_torch() -> Any:
    import torch

    return torch


def arch_fp8(call: CallRecord) -> Any:
    """The fp8 dtype this machine's kernels read bytes as (gfx942: e4m3fnuz)."""
    name = call.platform.expected_fp8()
    return getattr(load_torch(), name) if name else None


def element_of(dtype: Any, packed_fp4: bool = False) -> Any:
    """The element format of a dtype (packed fp4 bytes: FP4 E2M1), or None when not a quantized format."""
    from quantguard.numerics.formats import FP4_E2M1, element_format

    if packed_fp4:
        return FP4_E2M1
    return element_format(dtype)


def fp8_or_none(dtype: Any) -> Any:
    """The dtype a producer writes fp8 bytes in (its own output's format; consumers may read differently)."""
    element = element_of(dtype)
    return dtype if element is not None and element.family == "fp8" else None


def is_fp4(dtype: Any) -> bool:
    return str(dtype).endswith("float4_e2m1fn_x2")


def is_e8m0(dtype: Any) -> bool:
    return str(dtype).endswith("float8_e8m0fnu")


def result_at(call: CallRecord, index: int) -> Any:
    """Element ``index`` of a tuple/list result, or None."""
    result = call.result
    if isinstance(result, (tuple, list)) and len(result) > index:
        return result[index]
    return None


def rows2d(tensor: Any) -> Any:
    return None if tensor is None else tensor.reshape(-1, tensor.shape[-1])


def flag(value: Any) -> bool:
    """A Python flag argument's truth (a tensor passed there is not a flag)."""
    return bool(value) if not hasattr(value, "shape") else False


def group_request(name: str, value: Any) -> str:
    return f"{name}={value!r}"
