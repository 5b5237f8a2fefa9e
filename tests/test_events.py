"""Event schema: common fields, names, formats, sinks, and no tensor values."""

from __future__ import annotations

import json
import logging

import pytest
import torch

import quantguard
from quantguard import Contract, events
from quantguard.checks.base import Finding, PlanCheck, register_check
from quantguard.testing import capture_events

COMMON = {"event", "timestamp", "level", "pid", "host", "rank", "world_size", "quantguard_version"}
REQUIRED = {
    events.ENABLED: {"config", "platform", "reconfigured", "contracts"},
    events.DISABLED: {"restored_bindings", "violations"},
    events.PATCHED: {"target", "aliases", "backend", "checks"},
    events.TARGET_MISSING: {"target", "reason"},
    events.VIOLATION: {"target", "check", "severity", "message", "details", "callsite", "count"},
    events.SUMMARY: {"calls", "violations", "violation_total", "blocked", "internal_errors", "shadow", "layers"},
}


@register_check
class _Secret(PlanCheck):
    name = "test_secret"

    def check(self, call):
        yield Finding(
            "test_values",
            "flag",
            details={"shape": list(call["x"].shape)},
            values={"first": float(call["x"].reshape(-1)[0])},
        )


def _run(make_module, **options):
    module = make_module("qgt_ev", "def kernel(x):\n    return x\n")
    quantguard.register(
        Contract(target="qgt_ev.kernel", kind="kernel", backend="torch", checks=("test_secret",), key=("x",))
    )
    quantguard.register(Contract(target="qgt_ev.gone", kind="kernel", backend="torch"))
    quantguard.enable(targets="qgt_ev.*", **options)
    module.kernel(torch.full((2,), 123.456))
    quantguard.disable()


def test_every_event_is_one_json_line_with_the_schema(make_module, tmp_path):
    log = tmp_path / "log-{pid}.jsonl"
    _run(make_module, log=str(log))
    files = list(tmp_path.glob("log-*.jsonl"))
    assert len(files) == 1
    lines = [json.loads(line) for line in files[0].read_text().splitlines()]
    names = [line["event"] for line in lines]
    assert set(REQUIRED) <= set(names)
    for line in lines:
        assert set(line) >= COMMON, line["event"]
        assert REQUIRED.get(line["event"], set()) <= set(line), line["event"]
        assert line["timestamp"].endswith("Z") or "+00:00" in line["timestamp"]
        assert line["rank"] is None and line["world_size"] is None
    assert "123.456" not in files[0].read_text()  # no tensor values without opt-in


def test_values_only_with_opt_in(make_module, tmp_path):
    log = tmp_path / "log.jsonl"
    _run(make_module, log=str(log), log_values=True)
    violation = next(json.loads(line) for line in log.read_text().splitlines() if '"quantguard.violation"' in line)
    assert violation["values"]["first"] == pytest.approx(123.456, rel=1e-6)


def test_console_format(make_module, capsys):
    _run(make_module, log="stderr", log_format="console")
    err = capsys.readouterr().err
    assert "quantguard.violation" in err and not err.lstrip().startswith("{")


def test_routed_into_stdlib_logging(make_module, caplog):
    with caplog.at_level(logging.INFO, logger="quantguard"):
        _run(make_module, log="logging")
    records = [r for r in caplog.records if r.name == "quantguard"]
    violation = next(r for r in records if r.quantguard and r.quantguard["event"] == events.VIOLATION)
    assert violation.levelno == logging.ERROR and json.loads(violation.getMessage())["check"] == "test_values"


def test_non_finite_floats_are_strict_json(capsys):
    events.configure("stdout", "json")
    events.emit(events.SHADOW, "info", cosine=float("nan"), sqnr_db=float("inf"))
    line = json.loads(capsys.readouterr().out.strip())
    assert line["cosine"] == "NaN" and line["sqnr_db"] == "Infinity"


def test_capture_events_helper(make_module, tmp_path):
    with capture_events() as captured:
        _run(make_module, log=str(tmp_path / "x.jsonl"))
    assert captured.checks() == {"test_values"}
    assert captured.violations(target="qgt_ev.kernel", severity="error")
