"""Keep quantguard from observing its own work (like OTel's ``suppress_instrumentation``).

Reference computations, re-running a kernel, or a rerouted call run inside
:func:`suppressed`; a guard that sees the flag calls straight through.  A
context variable makes it per thread (and per asyncio task).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

__all__ = ["is_suppressed", "suppressed"]

_SUPPRESSED: ContextVar[bool] = ContextVar("quantguard_suppressed", default=False)

#: ``True`` while quantguard itself is working on this thread/task.
is_suppressed = _SUPPRESSED.get


@contextlib.contextmanager
def suppressed() -> Iterator[None]:
    token = _SUPPRESSED.set(True)
    try:
        yield
    finally:
        _SUPPRESSED.reset(token)
