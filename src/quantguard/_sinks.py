"""Where rendered events go: stderr, stdout, a file, or stdlib ``logging``.

Each sink is a tiny object with one method per level, the shape structlog
expects of a wrapped logger.  Streams are looked up at write time (so test
runners that swap ``sys.stderr`` see the output) and files are reopened after
a fork so each process writes whole lines of its own.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["make_sink", "StreamSink", "FileSink", "LoggingSink"]

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


class _Sink:
    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def _write(self, level: str, line: str) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _method(level: str) -> Callable[[_Sink, str], None]:  # type: ignore[misc]
        def method(self: _Sink, message: str) -> None:
            self._write(level, message)

        method.__name__ = level
        return method

    debug = _method("debug")
    info = _method("info")
    warning = _method("warning")
    error = _method("error")
    critical = _method("critical")
    msg = _method("info")
    del _method

    def after_fork(self) -> None:
        self._lock = threading.Lock()

    def close(self) -> None:
        """Release what the sink holds; streams stay open (they are not ours)."""


class StreamSink(_Sink):
    """Writes one line per event to ``sys.stderr`` or ``sys.stdout`` (resolved per write)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def isatty(self) -> bool:
        stream = getattr(sys, self.name, None)
        return bool(stream is not None and getattr(stream, "isatty", lambda: False)())

    def _write(self, level: str, line: str) -> None:
        stream = getattr(sys, self.name, None)
        if stream is None:
            return
        with self._lock:
            stream.write(line + "\n")
            stream.flush()


class FileSink(_Sink):
    """Appends JSON lines to a file; ``{pid}`` and ``{rank}`` in the path are expanded.

    The file is opened lazily and reopened when the pid changes (after fork), so
    a template with ``{pid}`` gives one file per process and a plain path gets
    whole-line appends from every process.
    """

    __slots__ = ("template", "_file", "_pid")

    def __init__(self, template: str) -> None:
        super().__init__()
        self.template = os.path.expanduser(template)
        self._file: Any = None
        self._pid = -1

    @property
    def path(self) -> str:
        return _expand_path(self.template)

    def _write(self, level: str, line: str) -> None:
        with self._lock:
            if self._file is None or self._pid != os.getpid():
                self._file = open(self.path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - kept open, closed in close()
                self._pid = os.getpid()
            self._file.write(line + "\n")
            self._file.flush()

    def after_fork(self) -> None:
        super().after_fork()
        self._file = None

    def close(self) -> None:
        with self._lock:
            if self._file is not None and self._pid == os.getpid():
                self._file.close()
            self._file = None


class LoggingSink(_Sink):
    """Hands each rendered event to the stdlib logger ``quantguard`` at the event's level.

    The structured event is attached as ``record.quantguard`` so existing handlers
    and formatters can use fields instead of parsing the message.
    """

    __slots__ = ("logger", "_pending")

    def __init__(self, logger_name: str = "quantguard") -> None:
        super().__init__()
        self.logger = logging.getLogger(logger_name)
        self._pending: threading.local = threading.local()

    def remember(self, event: dict[str, Any]) -> None:
        self._pending.event = event

    def _write(self, level: str, line: str) -> None:
        event = getattr(self._pending, "event", None)
        self._pending.event = None
        self.logger.log(_LEVELS.get(level, logging.INFO), line, extra={"quantguard": event})

    def after_fork(self) -> None:
        super().after_fork()
        self._pending = threading.local()


def _expand_path(template: str) -> str:
    rank = os.environ.get("RANK", "0")
    return template.replace("{pid}", str(os.getpid())).replace("{rank}", rank)


def make_sink(destination: str) -> _Sink:
    """Sink for a validated ``Config.log`` value."""
    if destination in ("stderr", "stdout"):
        return StreamSink(destination)
    if destination == "logging":
        return LoggingSink()
    return FileSink(destination)
