"""Folds a stream of events, one at a time, into a :class:`~quantguard.report.records.Report`.

Two facts of the event schema shape this module:

* Events belong to a *stream*: one process (``pid``) writing to one file.
  The stream's configuration is set by its last ``quantguard.enabled``
  event; a process first seen after its file's ``enabled`` (a forked
  worker) inherits the file's latest configuration.
* ``count`` on violation and blocked events is cumulative per (target,
  check, callsite[, variant]) within one enable of one process, and rate limiting
  drops events in between (``details.repeat`` flushes the rest at
  ``disable()``).  So occurrences are counted as the growth of ``count``
  per key, never as lines: the total of a key is its largest ``count``,
  and a flush adds exactly the occurrences it folded.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantguard import events as names
from quantguard.report._fields import as_float, as_int, as_mapping, as_strings, as_text, sum_ints
from quantguard.report.configurations import configuration_name, platform_description, unlabeled_name
from quantguard.report.distribution import DEFAULT_TAIL_SIZE, CosineDistribution
from quantguard.report.reader import FileStats, LogReadError, read_events
from quantguard.report.recommendations import hints_of, producer_of
from quantguard.report.records import (
    BackendStats,
    BlockedKernel,
    CheckStats,
    Configuration,
    CoverageNote,
    FirstSeen,
    InternalError,
    LayerStats,
    Report,
    RunTotals,
)
from quantguard.report.verdict import shadow_failed

__all__ = ["Aggregator", "build_report", "display_names"]

_BLOCKED_CHECK = "blocked"  # the rate limiter's key for blocks; a flush of them is a violation event
_UNKNOWN = "n/a"
_KERNELS_SHOWN = 8


@dataclass
class _Stream:
    configuration: str
    scope: int


@dataclass
class _Key:
    """Where one (scope, target, check, callsite) stands: the count seen so far and what it is."""

    last_count: int = 0
    severity: str | None = None
    backend: str | None = None
    blocked: BlockedKernel | None = None


class Aggregator:
    """Feed it events (:meth:`add`) or whole files (:meth:`add_file`); read :attr:`report` at the end.

    ``tail_size`` bounds the cosines kept per layer for p1 (see
    :mod:`quantguard.report.distribution`).
    """

    def __init__(self, tail_size: int = DEFAULT_TAIL_SIZE) -> None:
        self.tail_size = tail_size
        self.report = Report(tail_size=tail_size)
        self._streams: dict[tuple[str, int | None], _Stream] = {}
        self._file_configuration: dict[str, str] = {}
        self._keys: dict[tuple[int, str, str, str, str], _Key] = {}
        self._summaries: dict[int, tuple[str, RunTotals]] = {}
        self._scopes = 0

    # -- input ---------------------------------------------------------------------------
    def add_file(
        self, path: str | Path, name: str | None = None, on_progress: Callable[[int], None] | None = None
    ) -> FileStats:
        """Stream one log into the report under ``name`` (default: the file name)."""
        path = Path(path)
        stats = FileStats(str(path), name or path.name)
        self.report.files.append(stats)
        for event in read_events(path, stats, on_progress):
            self.add(event, stats.name)
        return stats

    def add(self, event: Mapping[str, Any], file_name: str) -> None:
        """Fold one event dict read from ``file_name``."""
        report = self.report
        report.events += 1
        timestamp = as_text(event.get("timestamp"))
        if timestamp:
            if report.first_timestamp is None or timestamp < report.first_timestamp:
                report.first_timestamp = timestamp
            if report.last_timestamp is None or timestamp > report.last_timestamp:
                report.last_timestamp = timestamp
        kind = as_text(event.get("event"))
        stream = self._enable(event, file_name) if kind == names.ENABLED else self._stream(event, file_name)
        configuration = report.configurations[stream.configuration]
        configuration.events += 1
        configuration.files.add(file_name)
        configuration.ranks.add(as_int(event.get("rank")))
        handler = self._HANDLERS.get(kind)
        if handler is not None:
            handler(self, event, stream, configuration)

    def footprint(self) -> dict[str, int]:
        """Sizes of everything the aggregator holds, to check that it grows with the program, not the log.

        ``cosines`` is the number of cosine values kept for p1 (each layer at
        most ``tail_size``); the others count entries of the collections.
        """
        report = self.report
        return {
            "cosines": sum(layer.cosines.retained for layer in report.layers.values()),
            "layers": len(report.layers),
            "count_keys": len(self._keys),
            "streams": len(self._streams),
            "summaries": len(self._summaries),
            "configurations": len(report.configurations),
            "checks": len(report.checks),
            "backends": len(report.backends),
            "blocked": len(report.blocked),
            "internal_errors": len(report.internal_errors),
            "coverage": len(report.coverage),
        }

    def finish(self) -> Report:
        """Sum the last summary of each process into its configuration; returns the report."""
        for configuration in self.report.configurations.values():
            configuration.run_totals = RunTotals()
        for owner, totals in self._summaries.values():
            self.report.configurations[owner].run_totals.merge(totals)
        return self.report

    # -- streams and configurations ------------------------------------------------------
    def _configuration(self, name: str, labeled: bool, platform: str) -> Configuration:
        configuration = self.report.configurations.get(name)
        if configuration is None:
            configuration = self.report.configurations[name] = Configuration(name, labeled, platform)
        return configuration

    def _new_scope(self) -> int:
        self._scopes += 1
        return self._scopes

    def _enable(self, event: Mapping[str, Any], file_name: str) -> _Stream:
        name, labeled = configuration_name(event, file_name)
        self._configuration(name, labeled, platform_description(event))
        self._file_configuration[file_name] = name
        key = (file_name, as_int(event.get("pid")))
        stream = self._streams.get(key)
        if stream is None or event.get("reconfigured") is not True:
            # a fresh enable resets quantguard's counters; a reconfiguration keeps them
            stream = self._streams[key] = _Stream(name, self._new_scope())
        stream.configuration = name
        return stream

    def _stream(self, event: Mapping[str, Any], file_name: str) -> _Stream:
        key = (file_name, as_int(event.get("pid")))
        stream = self._streams.get(key)
        if stream is None:
            name = self._file_configuration.get(file_name)
            if name is None:
                name = unlabeled_name(file_name)
                self._configuration(name, False, "unknown")
            stream = self._streams[key] = _Stream(name, self._new_scope())
        return stream

    def _delta(
        self, stream: _Stream, target: str, check: str, callsite: str, event: Mapping[str, Any]
    ) -> tuple[_Key, int]:
        """The occurrences an event adds to its key: the growth of the cumulative ``count``.

        The engine keeps one counter per finding ``variant`` as well; events that
        carry a ``variant`` field are counted per variant.
        """
        variant = as_text(event.get("variant"))
        key = self._keys.setdefault((stream.scope, target, check, callsite, variant), _Key())
        count = as_int(event.get("count"))
        if count is None:
            return key, 1
        delta = max(count - key.last_count, 0)
        key.last_count = max(key.last_count, count)
        return key, delta

    # -- events --------------------------------------------------------------------------
    def _on_patched(self, event: Mapping[str, Any], stream: _Stream, configuration: Configuration) -> None:
        target = as_text(event.get("target"))
        if target:
            configuration.guarded.add(target)

    def _on_violation(self, event: Mapping[str, Any], stream: _Stream, configuration: Configuration) -> None:
        target = as_text(event.get("target"), _UNKNOWN)
        check = as_text(event.get("check"), "(no check)")
        callsite = as_text(event.get("callsite"), _UNKNOWN)
        repeat = as_mapping(event.get("details")).get("repeat") is True
        if check == _BLOCKED_CHECK:
            self._count_blocked(event, stream, configuration, target, callsite)
            return
        key, delta = self._delta(stream, target, check, callsite, event)
        if not repeat:
            key.severity = as_text(event.get("severity"), as_text(event.get("level"), "error"))
            key.backend = as_text(event.get("backend")) or key.backend
        severity = key.severity or as_text(event.get("severity"), "warning")
        backend = key.backend or _UNKNOWN

        stats = self.report.checks.get(check)
        if stats is None:
            stats = self.report.checks[check] = CheckStats(check)
        stats.total += delta
        stats.by_severity[severity] += delta
        stats.targets.add(target)
        stats.ranks.add(as_int(event.get("rank")))
        stats.configurations.add(configuration.name)
        stats.backends.add(backend)
        if not repeat:
            for hint in hints_of(check, event):
                stats.hints.setdefault(hint, set()).add(target)
            producer = producer_of(check, event)
            if producer:
                stats.producers.add(producer)
        first = FirstSeen(
            as_text(event.get("timestamp")), callsite, as_text(event.get("message")), target, configuration.name, repeat
        )
        if first.earlier_than(stats.first):
            stats.first = first

        outcome = configuration.outcome(target)
        if severity == "error":
            outcome.errors += delta
            configuration.failures[check] += delta
        else:
            outcome.warnings += delta
        backend_stats = self._backend(backend)
        backend_stats.violations += delta
        backend_stats.errors += delta if severity == "error" else 0

    def _on_blocked(self, event: Mapping[str, Any], stream: _Stream, configuration: Configuration) -> None:
        target = as_text(event.get("target"), _UNKNOWN)
        self._count_blocked(event, stream, configuration, target, as_text(event.get("callsite"), _UNKNOWN))

    def _count_blocked(
        self, event: Mapping[str, Any], stream: _Stream, configuration: Configuration, target: str, callsite: str
    ) -> None:
        key, delta = self._delta(stream, target, _BLOCKED_CHECK, callsite, event)
        if event.get("event") == names.BLOCKED or key.blocked is None:
            entry_point = as_text(event.get("entry_point"), target)
            action = as_text(event.get("action"), _UNKNOWN)
            reason = as_text(event.get("reason"), as_text(event.get("message")))
            group_key = (target, entry_point, action, reason)
            group = self.report.blocked.get(group_key)
            if group is None:
                group = self.report.blocked[group_key] = BlockedKernel(
                    target, entry_point, action, reason, as_text(event.get("rerouted_to")) or None, callsite
                )
            key.blocked = group
        key.blocked.count += delta
        key.blocked.configurations.add(configuration.name)
        key.blocked.ranks.add(as_int(event.get("rank")))
        configuration.outcome(target).blocked += delta
        configuration.failures[_BLOCKED_CHECK] += delta

    def _on_shadow(self, event: Mapping[str, Any], stream: _Stream, configuration: Configuration) -> None:
        target = as_text(event.get("target"), _UNKNOWN)
        layer_name = as_text(event.get("layer"), target)
        cosine = as_float(event.get("cosine"))
        failed = shadow_failed(event)
        layer = self.report.layers.get((configuration.name, layer_name))
        if layer is None:
            layer = LayerStats(CosineDistribution(self.tail_size))
            self.report.layers[(configuration.name, layer_name)] = layer
        layer.cosines.add(cosine, failed)
        if failed:
            layer.failing_targets.add(target)
            finite = cosine is not None and math.isfinite(cosine)
            if layer.threshold is None or (finite and (layer.worst_failed is None or cosine < layer.worst_failed)):
                layer.worst_failed = cosine if finite else layer.worst_failed
                layer.threshold = as_float(event.get("threshold"))
        self._backend(as_text(event.get("backend"), _UNKNOWN)).cosines.add(cosine, failed)
        outcome = configuration.outcome(target)
        outcome.shadow_samples += 1
        if failed:
            outcome.shadow_failed += 1
            configuration.failures["failed shadow"] += 1

    def _on_internal_error(self, event: Mapping[str, Any], stream: _Stream, configuration: Configuration) -> None:
        target = as_text(event.get("target"), _UNKNOWN)
        check = as_text(event.get("check"), _UNKNOWN)
        error = self.report.internal_errors.get((target, check))
        if error is None:
            error = self.report.internal_errors[(target, check)] = InternalError(
                target, check, as_text(event.get("error"), _UNKNOWN), as_text(event.get("traceback"))
            )
        error.events += 1
        error.configurations.add(configuration.name)
        error.ranks.add(as_int(event.get("rank")))
        configuration.outcome(target).internal_errors += 1
        configuration.failures["internal_error"] += 1

    def _on_summary(self, event: Mapping[str, Any], stream: _Stream, configuration: Configuration) -> None:
        shadow = as_mapping(event.get("shadow"))
        totals = RunTotals(
            processes=1,
            calls=sum_ints(event.get("calls"), 1),
            violations=as_int(event.get("violation_total")) or sum_ints(event.get("violations")),
            blocked=sum_ints(event.get("blocked"), 1),
            internal_errors=sum_ints(event.get("internal_errors")),
            shadow_samples=sum(as_int(as_mapping(s).get("samples")) or 0 for s in shadow.values()),
            shadow_failed=sum(as_int(as_mapping(s).get("failed")) or 0 for s in shadow.values()),
            shadow_dropped=as_int(event.get("shadow_dropped")) or 0,
            stale_references=as_int(event.get("stale_references")) or 0,
            uptime_s=as_float(event.get("uptime_s")) or 0.0,
        )
        # summaries are cumulative snapshots: the last one of a process's enable wins
        self._summaries[stream.scope] = (configuration.name, totals)

    def _on_coverage(self, event: Mapping[str, Any], stream: _Stream, configuration: Configuration) -> None:
        kind = as_text(event.get("event")).rpartition(".")[2]
        target = as_text(event.get("target"), _UNKNOWN)
        if kind == "target_missing":
            if event.get("level") != "warning":
                return  # a whole package not installed: nothing was expected to be guarded
            detail = as_text(event.get("reason"))
        elif kind == "target_mismatch":
            differences = as_strings(event.get("differences"))
            disabled = as_strings(event.get("disabled_checks"))
            detail = "; ".join(differences) + (f" (checks off: {', '.join(disabled)})" if disabled else "")
        elif kind == "config_warning":
            target = as_text(event.get("variable")) or as_text(event.get("option"), _UNKNOWN)
            detail = as_text(event.get("message"))
        elif kind == "stale_reference":
            if event.get("rebound") is True:
                return
            detail = f"{as_text(event.get('where'), _UNKNOWN)}: {as_text(event.get('reason'))}"
        else:
            kernels = as_strings(event.get("kernels"))
            target = "(ASM kernels no contract names)"
            shown = ", ".join(kernels[:_KERNELS_SHOWN]) + (
                f" and {len(kernels) - _KERNELS_SHOWN} more" if len(kernels) > _KERNELS_SHOWN else ""
            )
            detail = f"{shown}; policy: {event.get('policy')}"
        note = self.report.coverage.get((kind, target))
        if note is None:
            note = self.report.coverage[(kind, target)] = CoverageNote(kind, target, detail)
        note.configurations.add(configuration.name)

    def _backend(self, backend: str) -> BackendStats:
        stats = self.report.backends.get(backend)
        if stats is None:
            stats = self.report.backends[backend] = BackendStats()
        return stats

    _HANDLERS = {
        names.PATCHED: _on_patched,
        names.VIOLATION: _on_violation,
        names.BLOCKED: _on_blocked,
        names.SHADOW: _on_shadow,
        names.INTERNAL_ERROR: _on_internal_error,
        names.SUMMARY: _on_summary,
        names.TARGET_MISSING: _on_coverage,
        names.TARGET_MISMATCH: _on_coverage,
        names.STALE_REFERENCE: _on_coverage,
        names.UNCOVERED_KERNELS: _on_coverage,
        names.CONFIG_WARNING: _on_coverage,
    }


def display_names(paths: Iterable[str | Path]) -> list[str]:
    """How files are named in a report: the file name, or the path as given where names collide."""
    paths = [Path(path) for path in paths]
    basenames = Counter(path.name for path in paths)
    return [path.name if basenames[path.name] == 1 else str(path) for path in paths]


def build_report(
    paths: Iterable[str | Path],
    tail_size: int = DEFAULT_TAIL_SIZE,
    on_progress: Callable[[int], None] | None = None,
) -> Report:
    """Read every log (streaming) into one report.

    Every path is checked before any is read, so a missing rank log fails
    fast with :class:`~quantguard.report.reader.LogReadError`.
    ``on_progress`` receives the bytes read as reading goes (a progress bar
    over the files' sizes).
    """
    paths = [Path(path) for path in paths]
    for path in paths:
        if not path.is_file():
            raise LogReadError(f"cannot read {path}: {'not a file' if path.exists() else 'no such file'}")
    aggregator = Aggregator(tail_size)
    for path, name in zip(paths, display_names(paths)):
        aggregator.add_file(path, name, on_progress)
    return aggregator.finish()
