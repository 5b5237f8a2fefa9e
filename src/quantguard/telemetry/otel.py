"""OpenTelemetry bridge: events as OTel log records, the counters as observable OTel instruments.

quantguard does not configure exporters: whoever sets up OpenTelemetry in the
process (``opentelemetry-instrument`` from the ``OTEL_*`` variables, or the
application) installs the global LoggerProvider and MeterProvider, and this
module writes to them.  Only imported when OTel is switched on, so a process
without it never imports ``opentelemetry``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry import metrics
from opentelemetry._logs import LogRecord, SeverityNumber, get_logger_provider

from quantguard._version import __version__
from quantguard.telemetry._series import COUNTERS, GAUGES, HISTOGRAMS, common_labels, read_series
from quantguard.telemetry._tap import EventTap

__all__ = ["OtelBridge"]

_SEVERITY = {
    "debug": SeverityNumber.DEBUG,
    "info": SeverityNumber.INFO,
    "warning": SeverityNumber.WARN,
    "error": SeverityNumber.ERROR,
    "critical": SeverityNumber.FATAL,
}
#: Fields that are the record itself, not attributes.
_RECORD_FIELDS = ("event", "timestamp", "level")


def _attribute(value: Any) -> Any:
    """OTel attributes are primitives or homogeneous lists of them: anything else becomes its JSON text."""
    if isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    return json.dumps(value, separators=(",", ":"))


class OtelBridge:
    """Forwards events to the global OTel logger and registers observable instruments on the global meter.

    One per process (:meth:`open`): an OTel meter cannot remove an instrument,
    so a re-enabled quantguard reuses the instruments it registered first.
    """

    _current: OtelBridge | None = None

    @classmethod
    def open(cls, runtime: Any, tap: EventTap) -> OtelBridge:
        bridge = cls._current
        if bridge is None:
            bridge = cls._current = cls(runtime, tap)
            return bridge
        bridge.runtime, bridge.tap, bridge.closed = runtime, tap, False
        tap.forwarders.append(bridge.forward)
        tap.observers.append(bridge.observe)
        return bridge

    def __init__(self, runtime: Any, tap: EventTap) -> None:
        self.runtime = runtime
        self.tap = tap
        self._logger = get_logger_provider().get_logger("quantguard", __version__)
        meter = metrics.get_meter("quantguard", __version__)
        self._instruments: list[Any] = []
        for name, (doc, _) in COUNTERS.items():
            self._instruments.append(meter.create_observable_counter(name, [self._callback(name)], description=doc))
        for name, (doc, _) in GAUGES.items():
            self._instruments.append(meter.create_observable_gauge(name, [self._callback(name)], description=doc))
        self._histograms = {
            name: meter.create_histogram(name, description=doc) for name, (doc, _, _) in HISTOGRAMS.items()
        }
        self.closed = False
        tap.forwarders.append(self.forward)
        tap.observers.append(self.observe)

    def _callback(self, name: str) -> Callable[[Any], Iterable[metrics.Observation]]:
        def observe(options: Any) -> Iterable[metrics.Observation]:
            if self.closed:  # an OTel meter cannot drop an instrument: a closed bridge reports nothing
                return []
            common = self._common()
            return [
                metrics.Observation(series.value, {**series.labels, **common})
                for series in read_series(self.runtime, self.tap.severities)
                if series.name == name
            ]

        return observe

    def _common(self) -> dict[str, str]:
        return common_labels(self.runtime)

    def observe(self, name: str, labels: dict[str, str], value: float) -> None:
        self._histograms[name].record(value, {**labels, **self._common()})

    def forward(self, event: dict[str, Any]) -> None:
        level = str(event.get("level", "info"))
        attributes = {
            key: _attribute(value) for key, value in event.items() if key not in _RECORD_FIELDS and value is not None
        }
        record = {
            "severity_number": _SEVERITY.get(level, SeverityNumber.INFO),
            "severity_text": level.upper(),
            "body": str(event.get("event")),
            "attributes": attributes,
        }
        try:
            self._logger.emit(**record, event_name=record["body"])
        except TypeError:  # an SDK before keyword emit (< 1.39) takes an API LogRecord
            self._logger.emit(LogRecord(**record))

    def close(self) -> None:
        self.closed = True
        for hook, sink in ((self.forward, self.tap.forwarders), (self.observe, self.tap.observers)):
            if hook in sink:
                sink.remove(hook)
