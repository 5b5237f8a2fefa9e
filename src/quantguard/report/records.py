"""What a report knows after reading the logs: plain records, filled by the aggregator.

Every collection here is keyed by something the program's structure bounds
(configurations, targets, checks, layers, backends), never by log lines, so
a report over a 1 GB log holds as much as one over a 1 MB log of the same run.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from quantguard.report.distribution import DEFAULT_TAIL_SIZE, CosineDistribution
from quantguard.report.reader import FileStats

__all__ = [
    "TargetOutcome",
    "RunTotals",
    "Configuration",
    "FirstSeen",
    "CheckStats",
    "LayerStats",
    "BackendStats",
    "BlockedKernel",
    "InternalError",
    "CoverageNote",
    "Report",
    "Rank",
]

Rank = int | None


@dataclass
class TargetOutcome:
    """How one target fared in one configuration; counts are occurrences, not log lines."""

    errors: int = 0
    warnings: int = 0
    blocked: int = 0
    shadow_samples: int = 0
    shadow_failed: int = 0
    internal_errors: int = 0

    @property
    def failing(self) -> bool:
        """The CI rule: an error violation, a block, a failed shadow check or an internal error."""
        return bool(self.errors or self.blocked or self.shadow_failed or self.internal_errors)

    def merge(self, other: TargetOutcome) -> None:
        self.errors += other.errors
        self.warnings += other.warnings
        self.blocked += other.blocked
        self.shadow_samples += other.shadow_samples
        self.shadow_failed += other.shadow_failed
        self.internal_errors += other.internal_errors


@dataclass
class RunTotals:
    """The totals of ``quantguard.summary`` events (the last one of each process), summed."""

    processes: int = 0
    calls: int = 0
    violations: int = 0
    blocked: int = 0
    internal_errors: int = 0
    shadow_samples: int = 0
    shadow_failed: int = 0
    shadow_dropped: int = 0
    stale_references: int = 0
    uptime_s: float = 0.0

    def merge(self, other: RunTotals) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class Configuration:
    """One run label: a ``config.label``, or a name derived from platform and file.

    ``failures`` counts what made it fail by kind: a check of an error
    violation, ``blocked``, ``failed shadow`` or ``internal_error``.
    """

    name: str
    labeled: bool
    platform: str
    files: set[str] = field(default_factory=set)
    ranks: set[Rank] = field(default_factory=set)
    guarded: set[str] = field(default_factory=set)
    targets: dict[str, TargetOutcome] = field(default_factory=dict)
    run_totals: RunTotals = field(default_factory=RunTotals)
    failures: Counter = field(default_factory=Counter)
    events: int = 0

    def outcome(self, target: str) -> TargetOutcome:
        return self.targets.setdefault(target, TargetOutcome())

    @property
    def totals(self) -> TargetOutcome:
        total = TargetOutcome()
        for outcome in self.targets.values():
            total.merge(outcome)
        return total

    @property
    def failing(self) -> bool:
        return any(outcome.failing for outcome in self.targets.values())


@dataclass(frozen=True)
class FirstSeen:
    """The earliest event of a group; original events sort before rate-limit flushes."""

    timestamp: str
    callsite: str
    message: str
    target: str
    configuration: str
    repeat: bool = False

    def earlier_than(self, other: FirstSeen | None) -> bool:
        if other is None:
            return True
        return (self.repeat, self.timestamp or "~") < (other.repeat, other.timestamp or "~")


@dataclass
class CheckStats:
    """Every violation of one check: exact total (from cumulative ``count``) and where it was seen.

    ``producers`` and ``hints`` are what the recommendations name and choose
    by: the functions that wrote a mismatched scale; per hint (which metric
    of a numerics finding failed, ...) the targets it was seen on.
    """

    check: str
    total: int = 0
    by_severity: Counter = field(default_factory=Counter)
    targets: set[str] = field(default_factory=set)
    ranks: set[Rank] = field(default_factory=set)
    configurations: set[str] = field(default_factory=set)
    backends: set[str] = field(default_factory=set)
    producers: set[str] = field(default_factory=set)
    hints: dict[str, set[str]] = field(default_factory=dict)
    first: FirstSeen | None = None

    @property
    def errors(self) -> int:
        return self.by_severity["error"]


@dataclass
class LayerStats:
    """Shadow cosines of one layer (or target, when events carry no layer) in one configuration."""

    cosines: CosineDistribution = field(default_factory=CosineDistribution)
    failing_targets: set[str] = field(default_factory=set)
    worst_failed: float | None = None
    threshold: float | None = None

    @property
    def flagged(self) -> bool:
        return self.cosines.failed > 0


@dataclass
class BackendStats:
    """Shadow results and violation occurrences of one ``backend`` value."""

    cosines: CosineDistribution = field(default_factory=lambda: CosineDistribution(tail_size=1))
    violations: int = 0
    errors: int = 0


@dataclass
class BlockedKernel:
    """A kernel quantguard stopped (or rerouted), grouped across configurations and ranks."""

    target: str
    entry_point: str
    action: str
    reason: str
    rerouted_to: str | None = None
    callsite: str = ""
    count: int = 0
    configurations: set[str] = field(default_factory=set)
    ranks: set[Rank] = field(default_factory=set)


@dataclass
class InternalError:
    """A quantguard bug: logged once per (target, check) per process, with its traceback."""

    target: str
    check: str
    error: str
    traceback: str
    events: int = 0
    configurations: set[str] = field(default_factory=set)
    ranks: set[Rank] = field(default_factory=set)


@dataclass
class CoverageNote:
    """Something quantguard could not guard as declared (drifted signature, missing function, ...)."""

    kind: str
    target: str
    detail: str
    configurations: set[str] = field(default_factory=set)


@dataclass
class Report:
    """Everything a report shows, keyed by configuration, check, layer and backend.

    ``tail_size`` is how many of the smallest cosines each layer kept (the p1 method).
    """

    files: list[FileStats] = field(default_factory=list)
    configurations: dict[str, Configuration] = field(default_factory=dict)
    layers: dict[tuple[str, str], LayerStats] = field(default_factory=dict)
    checks: dict[str, CheckStats] = field(default_factory=dict)
    backends: dict[str, BackendStats] = field(default_factory=dict)
    blocked: dict[tuple[str, str, str, str], BlockedKernel] = field(default_factory=dict)
    internal_errors: dict[tuple[str, str], InternalError] = field(default_factory=dict)
    coverage: dict[tuple[str, str], CoverageNote] = field(default_factory=dict)
    events: int = 0
    first_timestamp: str | None = None
    last_timestamp: str | None = None
    tail_size: int = DEFAULT_TAIL_SIZE

    @property
    def failing(self) -> bool:
        return any(configuration.failing for configuration in self.configurations.values())

    @property
    def malformed_lines(self) -> int:
        return sum(stats.malformed_total for stats in self.files)
