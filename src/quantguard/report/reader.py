"""Streaming reader of quantguard's JSON-lines logs (plain or gzip).

A log can be gigabytes (one per rank, appended for days), so it is read one
line at a time and each event is handed on and forgotten.  Even a single
line is bounded (:data:`MAX_LINE_BYTES`): a corrupt file without newlines
must not be read into memory whole.  Bad lines are counted per file, never
fatal: a report over a log that a crashed process half-wrote is still
useful.  Only a file that cannot be opened or decoded at all is an error.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from quantguard.events import EVENT_NAMES

__all__ = ["FileStats", "LogReadError", "read_events", "MAX_LINE_BYTES", "MALFORMED_REASONS"]

#: Longer lines are skipped and counted as ``too_long``; real events are a few KiB.
MAX_LINE_BYTES = 16 * 1024 * 1024
#: Why a line was not an event, in the order reports list them.
MALFORMED_REASONS = ("bad_json", "not_object", "missing_event", "too_long")

_GZIP_MAGIC = b"\x1f\x8b"
_EXAMPLES_KEPT = 3
_UNKNOWN_NAMES_KEPT = 32
_KNOWN_EVENTS = frozenset(EVENT_NAMES)
#: Lines between two progress reports (a tell() per line would slow reading).
_PROGRESS_LINES = 4096


class LogReadError(Exception):
    """A log file could not be opened or decoded at all (missing, a directory, not gzip)."""


@dataclass
class FileStats:
    """What reading one file found besides events: line counts and what went wrong.

    ``malformed`` counts lines by reason (:data:`MALFORMED_REASONS`);
    ``examples`` keeps the first few line numbers of each reason so the
    report can point at them.  ``truncated`` is set when the file ended in
    the middle (a gzip stream cut short by a crash); the events before that
    point are kept.
    """

    path: str
    name: str
    lines: int = 0
    events: int = 0
    malformed: Counter = field(default_factory=Counter)
    examples: dict[str, list[int]] = field(default_factory=dict)
    unknown_events: Counter = field(default_factory=Counter)
    truncated: str | None = None

    @property
    def malformed_total(self) -> int:
        return sum(self.malformed.values())

    def _count_malformed(self, reason: str, line_number: int) -> None:
        self.malformed[reason] += 1
        kept = self.examples.setdefault(reason, [])
        if len(kept) < _EXAMPLES_KEPT:
            kept.append(line_number)

    def _count_unknown(self, name: str) -> None:
        # Bounded: a log full of distinct garbage names must not grow the counter forever.
        if name in self.unknown_events or len(self.unknown_events) < _UNKNOWN_NAMES_KEPT:
            self.unknown_events[name] += 1
        else:
            self.unknown_events["(other names)"] += 1


def _open(path: Path) -> IO[bytes]:
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise LogReadError(f"cannot open {path}: {exc.strerror or exc}") from exc
    try:
        magic = raw.read(2)
        raw.seek(0)
    except OSError as exc:
        raw.close()
        raise LogReadError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if magic == _GZIP_MAGIC:
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if path.suffix == ".gz":
        raw.close()
        raise LogReadError(f"cannot read {path}: named .gz but not gzip data")
    return raw


def _bounded_lines(stream: IO[bytes]) -> Iterator[bytes | None]:
    """Lines of ``stream``; ``None`` for a line longer than :data:`MAX_LINE_BYTES` (skipped unread)."""
    while True:
        line = stream.readline(MAX_LINE_BYTES)
        if not line:
            return
        if len(line) == MAX_LINE_BYTES and not line.endswith(b"\n"):
            while True:
                rest = stream.readline(MAX_LINE_BYTES)
                if not rest or rest.endswith(b"\n"):
                    break
            yield None
        else:
            yield line


def _classify(line: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """The event of a line, or the reason it is not one."""
    try:
        value = json.loads(line)
    except ValueError:  # includes UnicodeDecodeError
        return None, "bad_json"
    if not isinstance(value, dict):
        return None, "not_object"
    name = value.get("event")
    if not isinstance(name, str) or not name:
        return None, "missing_event"
    return value, None


def read_events(
    path: str | Path, stats: FileStats | None = None, on_progress: Callable[[int], None] | None = None
) -> Iterator[dict[str, Any]]:
    """Yield the event dicts of one log, one line at a time.

    Gzip is recognised by its magic bytes, whatever the name.  Malformed
    lines and unknown event names are counted in ``stats`` (unknown events
    are still yielded: a newer quantguard may add kinds).  Raises
    :class:`LogReadError` when the file cannot be opened, or fails before
    its first line is read; a failure later marks ``stats.truncated``.
    ``on_progress`` receives how many more bytes of the file (as stored:
    compressed for gzip) were read, every few thousand lines and at the end.
    """
    path = Path(path)
    stats = stats if stats is not None else FileStats(str(path), path.name)
    stream = _open(path)
    raw = getattr(stream, "fileobj", None) or stream  # gzip: progress in the stored (compressed) bytes
    reported = 0
    try:
        try:
            for line in _bounded_lines(stream):
                stats.lines += 1
                if on_progress is not None and stats.lines % _PROGRESS_LINES == 0:
                    reported = _report_progress(raw, reported, on_progress)
                if line is None:
                    stats._count_malformed("too_long", stats.lines)
                    continue
                if not line.endswith(b"\n"):
                    # quantguard writes whole lines: a last line without its newline is a cut-off write
                    stats.truncated = f"ends in a partial line (line {stats.lines}, {len(line)} bytes)"
                if not line.strip():
                    continue
                event, reason = _classify(line)
                if event is None:
                    stats._count_malformed(reason or "bad_json", stats.lines)
                    continue
                stats.events += 1
                if event["event"] not in _KNOWN_EVENTS:
                    stats._count_unknown(event["event"])
                yield event
        except (OSError, EOFError, zlib.error) as exc:
            if stats.lines == 0:
                raise LogReadError(f"cannot read {path}: {exc}") from exc
            stats.truncated = f"stopped after line {stats.lines}: {exc}"
        if on_progress is not None:
            _report_progress(raw, reported, on_progress)
    finally:
        stream.close()


def _report_progress(raw: Any, reported: int, on_progress: Callable[[int], None]) -> int:
    try:
        position = raw.tell()
    except (OSError, ValueError):
        return reported
    if position > reported:
        on_progress(position - reported)
    return max(position, reported)
