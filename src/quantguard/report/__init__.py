"""``quantguard report``: event logs in, a markdown verdict and a CI exit code out.

    from quantguard.report import build_report, render_markdown, exit_code
    report = build_report(["rank0.jsonl", "rank1.jsonl.gz"])
    print(render_markdown(report))
    sys.exit(exit_code(report))

Logs are streamed (one line at a time, bounded state), so a report over a
gigabyte of events needs no more memory than one over a megabyte.  The
modules: :mod:`~quantguard.report.reader` (lines to events),
:mod:`~quantguard.report.aggregate` (events to :class:`Report`),
:mod:`~quantguard.report.verdict` (pass/fail and exit codes),
:mod:`~quantguard.report.recommendations`, :mod:`~quantguard.report.markdown`
and :mod:`~quantguard.report.heatmap` (outputs).
"""

from __future__ import annotations

from quantguard.report.aggregate import Aggregator, build_report
from quantguard.report.distribution import CosineDistribution
from quantguard.report.heatmap import heatmap_matrix, write_heatmap_csv, write_heatmap_png
from quantguard.report.markdown import render_markdown
from quantguard.report.reader import FileStats, LogReadError, read_events
from quantguard.report.recommendations import Recommendation, recommend
from quantguard.report.records import Report
from quantguard.report.verdict import EXIT_FAIL, EXIT_NO_EVENTS, EXIT_PASS, EXIT_USAGE, exit_code

__all__ = [
    "build_report",
    "render_markdown",
    "exit_code",
    "read_events",
    "Aggregator",
    "Report",
    "FileStats",
    "LogReadError",
    "CosineDistribution",
    "heatmap_matrix",
    "write_heatmap_csv",
    "write_heatmap_png",
    "Recommendation",
    "recommend",
    "EXIT_PASS",
    "EXIT_FAIL",
    "EXIT_USAGE",
    "EXIT_NO_EVENTS",
]
