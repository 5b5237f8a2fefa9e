"""The file sink writes only quantguard logs, whole lines, and falls back to stderr when it cannot."""

from __future__ import annotations

import errno
import json
import os
import stat

import pytest

from quantguard import _log_file, events
from quantguard._sinks import FileSink
from quantguard.config import resolve_config
from quantguard.errors import ConfigError

_QG_LINE = json.dumps({"event": "quantguard.enabled", "level": "info"}) + "\n"


def _event_line(name: str = "quantguard.violation", level: str = "error") -> str:
    return json.dumps({"event": name, "level": level})


def _existing_foreign(tmp_path):
    path = tmp_path / "etc" / "passwd"
    path.parent.mkdir()
    path.write_text("root:x:0:0:root:/root:/bin/bash\n")
    return path


def _symlink_to_foreign(tmp_path):
    target = _existing_foreign(tmp_path)
    link = tmp_path / "log.jsonl"
    link.symlink_to(target)
    return link


def _symlink_to_own_log(tmp_path):
    target = tmp_path / "real.jsonl"
    target.write_text(_QG_LINE)
    link = tmp_path / "log.jsonl"
    link.symlink_to(target)
    return link


def _dangling_symlink(tmp_path):
    link = tmp_path / "log.jsonl"
    link.symlink_to(tmp_path / "elsewhere.jsonl")
    return link


def _directory(tmp_path):
    path = tmp_path / "logs"
    path.mkdir()
    return path


def _fifo(tmp_path):
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


def _too_long(tmp_path):
    return tmp_path / ("x" * 300)


def _dev_full(tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    return "/dev/full"


def _traversal(tmp_path):
    _existing_foreign(tmp_path)
    (tmp_path / "a" / "b").mkdir(parents=True)
    return os.path.join(str(tmp_path / "a" / "b"), "..", "..", "etc", "passwd")


REFUSED = {
    "existing non-quantguard file": (_existing_foreign, "not a quantguard JSON-lines log"),
    "relative path traversal": (_traversal, "not a quantguard JSON-lines log"),
    "symlink to a foreign file": (_symlink_to_foreign, "symbolic link"),
    "symlink to a quantguard log": (_symlink_to_own_log, "symbolic link"),
    "dangling symlink": (_dangling_symlink, "symbolic link"),
    "directory": (_directory, "directory"),
    "fifo": (_fifo, "not a regular file"),
    "/dev/full": (_dev_full, "not a regular file"),
    "name too long": (_too_long, "longer than"),
}


def _contents(path) -> bytes | None:
    try:
        return open(path, "rb").read() if os.path.isfile(path) and not os.path.islink(path) else None
    except OSError:
        return None


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_config_refuses_destination_with_reason(case, tmp_path):
    make, reason = REFUSED[case]
    path = str(make(tmp_path))
    with pytest.raises(ConfigError) as error:
        resolve_config({"log": path}, environ={})
    assert reason in str(error.value) and "accepted:" in str(error.value)


@pytest.mark.parametrize("case", sorted(set(REFUSED) - {"name too long"}))
def test_sink_refuses_at_open_and_leaves_the_file_untouched(case, tmp_path, capsys):
    """The open-time check is the one that counts (the file may appear after the config was parsed)."""
    make, reason = REFUSED[case]
    path = str(make(tmp_path))
    resolved = os.path.realpath(path)
    before = _contents(resolved)
    sink = FileSink(path)
    sink.error(_event_line())
    sink.close()
    assert _contents(resolved) == before
    assert sink.failed is not None and reason in sink.failed
    err = capsys.readouterr().err
    assert err.count("cannot write the event log") == 1


def test_new_file_is_owner_only_and_gets_whole_lines(tmp_path):
    path = tmp_path / "qg.jsonl"
    sink = FileSink(str(path))
    for index in range(3):
        sink.info(_event_line("quantguard.shadow", "info") + f" {index}")
    sink.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert path.read_bytes().count(b"\n") == 3 and path.read_bytes().endswith(b"\n")
    assert sink.failed is None


@pytest.mark.parametrize("existing", ["quantguard log", "empty file"])
def test_appends_to_own_log_or_empty_file(existing, tmp_path):
    path = tmp_path / "qg.jsonl"
    path.write_text(_QG_LINE if existing == "quantguard log" else "")
    before = path.read_text()
    sink = FileSink(str(path))
    sink.info(_event_line("quantguard.shadow", "info"))
    sink.close()
    assert path.read_text().startswith(before) and path.read_text().count("\n") == before.count("\n") + 1
    assert sink.failed is None


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to chown")
def test_refuses_empty_file_of_another_user(tmp_path):
    path = tmp_path / "qg.jsonl"
    path.write_text("")
    os.chown(path, 12345, 12345)
    assert "another user" in _log_file.destination_problem(str(path))
    with pytest.raises(_log_file.LogFileError):
        _log_file.open_log(str(path))


def test_devnull_is_accepted():
    assert _log_file.destination_problem(os.devnull) is None
    sink = FileSink(os.devnull)
    sink.info(_event_line())
    assert sink.failed is None
    sink.close()


def test_full_disk_leaves_whole_lines_and_falls_back(tmp_path, monkeypatch, capsys):
    """A write cut short by ENOSPC is cut off again; the file still ends at a line boundary."""
    path = tmp_path / "qg.jsonl"
    sink = FileSink(str(path))
    sink.info(_event_line("quantguard.enabled", "info"))
    real_write = os.write
    calls = []

    def full_after_half(fd, data):
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full_after_half)
    sink.error(_event_line("quantguard.violation", "error"))
    monkeypatch.setattr(os, "write", real_write)
    sink.note({"event": "quantguard.summary"})
    sink.info(_event_line("quantguard.summary", "info"))
    sink.close()
    content = path.read_bytes()
    assert content.endswith(b"\n") and content.count(b"\n") == 1  # only the first, whole line
    err = capsys.readouterr().err
    assert "No space left on device" in err and "quantguard.violation" in err and "quantguard.summary" in err


def test_fallback_is_rate_limited_and_keeps_the_summary(tmp_path, capsys):
    sink = FileSink(str(_directory(tmp_path)))
    for _ in range(200):
        sink.error(_event_line("quantguard.violation", "error"))
    for _ in range(50):
        sink.info(_event_line("quantguard.shadow", "info"))
    sink.note({"event": "quantguard.summary"})
    sink.info(_event_line("quantguard.summary", "info"))
    lines = capsys.readouterr().err.splitlines()
    assert sum("cannot write the event log" in line for line in lines) == 1
    assert sum("quantguard.violation" in line for line in lines) <= 12
    assert not any("quantguard.shadow" in line for line in lines)
    assert sum("quantguard.summary" in line for line in lines) == 1
    assert any("were not written" in line for line in lines)


def test_broken_log_does_not_flood_stderr_through_emit(tmp_path, capsys):
    """Through the event pipeline: the destination fails after configuration; stderr gets a handful of lines."""
    path = tmp_path / "qg.jsonl"
    path.mkdir()  # a directory appeared where the log was to be: every open fails
    events.configure(str(path), "json")
    try:
        for _ in range(300):
            events.emit(events.VIOLATION, "error", target="t", check="c", message="m")
        events.emit(events.SUMMARY, "info", calls=1)
    finally:
        events.configure("stderr", "json")
    err = capsys.readouterr().err.splitlines()
    assert len(err) < 20
    assert any("quantguard.summary" in line for line in err)
