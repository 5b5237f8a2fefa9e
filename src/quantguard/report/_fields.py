"""Tolerant field access: a log line is untrusted input, so a wrong type is a default, never a crash."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["as_float", "as_int", "as_text", "as_mapping", "as_strings", "sum_ints"]

_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def as_float(value: Any) -> float | None:
    """A number field; the strings quantguard writes for non-finite floats become floats again."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        return _NON_FINITE.get(value)
    return None


def as_int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def as_text(value: Any, default: str = "") -> str:
    return value if isinstance(value, str) and value else default


def as_mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def as_strings(value: Any) -> list[str]:
    """The strings of a list field (``differences``, ``kernels``); anything else is empty."""
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def sum_ints(value: Any, depth: int = 2) -> int:
    """Sum of the integers in a (nested) mapping, e.g. the summary's ``violations`` per target per check."""
    if as_int(value) is not None:
        return value
    if depth and isinstance(value, Mapping):
        return sum(sum_ints(item, depth - 1) for item in value.values())
    return 0
