"""Internal errors: each distinct one is logged, exact repeats are only counted."""

from __future__ import annotations

from quantguard.config import Config
from quantguard.engine.reporter import Reporter
from quantguard.testing import capture_events


def _raise(kind: type[Exception], message: str) -> Exception:
    try:
        raise kind(message)
    except Exception as exc:
        return exc


def _raise_elsewhere(message: str) -> Exception:
    try:
        {}[message]
    except Exception as exc:
        return exc


def test_a_first_error_does_not_hide_a_different_later_one():
    reporter = Reporter(Config())
    with capture_events() as seen:
        for _ in range(3):
            reporter.internal_error("t", "check", _raise(ValueError, "m = 0"))  # the same line each time
        reporter.internal_error("t", "check", _raise_elsewhere("a real bug"))
        reporter.internal_error("t", "check", _raise(TypeError, "another"))
        reporter.internal_error("other", "check", _raise(ValueError, "m = 0"))
    logged = [(e["target"], e["error"].split(":")[0]) for e in seen if e["event"] == "quantguard.internal_error"]
    assert logged == [("t", "ValueError"), ("t", "KeyError"), ("t", "TypeError"), ("other", "ValueError")]
    assert reporter.stats.internal_errors[("t", "check")] == 5
