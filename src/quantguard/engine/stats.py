"""Exact counters for the summary: calls, violations, blocks, shadow results per layer."""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict
from typing import Any

__all__ = ["Stats"]


class _CosineStats:
    __slots__ = ("samples", "failed", "minimum", "total")

    def __init__(self) -> None:
        self.samples = 0
        self.failed = 0
        self.minimum = math.inf
        self.total = 0.0

    def add(self, cosine: float, passed: bool) -> None:
        self.samples += 1
        self.failed += 0 if passed else 1
        if math.isfinite(cosine):
            self.minimum = min(self.minimum, cosine)
            self.total += cosine

    def as_dict(self) -> dict[str, Any]:
        finite = self.minimum if math.isfinite(self.minimum) else None
        return {
            "samples": self.samples,
            "failed": self.failed,
            "min_cosine": finite,
            "mean_cosine": (self.total / self.samples) if self.samples else None,
        }


class Stats:
    __slots__ = (
        "_lock",
        "violations",
        "sampled",
        "blocked",
        "internal_errors",
        "shadow_targets",
        "shadow_layers",
        "dropped",
        "started",
        "stale_references",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.violations: dict[tuple[str, str], int] = defaultdict(int)
        self.sampled: dict[str, int] = defaultdict(int)
        self.blocked: dict[str, int] = defaultdict(int)
        self.internal_errors: dict[tuple[str, str], int] = defaultdict(int)
        self.shadow_targets: dict[str, _CosineStats] = defaultdict(_CosineStats)
        self.shadow_layers: dict[str, _CosineStats] = defaultdict(_CosineStats)
        self.dropped = 0
        self.stale_references = 0
        self.started = time.time()

    def add_violation(self, target: str, check: str) -> None:
        with self._lock:
            self.violations[(target, check)] += 1

    def add_sampled(self, target: str) -> None:
        with self._lock:
            self.sampled[target] += 1

    def add_blocked(self, target: str) -> None:
        with self._lock:
            self.blocked[target] += 1

    def add_internal_error(self, target: str, check: str) -> int:
        with self._lock:
            self.internal_errors[(target, check)] += 1
            return self.internal_errors[(target, check)]

    def add_shadow(self, target: str, layer: str | None, cosine: float, passed: bool) -> None:
        with self._lock:
            self.shadow_targets[target].add(cosine, passed)
            if layer:
                self.shadow_layers[layer].add(cosine, passed)

    def add_dropped(self, n: int = 1) -> None:
        with self._lock:
            self.dropped += n

    def snapshot(self, calls: dict[str, int]) -> dict[str, Any]:
        with self._lock:
            violations: dict[str, dict[str, int]] = defaultdict(dict)
            for (target, check), n in sorted(self.violations.items()):
                violations[target][check] = n
            errors: dict[str, dict[str, int]] = defaultdict(dict)
            for (target, check), n in sorted(self.internal_errors.items()):
                errors[target][check] = n
            return {
                "calls": dict(sorted(calls.items())),
                "sampled": dict(sorted(self.sampled.items())),
                "violations": dict(violations),
                "violation_total": sum(self.violations.values()),
                "blocked": dict(self.blocked),
                "internal_errors": dict(errors),
                "shadow": {t: s.as_dict() for t, s in sorted(self.shadow_targets.items())},
                "layers": {layer: s.as_dict() for layer, s in sorted(self.shadow_layers.items())},
                "shadow_dropped": self.dropped,
                "stale_references": self.stale_references,
                "uptime_s": round(time.time() - self.started, 3),
            }

    def after_fork(self) -> None:
        self.__init__()  # type: ignore[misc]
