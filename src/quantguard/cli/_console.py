"""Terminal output for every command: one ``rich`` console, 100 columns unless asked wider.

Why a shared helper: each command used to pad its own plain-text tables to the
widest cell, which gave 170-320 column rows.  Here tables wrap their cells
instead; ``--wide`` turns wrapping off (full detail, one row per line).  Not on
a TTY (pipes, CI logs, tests) the width is fixed at 100 and rich writes no
colour or control codes, so captured output is plain text.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import IO, Any, TypeVar

T = TypeVar("T")

__all__ = [
    "WIDTH",
    "WIDE",
    "width_of",
    "add_width_option",
    "add_quiet_option",
    "make_console",
    "table",
    "render",
    "indented",
    "progress",
]

#: The default width of everything a command prints.
WIDTH = 100
#: Columns this narrow keep their width; rich would otherwise shrink them along with the long ones.
_NARROW = 10
#: ``--wide``: wide enough that no cell is wrapped or cut.
WIDE = 1000


def add_width_option(parser: argparse.ArgumentParser) -> None:
    """``-v``/``--wide``: full cells, one row per line, however wide that gets."""
    parser.add_argument(
        "-v", "--wide", action="store_true", help=f"full detail: do not wrap or abbreviate to {WIDTH} columns"
    )


def width_of(stream: IO[str], wide: bool) -> int:
    """The columns a command writes to ``stream``: :data:`WIDTH`, less on a narrower terminal, ``WIDE`` with ``wide``."""
    if wide:
        return WIDE
    if stream.isatty():
        return min(WIDTH, shutil.get_terminal_size((WIDTH, 24)).columns)
    return WIDTH


def make_console(wide: bool = False, stream: IO[str] | None = None) -> Any:
    """A rich Console on ``stream`` (default: the current ``sys.stdout``); no markup or highlighting.

    Markup is off because cells hold user text (kernel names with ``[...]``).
    """
    from rich.console import Console

    stream = sys.stdout if stream is None else stream
    return Console(
        file=stream,
        width=width_of(stream, wide),
        markup=False,
        highlight=False,
        emoji=False,
        soft_wrap=wide,
    )


def table(
    header: Sequence[str],
    rows: Sequence[Sequence[Any]],
    wide: bool = False,
    min_widths: dict[int, int] | None = None,
    gap: int = 2,
) -> Any:
    """A compact rich Table: a rule under the header, no box, cells wrap (``--wide``: never wrap).

    ``min_widths`` (column index → columns) keeps names from being folded mid-word; such a
    column gets a fixed width (rich crops other cells when a ``min_width`` overcommits the line).
    Columns no wider than ``_NARROW`` (numbers, verdicts) are never wrapped: only long text is.
    """
    from rich import box
    from rich.table import Table

    body = [[str(cell) for cell in row] for row in rows]
    # SIMPLE_HEAD separates columns by one blank: the padding adds the rest of the gap.
    result = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, gap - 1, 0, 0))
    for index, title in enumerate(header):
        longest = max([len(title)] + [len(row[index]) for row in body])
        width = None if wide else (min_widths or {}).get(index, _NARROW if longest <= _NARROW else None)
        if width is not None:
            width = min(width, longest)
        result.add_column(title, overflow="fold", no_wrap=wide, width=width)
    for row in body:
        result.add_row(*row)
    return result


def indented(lines: Iterable[str], wide: bool = False, indent: str = "    ") -> str:
    """Lines wrapped to the command width, continuations indented under their line (``wide``: unwrapped)."""
    import textwrap

    width = width_of(sys.stdout, wide)
    out = []
    for line in lines:
        if wide or len(line) <= width:
            out.append(line)
            continue
        lead = line[: len(line) - len(line.lstrip())]
        out += textwrap.wrap(line, width, subsequent_indent=lead + indent, break_on_hyphens=False)
    return "\n".join(out) + "\n"


def render(renderable: Any, wide: bool = False) -> str:
    """``renderable`` as plain text at the command width (for functions that return text)."""
    import io

    buffer = io.StringIO()
    console = make_console(wide, buffer)
    console.width = width_of(sys.stdout, wide)  # the terminal's width, not the buffer's
    console.print(renderable)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()) + "\n"


def add_quiet_option(parser: argparse.ArgumentParser) -> None:
    """``-q``/``--quiet``: no progress bar (there is none anyway when stderr is not a TTY)."""
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar on stderr")


class _NoProgress:
    """What :func:`progress` returns when no bar is shown: advancing costs nothing."""

    def advance(self, steps: int = 1, description: str | None = None) -> None:
        pass

    def track(self, items: Iterable[T], describe: Callable[[T], str]) -> Iterator[T]:
        """``items``, advancing the bar once each one's loop body is done (``continue`` included)."""
        for item in items:
            self.advance(0, describe(item))
            yield item
            self.advance()


class _Progress(_NoProgress):
    def __init__(self, bar: Any, task: Any) -> None:
        self._bar, self._task = bar, task

    def advance(self, steps: int = 1, description: str | None = None) -> None:
        fields = {} if description is None else {"description": description}
        self._bar.update(self._task, advance=steps, **fields)


@contextlib.contextmanager
def progress(total: int, description: str, quiet: bool = False) -> Iterator[_NoProgress | _Progress]:
    """A transient progress bar on stderr for a long validation, shown only on a TTY and without ``quiet``.

    On stderr so stdout (the summary a CI job keeps) stays clean; transient so the finished bar
    leaves nothing behind.
    """
    stream = sys.stderr
    if quiet or not stream.isatty() or total <= 0:
        yield _NoProgress()
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(file=stream, width=width_of(stream, False))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        yield _Progress(bar, bar.add_task(description, total=total))
