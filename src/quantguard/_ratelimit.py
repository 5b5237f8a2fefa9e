"""Rate limiting for repeated events: the first one, then periodic counts.

A violation that fires on every call of a hot kernel (10,000 calls per second)
must not flood the log, yet no occurrence may be lost: counts are exact, only
the number of *events* is limited.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

__all__ = ["RateLimiter", "Admission"]


@dataclass(frozen=True)
class Admission:
    """What to do with one occurrence: ``emit`` it or not, with the exact totals."""

    emit: bool
    count: int  # occurrences of this key so far, this one included
    suppressed: int  # occurrences folded into this event since the previous one


class _KeyState:
    __slots__ = ("count", "suppressed", "last_emit")

    def __init__(self) -> None:
        self.count = 0
        self.suppressed = 0
        self.last_emit = float("-inf")


class RateLimiter:
    """Admit the first occurrence of a key, then at most one event per ``interval`` seconds."""

    __slots__ = ("interval", "_clock", "_states", "_lock")

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._states: dict[Hashable, _KeyState] = {}
        self._lock = threading.Lock()

    def admit(self, key: Hashable) -> Admission:
        with self._lock:
            state = self._states.get(key)
            if state is None:
                state = self._states[key] = _KeyState()
            state.count += 1
            now = self._clock()
            if state.count == 1 or now - state.last_emit >= self.interval:
                suppressed = state.suppressed
                state.suppressed = 0
                state.last_emit = now
                return Admission(True, state.count, suppressed)
            state.suppressed += 1
            return Admission(False, state.count, state.suppressed)

    def drain(self) -> list[tuple[Hashable, int, int]]:
        """Keys with occurrences not yet reported: ``(key, count, suppressed)``; resets them."""
        with self._lock:
            pending = [(key, state.count, state.suppressed) for key, state in self._states.items() if state.suppressed]
            for key, _, _ in pending:
                self._states[key].suppressed = 0
                self._states[key].last_emit = self._clock()
        return pending

    def after_fork(self) -> None:
        self._lock = threading.Lock()
