"""Prometheus exposition of quantguard's counters (the ``metrics`` extra: ``prometheus-client``).

Why a custom ``Collector`` rather than ``Counter.inc()`` in the guards: the
unsampled fast path must not change at all, and the engine already counts
exactly.  :class:`RuntimeCollector` reads those counts at scrape time; only
the shadow histograms are observed as results arrive (from events, off the
fast path).  Everything lives in a private registry, so that enabling twice,
or a host that serves its own metrics, never collides with quantguard's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from quantguard.telemetry._series import COUNTERS, GAUGES, HISTOGRAMS, rank_label, read_series
from quantguard.telemetry._tap import EventTap

__all__ = ["RuntimeCollector", "PrometheusMetrics"]

_COMMON = ("rank", "label")


class RuntimeCollector(Collector):
    """Counters and gauges read from the runtime at each scrape."""

    def __init__(self, owner: PrometheusMetrics) -> None:
        self._owner = owner

    def collect(self) -> Iterator[Metric]:
        runtime = self._owner.runtime
        common = [rank_label(), runtime.config.label or ""]
        families: dict[str, Any] = {}
        for name, (doc, labels) in COUNTERS.items():
            families[name] = CounterMetricFamily(name, doc, labels=[*labels, *_COMMON])
        for name, (doc, labels) in GAUGES.items():
            families[name] = GaugeMetricFamily(name, doc, labels=[*labels, *_COMMON])
        for series in read_series(runtime, self._owner.tap.severities):
            families[series.name].add_metric([*series.labels.values(), *common], series.value)
        yield from families.values()


class PrometheusMetrics:
    """The registry, its histograms and (with a port) the HTTP server of one enabled runtime."""

    def __init__(self, runtime: Any, tap: EventTap) -> None:
        self.runtime = runtime
        self.tap = tap
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(RuntimeCollector(self))
        self._histograms = {
            name: Histogram(name, doc, ["target", "layer", *_COMMON], registry=self.registry, buckets=buckets)
            for name, (doc, _, buckets) in HISTOGRAMS.items()
        }
        self._server: Any = None
        self.port = 0
        tap.observers.append(self.observe)

    def observe(self, name: str, labels: dict[str, str], value: float) -> None:
        common = (rank_label(), self.runtime.config.label or "")
        self._histograms[name].labels(labels["target"], labels["layer"], *common).observe(value)

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
        if self.observe in self.tap.observers:
            self.tap.observers.remove(self.observe)
