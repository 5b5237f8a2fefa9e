"""The metric series, read from the runtime's own counters: one source for Prometheus and OpenTelemetry.

Counters are not incremented by a metrics library on the hot path: the engine
already counts guarded calls (per guard), violations, blocks, internal errors
and shadow results (``engine/stats.py``) exactly.  A scrape (or an OTel
collection) reads those counts here, so metrics cost nothing between scrapes
and always equal what ``quantguard.summary`` reports.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

from quantguard import events

__all__ = ["Series", "COUNTERS", "GAUGES", "HISTOGRAMS", "METRIC_NAMES", "rank_label", "common_labels", "read_series"]


class Series(NamedTuple):
    """One sample: metric name (without ``_total``), its own labels, value."""

    name: str
    labels: dict[str, str]
    value: float


#: Counter families: name -> (help text, labels besides ``rank`` and ``label``).
COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "quantguard_calls": ("Guarded calls per target", ("target",)),
    "quantguard_sampled_calls": ("Guarded calls inspected (data checks, shadow) per target", ("target",)),
    "quantguard_shadow_results": ("Sampled calls compared with a shadow reference", ("target",)),
    "quantguard_shadow_failed": ("Shadow comparisons outside the tolerance", ("target",)),
    "quantguard_violations": ("Violations per target, check and severity", ("target", "check", "severity")),
    "quantguard_blocked": ("Blocked calls per target", ("target",)),
    "quantguard_internal_errors": ("quantguard's own errors (each one fails open)", ("target", "check")),
    "quantguard_shadow_dropped": ("Shadow jobs dropped because the queue was full", ()),
}
#: Gauge families.
GAUGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "quantguard_shadow_queue_depth": ("Shadow jobs waiting for the drainer", ()),
}
#: Histogram families (observed from shadow events): name -> (help, event field, buckets).
HISTOGRAMS: dict[str, tuple[str, str, tuple[float, ...]]] = {
    "quantguard_shadow_cosine": (
        "Cosine similarity of sampled outputs with their reference",
        "cosine",
        (0.5, 0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999, 0.9995, 0.9999, 1.0),
    ),
    "quantguard_shadow_norm_ratio": (
        "Norm of sampled outputs over the reference's",
        "norm_ratio",
        (0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 1.0, 1.01, 1.02, 1.05, 1.1, 1.25, 2.0),
    ),
    "quantguard_shadow_sqnr_db": (
        "Signal-to-quantization-noise ratio of sampled outputs, dB",
        "sqnr_db",
        (0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0, 50.0, 60.0),
    ),
}
#: Every metric name a Prometheus scrape can show (counters with ``_total``, histograms with their suffixes).
METRIC_NAMES: frozenset[str] = frozenset(
    [f"{name}_total" for name in COUNTERS]
    + list(GAUGES)
    + [f"{name}{suffix}" for name in HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")]
)


def rank_label() -> str:
    """The process's rank: torch.distributed's when initialized, else ``RANK``, else ``0``."""
    rank, _ = events._distributed_identity()
    if rank is not None:
        return str(rank)
    return os.environ.get("RANK", "").strip() or "0"


def common_labels(runtime: Any) -> dict[str, str]:
    """The labels every series carries: ``rank`` and the config's ``label`` (``''`` if unset), in that order."""
    return {"rank": rank_label(), "label": runtime.config.label or ""}


def _snapshot(runtime: Any) -> dict[str, Any]:
    """The stats without ``Runtime.summary()``'s flushes (a scrape must not emit events)."""
    for _ in range(3):
        try:
            return runtime.reporter.stats.snapshot(runtime.call_counts())
        except RuntimeError:  # a contract applied while reading: read again
            continue
    return runtime.reporter.stats.snapshot({})


def read_series(runtime: Any, severities: Mapping[tuple[str, str], str]) -> Iterator[Series]:
    """Every counter and gauge sample, from one consistent snapshot of the runtime's stats.

    ``severities`` maps (target, check) to the severity of its violation events:
    the exact counts are kept per (target, check) only.
    """
    snap = _snapshot(runtime)
    for target, n in snap["calls"].items():
        yield Series("quantguard_calls", {"target": target}, n)
    for target, n in snap.get("sampled", {}).items():
        yield Series("quantguard_sampled_calls", {"target": target}, n)
    for target, shadow in snap["shadow"].items():
        yield Series("quantguard_shadow_results", {"target": target}, shadow["samples"])
        yield Series("quantguard_shadow_failed", {"target": target}, shadow["failed"])
    for target, checks in snap["violations"].items():
        for check, n in checks.items():
            severity = severities.get((target, check), "unknown")
            yield Series("quantguard_violations", {"target": target, "check": check, "severity": severity}, n)
    for target, n in snap["blocked"].items():
        yield Series("quantguard_blocked", {"target": target}, n)
    for target, checks in snap["internal_errors"].items():
        for check, n in checks.items():
            yield Series("quantguard_internal_errors", {"target": target, "check": check}, n)
    yield Series("quantguard_shadow_dropped", {}, snap["shadow_dropped"])
    executor = getattr(runtime, "_executor", None)
    queue = getattr(executor, "_queue", None)
    yield Series("quantguard_shadow_queue_depth", {}, len(queue) if queue is not None else 0)
