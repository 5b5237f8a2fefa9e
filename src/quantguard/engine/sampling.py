"""Which calls are inspected: the first N of each signature, then a random fraction.

The per-call decision must cost a few nanoseconds, so it is a comparison of
the call counter with the index of the next sampled call, drawn from a
geometric distribution once per sample; the optional per-second cap is only
consulted for calls that were already drawn.  Random (not every k-th call)
because LLM inference calls each kernel in a fixed round-robin over layers: a
stride would always sample the same layer.
"""

from __future__ import annotations

import math
import random
import sys
import threading
import time
from collections.abc import Callable

__all__ = ["Sampler"]


class Sampler:
    __slots__ = (
        "rate",
        "first",
        "max_per_second",
        "draw",
        "_clock",
        "_window_start",
        "_window_count",
        "_lock",
        "dropped",
    )

    def __init__(
        self,
        rate: float,
        first: int,
        max_per_second: float | None = None,
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.first = first
        self.max_per_second = max_per_second
        #: ``draw() < rate`` decides a call after its signature's first N.
        self.draw = random.Random(seed).random
        self._clock = clock
        self._window_start = clock()
        self._window_count = 0
        self._lock = threading.Lock()
        self.dropped = 0

    def next_gap(self) -> int:
        """Calls until the next sampled one: geometric with mean ``1/rate`` (never when rate is 0).

        Random gaps instead of a fixed stride, so a fixed order of layers is not aliased.
        """
        if self.rate <= 0.0:
            return sys.maxsize
        if self.rate >= 1.0:
            return 1
        return 1 + int(math.log(1.0 - self.draw()) / math.log(1.0 - self.rate))

    def admit(self) -> bool:
        """Apply the per-second cap to a call that was drawn; ``False`` means skip it."""
        if self.max_per_second is None:
            return True
        with self._lock:
            now = self._clock()
            if now - self._window_start >= 1.0:
                self._window_start = now
                self._window_count = 0
            if self._window_count < self.max_per_second:
                self._window_count += 1
                return True
            self.dropped += 1
            return False

    def after_fork(self) -> None:
        self._lock = threading.Lock()
