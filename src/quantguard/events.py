"""quantguard's events: names, common fields, and the one place they are emitted.

The event schema is a public interface (``docs/events.md``).  Every event is a
flat JSON object with ``event``, ``timestamp`` (UTC ISO-8601), ``level``,
``pid``, ``host``, ``rank``, ``world_size`` and ``quantguard_version``, plus
the fields of its kind.  Rendering (JSON lines or console) and destination
(stderr, stdout, file, stdlib logging) are configuration, done by a structlog
processor chain; listeners (``quantguard.testing.capture_events``) receive the
event dicts before rendering.

Events never carry tensor values unless ``log_values`` is on: builders only
take shapes, dtypes, strides and statistics.
"""

from __future__ import annotations

import json
import math
import os
import socket
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from quantguard._sinks import StreamSink, make_sink
from quantguard._version import __version__

__all__ = [
    "ENABLED",
    "DISABLED",
    "PATCHED",
    "TARGET_MISSING",
    "TARGET_MISMATCH",
    "VIOLATION",
    "BLOCKED",
    "SHADOW",
    "INTERNAL_ERROR",
    "SUMMARY",
    "STALE_REFERENCE",
    "UNCOVERED_KERNELS",
    "GRAPH",
    "CONFIG_WARNING",
    "EVENT_NAMES",
    "EventLog",
    "emit",
    "configure",
    "add_listener",
    "remove_listener",
    "to_jsonable",
]

ENABLED = "quantguard.enabled"
DISABLED = "quantguard.disabled"
PATCHED = "quantguard.patched"
TARGET_MISSING = "quantguard.target_missing"
TARGET_MISMATCH = "quantguard.target_mismatch"
VIOLATION = "quantguard.violation"
BLOCKED = "quantguard.blocked"
SHADOW = "quantguard.shadow"
INTERNAL_ERROR = "quantguard.internal_error"
SUMMARY = "quantguard.summary"
STALE_REFERENCE = "quantguard.stale_reference"
UNCOVERED_KERNELS = "quantguard.uncovered_kernels"
GRAPH = "quantguard.graph"
CONFIG_WARNING = "quantguard.config_warning"

EVENT_NAMES = (
    ENABLED,
    DISABLED,
    PATCHED,
    TARGET_MISSING,
    TARGET_MISMATCH,
    VIOLATION,
    BLOCKED,
    SHADOW,
    INTERNAL_ERROR,
    SUMMARY,
    STALE_REFERENCE,
    UNCOVERED_KERNELS,
    GRAPH,
    CONFIG_WARNING,
)

_HOST = socket.gethostname()
_FIELD_ORDER = ("event", "timestamp", "level")


def _distributed_identity() -> tuple[int | None, int | None]:
    """``(rank, world_size)`` when torch.distributed is initialized, else ``(None, None)``.

    Never imports torch: if the process has not loaded torch.distributed it
    cannot be initialized.
    """
    dist = sys.modules.get("torch.distributed")
    if dist is None:
        return None, None
    try:
        if dist.is_available() and dist.is_initialized():
            return int(dist.get_rank()), int(dist.get_world_size())
    except Exception:
        pass
    return None, None


def to_jsonable(value: Any) -> Any:
    """Make a field JSON-safe: tuples and sizes become lists, dtypes strings, NaN/inf strings."""
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    return str(value)


def _add_common_fields(logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    rank, world_size = _distributed_identity()
    ordered = {"event": event_dict.pop("event")}
    ordered["timestamp"] = event_dict.pop("timestamp")
    ordered["level"] = event_dict.pop("level", method_name)
    for key, value in event_dict.items():
        ordered[key] = to_jsonable(value)
    ordered["pid"] = os.getpid()
    ordered["host"] = _HOST
    ordered["rank"] = rank
    ordered["world_size"] = world_size
    ordered["quantguard_version"] = __version__
    return ordered


_listeners: list[Callable[[dict[str, Any]], None]] = []
_listeners_lock = threading.Lock()


def add_listener(listener: Callable[[dict[str, Any]], None]) -> None:
    """Receive every event dict (after common fields, before rendering)."""
    with _listeners_lock:
        _listeners.append(listener)


def remove_listener(listener: Callable[[dict[str, Any]], None]) -> None:
    with _listeners_lock:
        if listener in _listeners:
            _listeners.remove(listener)


def _fan_out(logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    for listener in tuple(_listeners):
        listener(dict(event_dict))
    logger.note(event_dict)
    return event_dict


def _json_dumps(obj: Any, **kwargs: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)


class EventLog:
    """A structlog logger over one sink with quantguard's processor chain."""

    __slots__ = ("sink", "_logger", "fmt")

    def __init__(self, destination: str = "stderr", fmt: str = "json") -> None:
        self.sink = make_sink(destination)
        self.fmt = fmt
        if fmt == "console":
            colors = isinstance(self.sink, StreamSink) and self.sink.isatty()
            renderer: Any = structlog.dev.ConsoleRenderer(colors=colors)
        else:
            renderer = structlog.processors.JSONRenderer(serializer=_json_dumps)
        self._logger = structlog.wrap_logger(
            self.sink,
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
                _add_common_fields,
                _fan_out,
                renderer,
            ],
            wrapper_class=structlog.BoundLogger,
            context_class=dict,
            cache_logger_on_first_use=False,
        )

    def emit(self, event: str, level: str = "info", **fields: Any) -> None:
        getattr(self._logger, level)(event, **fields)

    def close(self) -> None:
        self.sink.close()

    def after_fork(self) -> None:
        self.sink.after_fork()


_current = EventLog()
_current_lock = threading.Lock()


def configure(destination: str, fmt: str) -> EventLog:
    """Point :func:`emit` at a new destination and format (closing the previous sink)."""
    global _current
    with _current_lock:
        previous, _current = _current, EventLog(destination, fmt)
        _unwritable.clear()  # a new destination: its failures are news again
    if previous is not _current:
        previous.close()
    return _current


#: (event name, exception type) pairs already reported on stderr: a renderer that fails on every
#: event says so once per kind, not once per event.
_unwritable: set[tuple[str, str]] = set()


def emit(event: str, level: str = "info", **fields: Any) -> None:
    """Emit one event through the configured sink.  Never raises."""
    try:
        _current.emit(event, level, **fields)
    except Exception as exc:  # an unwritable sink must not break the host
        kind = (event, type(exc).__name__)
        if kind in _unwritable:
            return
        _unwritable.add(kind)
        try:
            sys.__stderr__.write(f"quantguard: could not write event {event}: {exc!r} (reported once per kind)\n")
        except Exception:
            pass


def _after_fork_in_child() -> None:
    global _listeners_lock, _current_lock
    _listeners_lock = threading.Lock()
    _current_lock = threading.Lock()
    _current.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
