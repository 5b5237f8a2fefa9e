"""``quantguard report`` on a terminal: text within 100 columns, nothing cut; ``-o -`` is the markdown."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from quantguard.cli._console import WIDTH
from quantguard.cli._markdown_text import terminal_text
from quantguard.cli.main import main
from quantguard.report import EXIT_FAIL


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> list[str]:
    directory = tmp_path_factory.mktemp("demo_logs")
    main(["demo", "--tokens", "2", "--only", "asm_gemm_garbage_gfx950", "--log-dir", str(directory)])
    return sorted(str(path) for path in Path(directory).glob("*.jsonl"))


def _report(logs, capsys, *options: str, csv: Path) -> tuple[int, str, str]:
    code = main(["report", *logs, "--csv", str(csv), *options])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_default_output_fits_100_columns_and_cuts_nothing(logs, capsys, tmp_path):
    code, text, _ = _report(logs, capsys, csv=tmp_path / "h.csv")
    _, markdown, _ = _report(logs, capsys, "-o", "-", csv=tmp_path / "h.csv")
    assert code == EXIT_FAIL and "Verdict: FAIL" in text
    assert max(len(line) for line in text.splitlines()) <= WIDTH
    assert text.count("…") == markdown.count("…")  # rich's own markdown view would cut cells with "…"
    assert "<br>" not in text and "**" not in text
    joined = "".join(text.split())  # folded cells come back whole once the layout is gone
    for target in ("aiter.ops.gemm_op_a8w8.gemm_a8w8_blockscale_bpreshuffle_asm", "asm_gemm_garbage_gfx950"):
        assert target in markdown and target in joined


def test_dash_o_dash_prints_the_markdown_and_wide_keeps_rows_whole(logs, capsys, tmp_path):
    _, markdown, _ = _report(logs, capsys, "-o", "-", csv=tmp_path / "h.csv")
    assert markdown.startswith("# quantguard report") and "\n| " in markdown
    _, wide, _ = _report(logs, capsys, "--wide", csv=tmp_path / "h.csv")
    assert max(len(line) for line in wide.splitlines()) > WIDTH
    assert any(
        line.startswith("aiter.ops.gemm_op_a8w8.gemm_a8w8_blockscale_bpreshuffle_asm ") for line in wide.splitlines()
    )


@pytest.mark.parametrize("quiet, shown", [(False, True), (True, False)])
def test_reading_logs_shows_progress_on_a_terminal_unless_quiet(logs, quiet, shown, monkeypatch, capsys, tmp_path):
    stderr = _Terminal()
    monkeypatch.setattr(sys, "stderr", stderr)
    _report(logs, capsys, *(["--quiet"] if quiet else []), csv=tmp_path / "h.csv")
    assert ("log(s)" in stderr.getvalue()) is shown  # the bar: "reading N log(s)"
    assert "━" not in capsys.readouterr().out


def test_markdown_becomes_plain_wrapped_text():
    markdown = "\n".join(
        [
            "## Section",
            "- **bold** item with `code` " + "word " * 30,
            "",
            "| name | note |",
            "|---|---:|",
            "| a\\|b | " + "long " * 40 + "|",
        ]
    )
    lines = terminal_text(markdown).splitlines()
    assert lines[0] == "## Section"
    assert lines[1].startswith("- bold item with code word") and lines[2].startswith("  word")
    assert max(len(line) for line in lines) <= WIDTH
    assert any(line.startswith("a|b ") for line in lines)  # an escaped pipe is a character, not a column
