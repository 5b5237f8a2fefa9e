"""A markdown report as terminal text that fits the command width.

Why not print the markdown: its tables are one line per row (up to 200
columns in ``quantguard report``), and rich's own markdown renderer cuts
table cells with an ellipsis, which loses the very names a reader needs.
Here tables go through :func:`quantguard.cli._console.table` (cells wrap,
nothing is cut), inline markup is dropped, and prose wraps at word
boundaries with list continuations indented under their item.
"""

from __future__ import annotations

import re
import sys
import textwrap

from quantguard.cli._console import render, table, width_of

__all__ = ["terminal_text"]

_CELL_SPLIT = re.compile(r"(?<!\\)\|")
_SEPARATOR = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_CODE = re.compile(r"`([^`]*)`")
_ITEM = re.compile(r"^(\s*(?:[-*]|\d+\.)\s+)")


def _plain(text: str) -> str:
    """Inline markdown as plain text: ``**x**`` and `` `x` `` lose their marks, ``\\|`` becomes ``|``."""
    return _CODE.sub(r"\1", _BOLD.sub(r"\1", text)).replace("\\|", "|")


def _cells(line: str) -> list[str]:
    inner = line.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") and not inner.endswith("\\|") else inner
    return [_plain(cell.strip()) for cell in _CELL_SPLIT.split(inner)]


def _table_text(lines: list[str], wide: bool) -> str:
    header = _cells(lines[0])
    rows = [_cells(line) for line in lines[1:] if not _SEPARATOR.match(line)]
    rows = [(row + [""] * len(header))[: len(header)] for row in rows]
    return render(table(header, rows, wide=wide), wide)


def _wrapped(line: str, width: int) -> str:
    """Prose wrapped at words; a list item's continuation lines start under its text."""
    if len(line) <= width:
        return line
    item = _ITEM.match(line)
    hang = " " * len(item.group(1)) if item else line[: len(line) - len(line.lstrip())]
    return "\n".join(textwrap.wrap(line, width, subsequent_indent=hang, break_on_hyphens=False))


def terminal_text(markdown: str, wide: bool = False) -> str:
    """``markdown`` (as ``quantguard.report`` writes it) as plain text within the command width."""
    out: list[str] = []
    width = width_of(sys.stdout, wide)
    lines = markdown.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.lstrip().startswith("|"):
            block = []
            while index < len(lines) and lines[index].lstrip().startswith("|"):
                block.append(lines[index])
                index += 1
            out.append(_table_text(block, wide).rstrip("\n"))
            continue
        out.append(_wrapped(_plain(line), width))
        index += 1
    return "\n".join(out) + "\n"
