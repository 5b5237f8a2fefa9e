"""``quantguard report``: outputs, the CSV next to the report, --png without matplotlib, exit codes."""

from __future__ import annotations

import json
import sys

import pytest

from quantguard.cli.main import main
from quantguard.report import EXIT_FAIL, EXIT_NO_EVENTS, EXIT_PASS, EXIT_USAGE


@pytest.mark.parametrize("log, code", [("clean", EXIT_PASS), ("faulty", EXIT_FAIL)])
def test_exit_codes_of_simulated_runs(sim_logs, tmp_path, log, code):
    assert main(["report", str(sim_logs[log]), "-o", str(tmp_path / "report.md")]) == code


@pytest.mark.parametrize(
    "make",
    [
        lambda d: d / "missing.jsonl",
        lambda d: d,
        lambda d: (d / "x.jsonl.gz").write_text("{}") and d / "x.jsonl.gz",
    ],
)
def test_unreadable_logs_exit_2_and_write_nothing(sim_logs, tmp_path, capsys, make):
    output = tmp_path / "report.md"
    assert main(["report", str(sim_logs["clean"]), str(make(tmp_path)), "-o", str(output)]) == EXIT_USAGE
    assert "quantguard report: cannot" in capsys.readouterr().err
    assert not output.exists()


def test_usage_errors_exit_2():
    with pytest.raises(SystemExit) as exit_info:
        main(["report"])
    assert exit_info.value.code == EXIT_USAGE


def test_an_unwritable_output_exits_2(sim_logs, tmp_path):
    assert main(["report", str(sim_logs["clean"]), "-o", str(tmp_path)]) == EXIT_USAGE


def test_a_log_without_events_exits_3(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    assert main(["report", str(empty), "-o", str(tmp_path / "r.md")]) == EXIT_NO_EVENTS


def test_markdown_to_stdout_and_csv_in_the_working_directory(sim_logs, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["report", str(sim_logs["faulty"])]) == EXIT_FAIL
    captured = capsys.readouterr()
    assert captured.out.startswith("# quantguard report")
    assert "heatmap data written to quantguard-report.heatmap.csv" in captured.err
    assert (tmp_path / "quantguard-report.heatmap.csv").read_text().startswith("layer,faulty\n")


def test_output_file_with_csv_next_to_it(sim_logs, tmp_path, capsys):
    output = tmp_path / "out" / "report.md"
    output.parent.mkdir()
    assert main(["report", str(sim_logs["faulty"]), str(sim_logs["clean"]), "-o", str(output)]) == EXIT_FAIL
    assert capsys.readouterr().out == ""
    assert output.read_text().startswith("# quantguard report")
    rows = (tmp_path / "out" / "report.heatmap.csv").read_text().splitlines()
    assert rows[0] == "layer,faulty,clean"
    assert any(row.startswith("layers.0.mlp.experts,0.") for row in rows)


def test_png_without_matplotlib_still_writes_the_report(sim_logs, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    output = tmp_path / "report.md"
    code = main(["report", str(sim_logs["clean"]), "-o", str(output), "--png", str(tmp_path / "h.png")])
    assert code == EXIT_PASS
    assert "needs matplotlib (pip install 'quantguard[plot]'); heatmap not drawn" in capsys.readouterr().err
    assert output.exists() and (tmp_path / "report.heatmap.csv").exists()
    assert not (tmp_path / "h.png").exists()


@pytest.mark.parametrize("cut", ["partial last line", "intact"])
def test_a_log_cut_mid_line_cannot_pass(sim_logs, tmp_path, capsys, cut):
    """A full disk or a killed writer leaves a partial last line: the report says so and exits 2."""
    log = tmp_path / "cut.jsonl"
    content = sim_logs["clean"].read_bytes()
    log.write_bytes(content + b'{"event":"quantguard.viol' if cut == "partial last line" else content)
    code = main(["report", str(log), "-o", str(tmp_path / "r.md")])
    err = capsys.readouterr().err
    if cut == "intact":
        assert code == EXIT_PASS and "truncated" not in err
        return
    assert code == EXIT_USAGE
    assert "truncated: ends in a partial line" in err and "INCOMPLETE" in err
    assert "Verdict: INCOMPLETE" in (tmp_path / "r.md").read_text()


def test_config_warnings_appear_as_coverage_notes(tmp_path):
    log = tmp_path / "warned.jsonl"
    lines = [
        {"event": "quantguard.enabled", "level": "info", "pid": 1, "config": {}, "platform": {}},
        {
            "event": "quantguard.config_warning",
            "level": "warning",
            "pid": 1,
            "option": "targets",
            "variable": "QUANTGUARD_TARGETS",
            "value": "aiter.gemm_CKK",
            "message": "targets glob 'aiter.gemm_CKK' matches no contract target, so it guards nothing",
        },
    ]
    log.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert main(["report", str(log), "-o", str(tmp_path / "r.md")]) == EXIT_PASS
    text = (tmp_path / "r.md").read_text()
    assert "| config_warning | `QUANTGUARD_TARGETS` |" in text and "guards nothing" in text
