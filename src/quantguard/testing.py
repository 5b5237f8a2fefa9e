"""Helpers for testing code that runs under quantguard (like ``structlog.testing``).

with quantguard.testing.capture_events() as events:
    run_my_model()
assert not events.violations()
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from quantguard import events as _events

__all__ = ["CapturedEvents", "capture_events"]


class CapturedEvents(list):
    """The event dicts emitted while capturing, in order, with small query helpers."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def _append(self, event: dict[str, Any]) -> None:
        with self._lock:
            self.append(event)

    def named(self, name: str) -> list[dict[str, Any]]:
        """Events whose ``event`` field is ``name`` (``"violation"`` is short for ``"quantguard.violation"``)."""
        full = name if name.startswith("quantguard.") else f"quantguard.{name}"
        return [event for event in self if event["event"] == full]

    def violations(
        self, check: str | None = None, target: str | None = None, severity: str | None = None
    ) -> list[dict[str, Any]]:
        return [
            event
            for event in self.named(_events.VIOLATION)
            if (check is None or event.get("check") == check)
            and (target is None or event.get("target") == target)
            and (severity is None or event.get("severity") == severity)
        ]

    def checks(self) -> set[str]:
        """Names of the checks that reported a violation."""
        return {event["check"] for event in self.named(_events.VIOLATION)}


@contextlib.contextmanager
def capture_events() -> Iterator[CapturedEvents]:
    """Collect every quantguard event emitted inside the block (from any thread)."""
    captured = CapturedEvents()
    _events.add_listener(captured._append)
    try:
        yield captured
    finally:
        _events.remove_listener(captured._append)
