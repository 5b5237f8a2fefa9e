"""The streaming reader: plain and gzip logs, malformed lines counted per file, never fatal."""

from __future__ import annotations

import gzip

import pytest
from report_events import event, violation

from quantguard.report import reader
from quantguard.report.reader import FileStats, LogReadError, read_events

GOOD = [event("enabled"), violation(count=1), event("disabled")]


@pytest.mark.parametrize("name", ["run.jsonl", "run.jsonl.gz"])
def test_reads_plain_and_gzip(write_log, name):
    path = write_log(name, GOOD)
    stats = FileStats(str(path), path.name)
    events = list(read_events(path, stats))
    assert [e["event"] for e in events] == ["quantguard.enabled", "quantguard.violation", "quantguard.disabled"]
    assert (stats.lines, stats.events, stats.malformed_total) == (3, 3, 0)


def test_gzip_is_recognised_by_content_not_name(tmp_path):
    path = tmp_path / "rank0.log"
    path.write_bytes(gzip.compress(b'{"event": "quantguard.disabled"}\n'))
    assert [e["event"] for e in read_events(path)] == ["quantguard.disabled"]


@pytest.mark.parametrize("name", ["run.jsonl", "run.jsonl.gz"])
def test_malformed_lines_are_counted_with_line_numbers(write_log, name):
    lines = [GOOD[0], "{not json", "[1, 2]", '"text"', '{"level": "info"}', '{"event": 3}', "", "\xff garbage", GOOD[1]]
    path = write_log(name, lines)
    stats = FileStats(str(path), path.name)
    events = list(read_events(path, stats))
    assert len(events) == 2
    assert dict(stats.malformed) == {"bad_json": 2, "not_object": 2, "missing_event": 2}
    assert stats.examples == {"bad_json": [2, 8], "not_object": [3, 4], "missing_event": [5, 6]}
    assert stats.lines == 9  # the blank line is read, but not malformed


def test_unknown_events_are_counted_and_still_yielded(write_log):
    path = write_log("run.jsonl", [event("from_the_future"), event("from_the_future"), {"event": "other.thing"}])
    stats = FileStats(str(path), path.name)
    assert len(list(read_events(path, stats))) == 3
    assert stats.unknown_events == {"quantguard.from_the_future": 2, "other.thing": 1}


def test_distinct_unknown_names_are_bounded(write_log, monkeypatch):
    monkeypatch.setattr(reader, "_UNKNOWN_NAMES_KEPT", 2)
    path = write_log("run.jsonl", [{"event": f"name{i}"} for i in range(5)])
    stats = FileStats(str(path), path.name)
    list(read_events(path, stats))
    assert stats.unknown_events == {"name0": 1, "name1": 1, "(other names)": 3}


def test_overlong_line_is_skipped_without_reading_it_whole(write_log, monkeypatch):
    monkeypatch.setattr(reader, "MAX_LINE_BYTES", 64)
    path = write_log("run.jsonl", [GOOD[0] | {"padding": "x" * 500}, '{"event": "quantguard.disabled"}'])
    stats = FileStats(str(path), path.name)
    assert [e["event"] for e in read_events(path, stats)] == ["quantguard.disabled"]
    assert stats.malformed == {"too_long": 1}


def test_truncated_gzip_keeps_the_events_before_the_cut(tmp_path):
    data = gzip.compress(
        ("\n".join('{"event": "quantguard.shadow", "i": %d}' % i for i in range(2000)) + "\n").encode()
    )
    path = tmp_path / "crashed.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    stats = FileStats(str(path), path.name)
    events = list(read_events(path, stats))
    assert 0 < len(events) < 2000
    assert stats.truncated and "stopped after line" in stats.truncated


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "missing.jsonl", "cannot open"),
        (lambda d: d, "cannot"),
        (lambda d: (d / "fake.jsonl.gz").write_text("{}\n") and d / "fake.jsonl.gz", "not gzip"),
        (lambda d: (d / "broken.jsonl").write_bytes(b"\x1f\x8bnot really gzip") and d / "broken.jsonl", "cannot read"),
    ],
)
def test_unreadable_files_raise(tmp_path, make, message):
    with pytest.raises(LogReadError, match=message):
        list(read_events(make(tmp_path)))
