"""Exceptions quantguard raises on purpose.

quantguard never raises from its own internals into the host process (those
errors are logged as ``quantguard.internal_error``).  The only exceptions a
guarded call can see are the deliberate ones below: a violation under
``mode="raise"``, a kernel blocked by policy, and bad configuration passed to
an explicit :func:`quantguard.enable`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "QuantGuardError",
    "QuantGuardViolation",
    "QuantGuardBlocked",
    "ConfigError",
]


class QuantGuardError(Exception):
    """Base class of every exception quantguard raises deliberately."""


class QuantGuardViolation(QuantGuardError):
    """A guarded call broke a contract while ``mode="raise"`` is active."""

    def __init__(self, target: str, check: str, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(f"[{check}] {target}: {message}")
        self.target = target
        self.check = check
        self.message = message
        self.details = dict(details or {})

    def __reduce__(self) -> tuple[Any, ...]:
        # rebuilt from the constructor's arguments: multiprocessing workers send exceptions back pickled
        return (type(self), (self.target, self.check, self.message, self.details))


class QuantGuardBlocked(QuantGuardError):
    """A kernel was blocked by policy (for example ASM GEMM on gfx950 in a CK-free build)."""

    def __init__(
        self, target: str, reason: str, alternative: str | None = None, entry_point: str | None = None
    ) -> None:
        where = f" (reached from {entry_point})" if entry_point and entry_point != target else ""
        hint = f"; safe alternative: {alternative}" if alternative else ""
        super().__init__(f"{target}{where} blocked: {reason}{hint}")
        self.target = target
        self.reason = reason
        self.alternative = alternative
        self.entry_point = entry_point

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.target, self.reason, self.alternative, self.entry_point))


class ConfigError(QuantGuardError, ValueError):
    """A configuration value (keyword argument or ``QUANTGUARD_*`` variable) is invalid.

    It is a :class:`ValueError` so callers of :func:`quantguard.enable` can catch
    it as the standard "bad value" error.
    """
