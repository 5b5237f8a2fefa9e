"""The listeners behind the metrics: severities of violations (events), shadow values (the reporter).

It runs only while metrics are on, and only for inspected calls (never for an
unsampled call).  Shadow values come from the reporter's ``shadow_observers``
hook, called for every shadow result before rate limiting, so the histograms
hold every sample (shadow *events* are rate limited per ``rate_limit_interval``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from quantguard import events
from quantguard.telemetry._series import HISTOGRAMS

__all__ = ["EventTap"]

#: ``observe(histogram name, labels, value)``
Observer = Callable[[str, dict[str, str], float], None]


class EventTap:
    """Listens to events once (``events.add_listener``) and hands shadow values to each observer."""

    __slots__ = ("severities", "observers", "forwarders", "_reporter")

    def __init__(self) -> None:
        #: (target, check) -> severity of its last first-hand violation event
        self.severities: dict[tuple[str, str], str] = {}
        self.observers: list[Observer] = []
        #: called with every event dict (the OpenTelemetry log bridge)
        self.forwarders: list[Callable[[dict[str, Any]], None]] = []
        self._reporter: Any = None

    def install(self, reporter: Any = None) -> None:
        events.add_listener(self)
        self.attach(reporter)

    def attach(self, reporter: Any) -> None:
        """Receive every shadow result of ``reporter`` (the enabled runtime's; re-attached on reconfigure)."""
        if reporter is self._reporter:
            return
        self.detach()
        if reporter is not None:
            reporter.shadow_observers.append(self.on_result)
            self._reporter = reporter

    def detach(self) -> None:
        if self._reporter is not None and self.on_result in self._reporter.shadow_observers:
            self._reporter.shadow_observers.remove(self.on_result)
        self._reporter = None

    def uninstall(self) -> None:
        events.remove_listener(self)
        self.detach()

    def on_result(self, target: str, layer: str | None, fields: dict[str, Any]) -> None:
        """One shadow result (every one, before rate limiting); never raises into the judging path."""
        if not self.observers:
            return
        try:
            self._observe({"target": target, "layer": layer, **fields})
        except Exception:
            pass

    def __call__(self, event: dict[str, Any]) -> None:
        name = event.get("event")
        if name == events.VIOLATION:
            details = event.get("details")
            if not (isinstance(details, dict) and details.get("repeat")):  # folded repeats are logged as warnings
                self.severities[(str(event.get("target")), str(event.get("check")))] = str(event.get("severity"))
        for forward in self.forwarders:
            try:
                forward(event)
            except Exception:  # an exporter's failure must not cost the event its other sinks
                pass

    def _observe(self, event: dict[str, Any]) -> None:
        labels = {"target": str(event.get("target")), "layer": str(event.get("layer") or "")}
        for metric, (_, field, _) in HISTOGRAMS.items():
            value = _finite(event.get(field))
            if value is None:
                continue
            for observe in self.observers:
                observe(metric, labels, value)


def _finite(value: Any) -> float | None:
    """A finite float, or None: events carry non-finite numbers as strings ("NaN"), histograms cannot bin them."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None
