"""Where rendered events go: stderr, stdout, a file, or stdlib ``logging``.

Each sink is a tiny object with one method per level, the shape structlog
expects of a wrapped logger.  Streams are looked up at write time (so test
runners that swap ``sys.stderr`` see the output) and files are reopened after
a fork so each process writes whole lines of its own.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from quantguard._log_file import LogFileError, append_line, open_log

__all__ = ["make_sink", "expand_path", "StreamSink", "FileSink", "LoggingSink"]

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

    def note(self, event: dict[str, Any]) -> None:
        """See the event dict before its rendered line arrives (sinks that need more than the line)."""

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
    """Appends JSON lines to a quantguard log file; ``{pid}`` and ``{rank}`` in the path are expanded.

    The file is opened lazily under :mod:`quantguard._log_file`'s rules (create
    owner-only, append only to an existing quantguard log, never follow a
    symlink, whole lines only) and reopened when the pid changes (after fork),
    so a template with ``{pid}`` gives one file per process and a plain path
    gets whole-line appends from every process.  When the destination fails
    (refused, full disk, removed directory) the sink says so once on stderr
    and from then on sends warnings, errors and the summary there,
    rate-limited, so a broken log never floods the host's stderr nor loses the
    summary.
    """

    __slots__ = ("template", "_fd", "_pid", "_event_name", "_fallback")

    def __init__(self, template: str) -> None:
        super().__init__()
        self.template = os.path.expanduser(template)
        self._fd: int | None = None
        self._pid = -1
        self._event_name = ""
        self._fallback: _StderrFallback | None = None

    @property
    def path(self) -> str:
        return expand_path(self.template)

    @property
    def failed(self) -> str | None:
        """Why the file could not be written (events then go to the stderr fallback), or ``None``."""
        return self._fallback.reason if self._fallback is not None else None

    def note(self, event: dict[str, Any]) -> None:
        self._event_name = str(event.get("event", ""))

    def _write(self, level: str, line: str) -> None:
        with self._lock:
            name, self._event_name = self._event_name, ""
            if self._fallback is None:
                try:
                    if self._fd is None or self._pid != os.getpid():
                        self._fd = open_log(self.path)
                        self._pid = os.getpid()
                    append_line(self._fd, (line + "\n").encode("utf-8", "backslashreplace"))
                    return
                except OSError as exc:
                    self._fallback = _StderrFallback(self.path, exc)
            self._fallback.write(level, name, line)

    def after_fork(self) -> None:
        super().after_fork()
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # the child's copy; the parent keeps its own
        self._fd = None

    def close(self) -> None:
        with self._lock:
            if self._fd is not None and self._pid == os.getpid():
                with contextlib.suppress(OSError):
                    os.close(self._fd)
            self._fd = None


class _StderrFallback:
    """Where a failed file sink's events go: stderr, announced once, rate-limited, never the summary dropped."""

    #: Lines let through at once, then one per ``_REFILL_SECONDS``.
    _BURST = 10
    _REFILL_SECONDS = 6.0
    _ALWAYS = ("quantguard.summary", "quantguard.disabled")

    def __init__(self, path: str, error: OSError) -> None:
        self.reason = str(error.strerror or error) if not isinstance(error, LogFileError) else error.strerror
        self._tokens = float(self._BURST)
        self._last = time.monotonic()
        self.dropped = 0
        _to_stderr(
            f"quantguard: cannot write the event log {path!r}: {self.reason}; warnings, errors and the "
            f"summary go to stderr from now on (at most {self._BURST} at once, then one per "
            f"{self._REFILL_SECONDS:g} s)"
        )

    def write(self, level: str, name: str, line: str) -> None:
        if name in self._ALWAYS:
            if self.dropped:
                _to_stderr(f"quantguard: {self.dropped} event(s) were not written (the event log failed)")
                self.dropped = 0
            _to_stderr(line)
            return
        if _LEVELS.get(level, logging.INFO) < logging.WARNING:
            self.dropped += 1
            return
        now = time.monotonic()
        self._tokens = min(float(self._BURST), self._tokens + (now - self._last) / self._REFILL_SECONDS)
        self._last = now
        if self._tokens < 1.0:
            self.dropped += 1
            return
        self._tokens -= 1.0
        _to_stderr(line)


def _to_stderr(text: str) -> None:
    stream = sys.stderr if sys.stderr is not None else sys.__stderr__
    with contextlib.suppress(Exception):
        stream.write(text + "\n")
        stream.flush()


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

    def note(self, event: dict[str, Any]) -> None:
        self._pending.event = dict(event)

    def _write(self, level: str, line: str) -> None:
        event = getattr(self._pending, "event", None)
        self._pending.event = None
        self.logger.log(_LEVELS.get(level, logging.INFO), line, extra={"quantguard": event})

    def after_fork(self) -> None:
        super().after_fork()
        self._pending = threading.local()


def expand_path(template: str) -> str:
    """``{pid}`` and ``{rank}`` of a log path template, for this process."""
    rank = os.environ.get("RANK", "0")
    return template.replace("{pid}", str(os.getpid())).replace("{rank}", rank)


def make_sink(destination: str) -> _Sink:
    """Sink for a validated ``Config.log`` value."""
    if destination in ("stderr", "stdout"):
        return StreamSink(destination)
    if destination == "logging":
        return LoggingSink()
    return FileSink(destination)
