"""A bounded summary of many cosine similarities: count, failures, min, mean and p1.

Shadow results of a long run arrive by the million, but what a report needs
is the lower tail.  Exact min and mean are running values.  For the 1st
percentile only the ``tail_size`` smallest cosines are kept (a max-heap):
the nearest-rank p1 is the ``ceil(n / 100)``-th smallest value, which the
heap holds exactly while ``n <= 100 * tail_size``.  Beyond that the
``tail_size``-th smallest value is a lower bound of p1, and it is reported
as such (``p1_exact`` false) rather than estimated.
"""

from __future__ import annotations

import heapq
import math

__all__ = ["CosineDistribution", "DEFAULT_TAIL_SIZE"]

#: Exact p1 for up to 100 000 samples per distribution; 1000 floats of memory each.
DEFAULT_TAIL_SIZE = 1000


class CosineDistribution:
    """Running statistics of cosines, in memory bounded by ``tail_size`` values.

    Non-finite cosines (``"NaN"`` in a log) count as samples and in
    ``nonfinite`` but not in min, mean or p1.
    """

    __slots__ = ("tail_size", "samples", "failed", "nonfinite", "minimum", "_total", "_finite", "_tail")

    def __init__(self, tail_size: int = DEFAULT_TAIL_SIZE) -> None:
        if tail_size < 1:
            raise ValueError(f"tail_size must be at least 1, got {tail_size}")
        self.tail_size = tail_size
        self.samples = 0
        self.failed = 0
        self.nonfinite = 0
        self.minimum = math.inf
        self._total = 0.0
        self._finite = 0
        self._tail: list[float] = []  # negated: heap[0] is minus the largest value kept

    def add(self, cosine: float | None, failed: bool = False) -> None:
        self.samples += 1
        self.failed += 1 if failed else 0
        if cosine is None or not math.isfinite(cosine):
            self.nonfinite += 1
            return
        self._finite += 1
        self._total += cosine
        self.minimum = min(self.minimum, cosine)
        if len(self._tail) < self.tail_size:
            heapq.heappush(self._tail, -cosine)
        elif cosine < -self._tail[0]:
            heapq.heapreplace(self._tail, -cosine)

    @property
    def retained(self) -> int:
        """How many cosine values are held in memory (at most ``tail_size``)."""
        return len(self._tail)

    @property
    def min(self) -> float | None:
        return self.minimum if self._finite else None

    @property
    def mean(self) -> float | None:
        return self._total / self._finite if self._finite else None

    @property
    def p1(self) -> float | None:
        """Nearest-rank 1st percentile of the finite cosines (a lower bound unless :attr:`p1_exact`)."""
        if not self._finite:
            return None
        rank = math.ceil(self._finite / 100)
        ascending = sorted(-value for value in self._tail)
        return ascending[min(rank, len(ascending)) - 1]

    @property
    def p1_exact(self) -> bool:
        return math.ceil(self._finite / 100) <= len(self._tail)
