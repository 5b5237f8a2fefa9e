"""Renders a :class:`~quantguard.report.records.Report` as one self-contained markdown page.

The page is ordered for a reader with a minute: the verdict first, then
what failed where, then why (cosines, violations, backends), then what to
change, then the evidence tables.  Every table cell is escaped, so a
message with ``|`` or a newline cannot break the layout.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from quantguard._tables import markdown_table
from quantguard.report._ordering import natural_key
from quantguard.report.reader import MALFORMED_REASONS
from quantguard.report.recommendations import recommend
from quantguard.report.records import CheckStats, Configuration, Rank, Report, TargetOutcome
from quantguard.report.verdict import exit_code

__all__ = ["render_markdown"]

_NAMES_SHOWN = 4
_FAILING_SHOWN = 10
_MESSAGE_CHARS = 300
#: No line of the report is longer (tables shorten their longest cells, prose wraps, wide tables split).
_MAX_LINE = 200
#: A cell is never shortened below this.
_MIN_CELL = 24
_NOT_SEEN = "·"


# -- cell formatting ---------------------------------------------------------------------
def _cell(value: Any) -> str:
    text = str(value).replace("\r", " ").replace("\n", " ")  # markdown_table escapes "|"
    return text if len(text) <= _MESSAGE_CHARS else text[: _MESSAGE_CHARS - 1] + "…"


def _code(name: str) -> str:
    return f"`{name}`" if name else ""


def _cosine(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.6f}"


def _names(names: Iterable[str], code: bool = True) -> str:
    ordered = sorted(set(names))
    shown = ", ".join(_code(name) if code else name for name in ordered[:_NAMES_SHOWN])
    rest = len(ordered) - _NAMES_SHOWN
    return f"{shown} +{rest} more" if rest > 0 else shown


def _ranks(ranks: Iterable[Rank]) -> str:
    """``0-3, 5, n/a``: consecutive ranks as ranges, null ranks (no torch.distributed) as n/a."""
    numbers = sorted(rank for rank in set(ranks) if rank is not None)
    parts: list[str] = []
    start = previous = None
    for rank in numbers + [None]:
        if start is not None and (rank is None or rank != previous + 1):
            parts.append(str(start) if start == previous else f"{start}-{previous}")
            start = None
        if rank is not None and start is None:
            start = rank
        previous = rank
    if None in set(ranks):
        parts.append("n/a")
    return ", ".join(parts) or "n/a"


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    return markdown_table(headers, [_fit([_cell(value) for value in row]) for row in rows])


def _shorten(text: str, width: int) -> str:
    """``text`` cut at a word boundary to at most ``width`` characters, marked with "…"."""
    if len(text) <= width:
        return text
    cut = text[: width - 1]
    if " " in cut[width // 2 :]:
        cut = cut.rsplit(" ", 1)[0]
    if cut.count("`") % 2:  # close the code span it cut
        cut = cut[:-1] + "`"
    return cut + "…"


def _fit(cells: list[str]) -> list[str]:
    """A table row's cells, the longest shortened until the row fits :data:`_MAX_LINE` (or cannot shrink)."""
    while True:
        length = sum(len(cell) + 3 for cell in cells) + 1
        longest = max(range(len(cells)), key=lambda index: len(cells[index]), default=None)
        if length <= _MAX_LINE or longest is None or len(cells[longest]) <= _MIN_CELL:
            return cells
        target = max(_MIN_CELL, len(cells[longest]) - (length - _MAX_LINE))
        shorter = _shorten(cells[longest], target)
        if len(shorter) >= len(cells[longest]):
            return cells
        cells[longest] = shorter


def _column_groups(headers: Sequence[str], rows: Sequence[Sequence[str]], keep: int = 1) -> list[list[int]]:
    """Indices of the columns after the first ``keep``, grouped so that each table's lines fit :data:`_MAX_LINE`."""
    width = [max([len(headers[i])] + [len(row[i]) for row in rows]) + 3 for i in range(len(headers))]
    fixed = sum(width[:keep]) + 1
    groups: list[list[int]] = [[]]
    for index in range(keep, len(headers)):
        if groups[-1] and fixed + sum(width[i] for i in groups[-1]) + width[index] > _MAX_LINE:
            groups.append([])
        groups[-1].append(index)
    return groups


def _wrap_prose(lines: list[str]) -> list[str]:
    """Paragraphs and list items over :data:`_MAX_LINE` wrapped (markdown renders them the same)."""
    import re
    import textwrap

    out, fenced = [], False
    for line in lines:
        if line.startswith("```"):
            fenced = not fenced
        if fenced or len(line) <= _MAX_LINE or line.startswith(("|", "#")):
            out.append(line)
            continue
        marker = re.match(r"\s*(?:[-*] |\d+\. )?", line)
        indent = " " * (marker.end() if marker else 0)
        out += textwrap.wrap(line, width=120, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False)
    return out


def _fenced(text: str) -> list[str]:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + "text", text.rstrip("\n"), fence]


def _verdict(failing: bool) -> str:
    return "**FAIL**" if failing else "PASS"


def _target_cell(outcome: TargetOutcome | None) -> str:
    if outcome is None:
        return _NOT_SEEN
    if outcome.failing:
        return "**FAIL**"
    return "PASS (warn)" if outcome.warnings else "PASS"


# -- sections ----------------------------------------------------------------------------
def _header(report: Report) -> list[str]:
    code = exit_code(report)
    configurations = list(report.configurations.values())
    failing = [configuration for configuration in configurations if configuration.failing]
    totals = TargetOutcome()
    for configuration in configurations:
        totals.merge(configuration.totals)
    if not report.events:
        verdict = f"**Verdict: NO EVENTS** · exit code {code} · the logs hold no quantguard event"
    else:
        word = "FAIL" if report.failing else ("INCOMPLETE" if any(s.truncated for s in report.files) else "PASS")
        verdict = (
            f"**Verdict: {word}** · exit code {code} · {len(failing)} of {len(configurations)} configuration(s) fail"
        )
        if word == "INCOMPLETE":
            verdict += " · a log was cut short, so the run cannot pass"
    lines = ["# quantguard report", "", verdict, ""]
    span = f", {report.first_timestamp} to {report.last_timestamp}" if report.first_timestamp else ""
    lines.append(f"Read {report.events} event(s) from {len(report.files)} file(s){span}.")
    lines.append(
        f"Error violations: {totals.errors} · blocked kernels: {totals.blocked} · "
        f"failed shadow checks: {totals.shadow_failed} · internal errors: {totals.internal_errors} · "
        f"warnings: {totals.warnings}."
    )
    problems = []
    if report.malformed_lines:
        problems.append(f"{report.malformed_lines} malformed line(s)")
    truncated = [stats.name for stats in report.files if stats.truncated]
    if truncated:
        problems.append(f"truncated: {', '.join(truncated)}")
    if problems:
        lines.append(f"Input problems: {'; '.join(problems)} (see [Input files](#input-files)).")
    if failing:
        lines += ["", "What failed:", ""]
        for configuration in failing[:_FAILING_SHOWN]:
            kinds = ", ".join(f"{kind} {count}" for kind, count in configuration.failures.most_common() if count)
            lines.append(f"- **{configuration.name}**: {kinds}")
        if len(failing) > _FAILING_SHOWN:
            lines.append(f"- and {len(failing) - _FAILING_SHOWN} more (see the summary)")
    return lines + [""]


def _summary(report: Report) -> list[str]:
    lines = ["## 1. Summary", "", "### Configurations", ""]
    rows = []
    for configuration in report.configurations.values():
        totals = configuration.totals
        rows.append(
            (
                configuration.name,
                _verdict(configuration.failing),
                configuration.platform,
                _names(configuration.files, code=False),
                _ranks(configuration.ranks),
                len(configuration.guarded),
                totals.errors,
                totals.warnings,
                totals.blocked,
                f"{totals.shadow_failed} / {totals.shadow_samples}",
                totals.internal_errors,
            )
        )
    lines += _table(
        (
            "configuration",
            "verdict",
            "platform at enable",
            "files",
            "ranks",
            "guarded targets",
            "error violations",
            "warnings",
            "blocked",
            "failed shadow / samples",
            "internal errors",
        ),
        rows,
    )
    if not all(configuration.labeled for configuration in report.configurations.values()):
        lines += [
            "",
            "Names without a label are derived from the platform at `enable()` and the file name; "
            "`QUANTGUARD_LABEL` names a run (and groups the files of its ranks).",
        ]
    lines += [
        "",
        "### Targets",
        "",
        f"Per target and configuration: **FAIL** (an error violation, a block, a failed shadow check or an "
        f"internal error), PASS (warn) (warnings only), PASS, or {_NOT_SEEN} (no event for the target there).",
        "",
    ]
    configurations = list(report.configurations.values())
    targets = sorted(
        {target for configuration in configurations for target in configuration.targets},
        key=lambda target: (not any(_failing(c, target) for c in configurations), target),
    )
    if not targets:
        return lines + ["No target reported a shadow result, violation, block or internal error.", ""]
    rows = [(_code(target), *(_target_cell(c.targets.get(target)) for c in configurations)) for target in targets]
    headers = ("target", *(c.name for c in configurations))
    # Many configurations: one table per group of them, each with the target column, none wider than a line.
    for number, group in enumerate(_column_groups(headers, [[_cell(v) for v in row] for row in rows])):
        lines += ([""] if number else []) + _table(
            [headers[0]] + [headers[i] for i in group], [[row[0]] + [row[i] for i in group] for row in rows]
        )
    return lines + [""]


def _failing(configuration: Configuration, target: str) -> bool:
    outcome = configuration.targets.get(target)
    return outcome is not None and outcome.failing


def _layers(report: Report) -> list[str]:
    lines = [
        "## 2. Per-layer cosine",
        "",
        "From `quantguard.shadow` events, per layer (the target where an event has no layer) and configuration. "
        "Samples are logged shadow results: quantguard logs the first per (target, layer), then one per rate-limit "
        "interval, and every failure. p1 is the nearest-rank 1st percentile, computed from the "
        f"{report.tail_size} smallest cosines kept per layer: exact up to {100 * report.tail_size:,} samples, "
        "beyond that shown as `≥ x`, a lower bound (the smallest values are kept, not a sample). A result is "
        "flagged when `passed` is false or its cosine is below its `threshold`.",
        "",
    ]
    if not report.layers:
        return lines + ["No shadow results in the logs.", ""]
    ordered = sorted(report.layers.items(), key=lambda item: (natural_key(item[0][1]), item[0][0]))
    flagged = [(key, stats) for key, stats in ordered if stats.flagged]
    lines += ["### Flagged layers", ""]
    # Without attach() an event's "layer" is its target: one column then, not the same path twice.
    unnamed = all(stats.failing_targets <= {layer} for (_, layer), stats in flagged)
    if flagged:
        rows = [
            (
                configuration,
                _code(layer),
                _names(stats.failing_targets),
                f"{stats.cosines.failed} / {stats.cosines.samples}",
                _cosine(stats.worst_failed),
                "n/a" if stats.threshold is None else f"{stats.threshold:g}",
            )
            for (configuration, layer), stats in flagged
        ]
        header = ("configuration", "layer", "failing targets", "failed / samples", "worst cosine", "threshold")
        if unnamed:
            header = ("configuration", "target (no layer names attached)") + header[3:]
            rows = [row[:2] + row[3:] for row in rows]
        lines += _table(header, rows)
    else:
        lines.append("None: every shadow comparison passed.")
    lines += ["", "### All layers", ""]
    rows = []
    for (configuration, layer), stats in ordered:
        cosines = stats.cosines
        p1 = _cosine(cosines.p1)
        rows.append(
            (
                _code(layer),
                configuration,
                cosines.samples,
                _cosine(cosines.min),
                _cosine(cosines.mean),
                p1 if cosines.p1_exact or cosines.p1 is None else f"≥ {p1}",
                cosines.failed,
            )
        )
    return lines + _table(("layer", "configuration", "samples", "min", "mean", "p1", "failed"), rows) + [""]


def _severities(stats: CheckStats) -> str:
    return ", ".join(f"{severity} {count}" for severity, count in sorted(stats.by_severity.items()) if count)


def _ordered_checks(report: Report) -> list[CheckStats]:
    return sorted(report.checks.values(), key=lambda stats: (-stats.errors, -stats.total, stats.check))


def _violations(report: Report) -> list[str]:
    lines = [
        "## 3. Violations by check",
        "",
        "Totals are occurrences, not log lines: per process, target, check and callsite the largest cumulative "
        "`count` (rate-limit flushes included), summed.",
        "",
    ]
    if not report.checks:
        return lines + ["No violations.", ""]
    rows = []
    for stats in _ordered_checks(report):
        first = stats.first
        rows.append(
            (
                _code(stats.check),
                stats.total,
                _severities(stats),
                _names(stats.targets),
                _ranks(stats.ranks),
                _names(stats.configurations, code=False),
                _code(first.callsite) if first else "",
                first.message if first else "",
            )
        )
    return (
        lines
        + _table(
            ("check", "total", "severities", "targets", "ranks", "configurations", "first callsite", "first message"),
            rows,
        )
        + [""]
    )


def _backends(report: Report) -> list[str]:
    lines = [
        "## 4. Backends",
        "",
        "By the `backend` field of shadow and violation events (a rate-limit flush counts under the backend of "
        "its first event).",
        "",
    ]
    if not report.backends:
        return lines + ["No shadow results or violations.", ""]
    rows = [
        (
            backend,
            stats.cosines.samples,
            _cosine(stats.cosines.min),
            _cosine(stats.cosines.mean),
            stats.cosines.failed,
            stats.violations,
            stats.errors,
        )
        for backend, stats in sorted(report.backends.items())
    ]
    return (
        lines
        + _table(
            (
                "backend",
                "shadow samples",
                "min cosine",
                "mean cosine",
                "failed shadow",
                "violations",
                "error violations",
            ),
            rows,
        )
        + [""]
    )


def _recommendations(report: Report) -> list[str]:
    lines = ["## 5. Recommendations", ""]
    entries = [
        (
            f"`{stats.check}`: {stats.total} occurrence(s) ({_severities(stats)})",
            recommend(stats.check, stats.targets, stats.producers, stats.hints),
        )
        for stats in _ordered_checks(report)
    ]
    if report.blocked:
        blocks = sum(kernel.count for kernel in report.blocked.values())
        entries.insert(
            0,
            (
                f"`blocked`: {blocks} block(s)",
                recommend("blocked", (kernel.target for kernel in report.blocked.values())),
            ),
        )
    if report.internal_errors:
        events = sum(error.events for error in report.internal_errors.values())
        entries.append(
            (
                f"`internal_error`: {events} event(s)",
                recommend("internal_error", (error.target for error in report.internal_errors.values())),
            )
        )
    if not entries:
        return lines + ["Nothing to change: no violations, blocks or internal errors.", ""]
    for title, recommendation in entries:
        lines += [f"### {title}", ""]
        for look, change in recommendation.items:
            lines += [f"- **Look at:** {look}", f"  **Change:** {change}"]
        lines.append("")
    return lines


def _blocked(report: Report) -> list[str]:
    lines = ["### Blocked kernels", ""]
    if not report.blocked:
        return lines + ["None.", ""]
    rows = [
        (
            _code(kernel.target),
            _code(kernel.entry_point),
            kernel.action,
            _code(kernel.rerouted_to or ""),
            kernel.count,
            _names(kernel.configurations, code=False),
            _ranks(kernel.ranks),
            kernel.reason,
            _code(kernel.callsite),
        )
        for kernel in sorted(report.blocked.values(), key=lambda kernel: (-kernel.count, kernel.target))
    ]
    return (
        lines
        + _table(
            (
                "kernel",
                "entry point",
                "action",
                "rerouted to",
                "count",
                "configurations",
                "ranks",
                "reason",
                "first callsite",
            ),
            rows,
        )
        + [""]
    )


def _internal_errors(report: Report) -> list[str]:
    lines = ["### Internal errors", ""]
    if not report.internal_errors:
        return lines + ["None.", ""]
    errors = sorted(report.internal_errors.values(), key=lambda error: (error.target, error.check))
    lines += _table(
        ("target", "check", "error", "events", "configurations", "ranks"),
        [
            (
                _code(error.target),
                _code(error.check),
                error.error,
                error.events,
                _names(error.configurations, code=False),
                _ranks(error.ranks),
            )
            for error in errors
        ],
    )
    lines += ["", "Attach these tracebacks to the bug report:", ""]
    for error in errors:
        lines += [f"<details><summary>{error.target} / {error.check}</summary>", ""]
        lines += _fenced(error.traceback or error.error) + ["", "</details>", ""]
    return lines


def _run_totals(report: Report) -> list[str]:
    lines = [
        "### Run totals (`quantguard.summary`)",
        "",
        "quantguard's own exact counters (last summary of each process, summed): they cover every inspected "
        "call, including those rate limiting kept out of the log.",
        "",
    ]
    configurations = [c for c in report.configurations.values() if c.run_totals.processes]
    if not configurations:
        return lines + ["No summary events (the processes may not have called `disable()` or exited cleanly).", ""]
    rows = []
    for configuration in configurations:
        totals, counted = configuration.run_totals, configuration.totals
        rows.append(
            (
                configuration.name,
                totals.processes,
                totals.calls,
                totals.violations,
                counted.errors + counted.warnings,
                totals.blocked,
                totals.internal_errors,
                totals.shadow_samples,
                totals.shadow_failed,
                totals.shadow_dropped,
                totals.stale_references,
                f"{totals.uptime_s:.1f}",
            )
        )
    lines += _table(
        (
            "configuration",
            "processes",
            "guarded calls",
            "violations",
            "violations in events",
            "blocked",
            "internal errors",
            "shadow samples",
            "shadow failed",
            "shadow dropped",
            "stale references",
            "uptime (s)",
        ),
        rows,
    )
    return lines + [
        "",
        "More violations than the events account for mean lost events (a truncated log, a process "
        "killed before its flush) or counters the events cannot tell apart (see docs/report.md).",
        "",
    ]


def _coverage(report: Report) -> list[str]:
    lines = [
        "### Coverage notes",
        "",
        "What quantguard could not guard as declared: drifted signatures (some checks off), functions missing "
        "from this AITER, references it could not rebind, ASM kernels no contract names, settings that cannot "
        "do what they say (config_warning).",
        "",
    ]
    if not report.coverage:
        return lines + ["None.", ""]
    notes = sorted(report.coverage.values(), key=lambda note: (note.kind, note.target))
    return (
        lines
        + _table(
            ("kind", "target", "detail", "configurations"),
            [(note.kind, _code(note.target), note.detail, _names(note.configurations, code=False)) for note in notes],
        )
        + [""]
    )


def _malformed(counts: dict[str, int], examples: dict[str, list[int]]) -> str:
    parts = []
    for reason in MALFORMED_REASONS:
        if counts.get(reason):
            lines = ", ".join(str(line) for line in examples.get(reason, []))
            parts.append(f"{reason} {counts[reason]} (line {lines})")
    return "; ".join(parts) or "0"


def _inputs(report: Report) -> list[str]:
    lines = ["### Input files", ""]
    rows = [
        (
            stats.name,
            stats.lines,
            stats.events,
            _malformed(stats.malformed, stats.examples),
            ", ".join(f"{name} {count}" for name, count in stats.unknown_events.most_common()) or "0",
            stats.truncated or "",
        )
        for stats in report.files
    ]
    return lines + _table(("file", "lines", "events", "malformed lines", "unknown events", "note"), rows) + [""]


def render_markdown(report: Report) -> str:
    """The whole report as markdown: verdict, six sections, evidence tables."""
    lines = _header(report)
    lines += _summary(report)
    lines += _layers(report)
    lines += _violations(report)
    lines += _backends(report)
    lines += _recommendations(report)
    lines += ["## 6. Blocked kernels, internal errors, run totals, inputs", ""]
    lines += _blocked(report)
    lines += _internal_errors(report)
    lines += _run_totals(report)
    lines += _coverage(report)
    lines += _inputs(report)
    return "\n".join(_wrap_prose(lines)).rstrip("\n") + "\n"
