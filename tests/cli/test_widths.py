"""Every command's terminal output fits 100 columns by default; ``--wide`` keeps rows whole."""

from __future__ import annotations

import io
import sys

import pytest

from quantguard.cli._console import WIDTH, table
from quantguard.cli.main import main

COMMANDS = {
    "demo": ["demo", "--tokens", "2", "--only", "fp8_copy_drops_scale", "--only", "jit_build_systemexit"],
    "info": ["info", "--sim", "--gfx", "gfx950", "--ck-free"],
    "validate quant": ["validate", "quant", "--sim", "--schemes", "fp8_blockscale", "--shapes", "16,256,512"],
    "validate ckfree": ["validate", "ckfree", "--sim", "--max-new-tokens", "4"],
}


def _longest(text: str) -> int:
    return max(len(line) for line in text.splitlines())


@pytest.mark.parametrize("name", COMMANDS)
def test_output_fits_100_columns(name, capsys):
    main(COMMANDS[name])
    out = capsys.readouterr().out
    assert out.strip()
    assert _longest(out) <= WIDTH, max(out.splitlines(), key=len)
    assert "\x1b[" not in out  # not a TTY: no colour or cursor codes


def test_wide_keeps_each_row_on_one_line(capsys):
    main(["info", "--sim", "--gfx", "gfx950", "--ck-free", "--wide"])
    out = capsys.readouterr().out
    assert _longest(out) > WIDTH
    assert any(line.startswith("pending") and line.endswith("not imported yet") for line in out.splitlines())


def test_table_wraps_long_cells_at_words_and_keeps_short_columns_whole():
    from quantguard.cli._console import render

    rows = [("fp8_blockscale", "PASS", "word " * 60)]
    text = render(table(("scheme", "verdict", "evidence"), rows))
    assert _longest(text) <= WIDTH
    lines = text.splitlines()
    assert lines[2].split()[:2] == ["fp8_blockscale", "PASS"]
    assert all(set(line.split()[-1]) <= set("word") for line in lines[2:])  # no word cut in two


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("quiet, tty, shown", [(False, True, True), (True, True, False), (False, False, False)])
def test_validate_quant_shows_progress_only_on_a_terminal_without_quiet(quiet, tty, shown, monkeypatch, capsys):
    stderr = _Terminal() if tty else io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    argv = ["validate", "quant", "--sim", "--schemes", "fp8_blockscale", "--shapes", "16,256,512"]
    assert main(argv + (["--quiet"] if quiet else [])) == 0
    assert ("quant" in stderr.getvalue()) is shown  # the bar's label, drawn on stderr
    assert "━" not in capsys.readouterr().out  # never on stdout


def test_validate_ckfree_shows_progress_on_a_terminal(monkeypatch, capsys):
    stderr = _Terminal()
    monkeypatch.setattr(sys, "stderr", stderr)
    main(["validate", "ckfree", "--sim", "--max-new-tokens", "4"])
    assert "ckfree" in stderr.getvalue() and "━" not in capsys.readouterr().out


def test_validate_accuracy_shows_progress_on_a_terminal(monkeypatch, tmp_path):
    stderr = _Terminal()
    monkeypatch.setattr(sys, "stderr", stderr)
    argv = ["validate", "accuracy", "--sim", "--configs", "int4", "--prompts", "2", "--max-new-tokens", "2"]
    assert main(argv + ["-o", str(tmp_path / "r.md")]) == 0
    assert "accuracy int4" in stderr.getvalue()
