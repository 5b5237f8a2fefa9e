"""Prometheus exposition of quantguard's counters (the ``metrics`` extra: ``prometheus-client``).

Why a custom ``Collector`` rather than ``Counter.inc()`` in the guards: the
unsampled fast path must not change at all, and the engine already counts
exactly.  :class:`RuntimeCollector` reads those counts at scrape time; only
the shadow histograms are observed as results arrive (off the fast path).
Everything lives in a private registry, so that enabling twice, or a host
that serves its own metrics, never collides with quantguard's.

In prometheus-client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, the
way a host with many ranks or workers serves one endpoint), a collector
cannot be aggregated: only metrics backed by the directory's files are.  There
:class:`DirectoryWriter` copies the same counts into file-backed counters once
a second, from its own thread (never from the guards), and the histograms are
file-backed themselves.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, start_http_server
from prometheus_client import values as _values
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from quantguard.telemetry._series import COUNTERS, GAUGES, HISTOGRAMS, common_labels, read_series
from quantguard.telemetry._tap import EventTap

__all__ = ["RuntimeCollector", "DirectoryWriter", "PrometheusMetrics", "multiprocess_directory"]

_COMMON = ("rank", "label")  # common_labels(), in its order
#: Seconds between two copies of the counts into the multiprocess directory.
FLUSH_SECONDS = 1.0


def multiprocess_directory() -> str | None:
    """The multiprocess directory prometheus-client writes to in this process, or None.

    prometheus-client picks file-backed values once, when it is first imported,
    from ``PROMETHEUS_MULTIPROC_DIR``; a variable set later changes nothing, so
    it is the imported choice that counts.
    """
    if not getattr(_values.ValueClass, "_multiprocess", False):
        return None
    # the lower-case name is prometheus-client's deprecated spelling, still honoured by it
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir")  # noqa: SIM112


class RuntimeCollector(Collector):
    """Counters and gauges read from the runtime at each scrape."""

    def __init__(self, owner: PrometheusMetrics) -> None:
        self._owner = owner

    def collect(self) -> Iterator[Metric]:
        runtime = self._owner.runtime
        common = list(common_labels(runtime).values())
        families: dict[str, Any] = {}
        for name, (doc, labels) in COUNTERS.items():
            families[name] = CounterMetricFamily(name, doc, labels=[*labels, *_COMMON])
        for name, (doc, labels) in GAUGES.items():
            families[name] = GaugeMetricFamily(name, doc, labels=[*labels, *_COMMON])
        for series in read_series(runtime, self._owner.tap.severities):
            families[series.name].add_metric([*series.labels.values(), *common], series.value)
        yield from families.values()


class DirectoryWriter:
    """Copies the runtime's counts into file-backed metrics of the multiprocess directory.

    Counters move by the difference since the last copy (the engine's counts only
    grow), so whoever aggregates the directory sums exact counts per rank.  The
    gauge is ``livesum``: a process that exits stops contributing.  The last
    copy is :meth:`close` (``disable()``) or, at exit and on SIGTERM, the
    lifecycle's final summary (``telemetry.flush()``).
    """

    def __init__(self, owner: PrometheusMetrics) -> None:
        self._owner = owner
        self._counters = {
            name: Counter(name, doc, [*labels, *_COMMON], registry=None) for name, (doc, labels) in COUNTERS.items()
        }
        self._gauges = {
            name: Gauge(name, doc, [*labels, *_COMMON], registry=None, multiprocess_mode="livesum")
            for name, (doc, labels) in GAUGES.items()
        }
        self._written: dict[tuple[str, tuple[str, ...]], float] = {}
        #: a forked child neither writes nor observes: its counts start from zero (its summary's too)
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="quantguard-metrics", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(FLUSH_SECONDS):
            try:
                self.flush()
            except Exception:  # never take the thread (or the host) down; the next copy retries
                pass

    def flush(self) -> None:
        """Write what changed since the last copy (scrape, exit and ``disable()`` call it too)."""
        if os.getpid() != self.pid:
            return
        runtime = self._owner.runtime
        common = tuple(common_labels(runtime).values())
        with self._lock:
            for series in read_series(runtime, self._owner.tap.severities):
                values = (*series.labels.values(), *common)
                if series.name in self._gauges:
                    self._gauges[series.name].labels(*values).set(series.value)
                    continue
                key = (series.name, values)
                delta = series.value - self._written.get(key, 0.0)
                if delta > 0 or key not in self._written:  # inc(0) shows a zero series, as a scrape would
                    self._counters[series.name].labels(*values).inc(delta)
                    self._written[key] = series.value

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.flush()
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())


class _FlushFirst(Collector):
    """Registered before the directory's collector: each scrape first writes this process's pending counts."""

    def __init__(self, writer: DirectoryWriter) -> None:
        self._writer = writer

    def collect(self) -> Iterator[Metric]:
        self._writer.flush()
        return iter(())


class PrometheusMetrics:
    """The registry, its histograms and (with a port) the HTTP server of one enabled runtime.

    With a multiprocess ``directory`` the counts go to that directory, and the
    registry (``text()``, the port) shows the aggregate of every process writing there.
    """

    def __init__(self, runtime: Any, tap: EventTap, directory: str | None = None) -> None:
        self.runtime = runtime
        self.tap = tap
        self.directory = directory
        self.registry = CollectorRegistry(auto_describe=False)
        if directory is None:
            self.registry.register(RuntimeCollector(self))
            histogram_registry: CollectorRegistry | None = self.registry
            self._writer: DirectoryWriter | None = None
        else:
            from prometheus_client import multiprocess

            self._writer = DirectoryWriter(self)
            self.registry.register(_FlushFirst(self._writer))  # a scrape shows this process's latest counts
            multiprocess.MultiProcessCollector(self.registry, path=directory)
            histogram_registry = None  # file-backed: the directory's collector shows them
        self._histograms = {
            name: Histogram(name, doc, ["target", "layer", *_COMMON], registry=histogram_registry, buckets=buckets)
            for name, (doc, _, buckets) in HISTOGRAMS.items()
        }
        self._server: Any = None
        self.port = 0
        tap.observers.append(self.observe)

    def observe(self, name: str, labels: dict[str, str], value: float) -> None:
        if self._writer is not None and os.getpid() != self._writer.pid:
            return
        common = common_labels(self.runtime).values()
        self._histograms[name].labels(labels["target"], labels["layer"], *common).observe(value)

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def text(self) -> str:
        return generate_latest(self.registry).decode()

    def serve(self, port: int) -> None:
        """Serve ``/metrics`` on ``port`` (on every interface, like Prometheus exporters); 0 stops serving."""
        if port == self.port:
            return
        self._stop_server()
        if port:
            started = start_http_server(port, registry=self.registry)
            self._server = started[0] if isinstance(started, tuple) else None
            self.port = port

    def _stop_server(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self._server = None
        self.port = 0

    def close(self) -> None:
        self._stop_server()
        if self._writer is not None:
            self._writer.close()
        if self.observe in self.tap.observers:
            self.tap.observers.remove(self.observe)
