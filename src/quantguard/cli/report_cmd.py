"""``quantguard report LOG [LOG ...]``: event logs in, a markdown verdict and a CI exit code out.

Reads JSON-lines event logs (one per rank or process; .gz accepted) one line
at a time, and writes a self-contained markdown report: PASS/FAIL per
configuration and target, per-layer cosines, violations by check, backends,
recommendations, blocked kernels, internal errors, run totals and input
problems.  Without -o the report is printed as text that fits 100 columns
(-v: unwrapped); -o - prints the markdown itself.  The layers x
configurations min-cosine data is always written as CSV; --png also draws it
(needs matplotlib).

exit codes:
  0  every configuration passed
  1  something failed: an error violation, a blocked kernel, a failed
     shadow check or an internal error
  2  usage error, or a log (or an output) could not be read (written)
  3  the logs hold no quantguard event at all
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from quantguard.cli._console import add_quiet_option, add_width_option, progress
from quantguard.cli._markdown_text import terminal_text
from quantguard.report import (
    EXIT_FAIL,
    EXIT_NO_EVENTS,
    EXIT_PASS,
    EXIT_USAGE,
    LogReadError,
    build_report,
    exit_code,
    render_markdown,
    write_heatmap_csv,
    write_heatmap_png,
)

__all__ = ["add_parser"]

_STDOUT_CSV = "quantguard-report.heatmap.csv"
#: ``-o -``: the markdown on stdout
_STDOUT = "-"


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report",
        help="turn event logs into a markdown verdict (exit code for CI)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("logs", nargs="+", metavar="LOG", help="JSON-lines event log (.gz accepted)")
    parser.add_argument(
        "-o",
        "--output",
        metavar="REPORT.md",
        help="write the markdown here ('-': the markdown on stdout); default: the report as text on stdout",
    )
    parser.add_argument(
        "--png",
        metavar="HEATMAP.png",
        help="also draw the layers x configurations min-cosine heatmap (needs matplotlib)",
    )
    parser.add_argument(
        "--csv",
        metavar="HEATMAP.csv",
        help=f"heatmap data (default: <REPORT>.heatmap.csv next to -o, else ./{_STDOUT_CSV})",
    )
    add_width_option(parser)
    add_quiet_option(parser)
    parser.set_defaults(handler=_run)


def _csv_path(args: argparse.Namespace) -> Path:
    if args.csv:
        return Path(args.csv)
    if args.output and args.output != _STDOUT:
        output = Path(args.output)
        return output.with_name(f"{output.stem}.heatmap.csv")
    return Path(_STDOUT_CSV)


def _note(message: str) -> None:
    print(f"quantguard report: {message}", file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    try:
        report = _read(args.logs, args.quiet)
    except LogReadError as exc:
        _note(str(exc))
        return EXIT_USAGE
    markdown = render_markdown(report)
    csv_path = _csv_path(args)
    to_file = bool(args.output) and args.output != _STDOUT
    try:
        if to_file:
            Path(args.output).write_text(markdown, encoding="utf-8")
        else:
            sys.stdout.write(markdown if args.output == _STDOUT else terminal_text(markdown, args.wide))
        write_heatmap_csv(report, csv_path)
    except OSError as exc:
        _note(f"cannot write {exc.filename or 'the report'}: {exc.strerror or exc}")
        return EXIT_USAGE
    _note(f"heatmap data written to {csv_path}")
    if args.png:
        try:
            if write_heatmap_png(report, args.png):
                _note(f"heatmap written to {args.png}")
            else:
                _note("no shadow results: heatmap not drawn")
        except ImportError as exc:
            _note(f"{exc}; heatmap not drawn (the markdown and CSV were written)")
        except OSError as exc:
            _note(f"cannot write {args.png}: {exc.strerror or exc}")
            return EXIT_USAGE
    code = exit_code(report)
    for stats in report.files:
        if stats.truncated:
            _note(f"{stats.path} is truncated: {stats.truncated}")
    verdict = {
        EXIT_PASS: "PASS",
        EXIT_FAIL: "FAIL",
        EXIT_NO_EVENTS: "no quantguard events",
        EXIT_USAGE: "INCOMPLETE (a log was cut short; it cannot pass)",
    }[code]
    _note(f"{verdict}, exit code {code}" + (f"; report in {args.output}" if to_file else ""))
    return code


def _read(logs: list[str], quiet: bool) -> Any:
    """The report, with a progress bar over the logs' sizes on a terminal (gigabytes of rank logs take minutes)."""
    sizes = []
    for log in logs:
        try:
            sizes.append(os.path.getsize(log))
        except OSError:
            sizes.append(0)  # build_report names the missing file
    with progress(sum(sizes), f"reading {len(logs)} log(s)", quiet) as bar:
        return build_report(logs, on_progress=bar.advance)
