"""The uniform shape of a check, like a structlog processor: a call in, findings out.

A check never logs, never raises on purpose and knows nothing about AITER's
names: which check applies to which kernel, and with what expectations, is
declared in ``quantguard.contracts``.  The engine runs checks in one of four
phases:

``plan``
    Metadata only (shapes, dtypes, strides, kwargs, platform).  Run once per
    metadata signature; the verdict is cached, so a repeated call costs a dict
    lookup.
``data``
    Reads tensor values after the kernel ran (sampled calls only).  Split in
    two so nothing on the hot path synchronizes with the GPU: ``measure``
    enqueues torch ops and returns small tensors; ``judge`` turns their host
    values into findings, later, on the drainer thread when on CUDA.
``around``
    Wraps the kernel call itself (e.g. turning a ``SystemExit`` into a
    ``RuntimeError``); applied on every call.
``scan``
    Static, at patch time, on the function object (e.g. parameters accepted
    but never read).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.calls import CallRecord

__all__ = [
    "Finding",
    "Check",
    "PlanCheck",
    "DataCheck",
    "AroundCheck",
    "ScanCheck",
    "Measurement",
    "register_check",
    "get_check",
    "registered_checks",
]


@dataclass(frozen=True)
class Finding:
    """One broken promise.  ``details`` holds shapes/dtypes/statistics only.

    ``values`` may hold small tensor-derived samples; they are dropped from
    events unless the user opted in with ``log_values``.
    """

    check: str
    message: str
    severity: str = "error"
    details: Mapping[str, Any] = field(default_factory=dict)
    values: Mapping[str, Any] | None = None
    #: Distinguishes different findings of one check at one callsite for rate limiting
    #: (e.g. the weight and the scale of one normalization); repeats share it.
    variant: str = ""


class Check:
    """Base of every check.

    ``name`` is the id contracts list; the findings a check produces carry the
    reported check name (``Finding.check``), which may differ (one check that
    inspects scale tensors reports ``scale_shape``, ``scale_dtype`` or
    ``scale_layout``).
    """

    name: ClassVar[str] = ""
    #: The ``check`` names this check can report (documentation and ``quantguard info``).
    reports: ClassVar[tuple[str, ...]] = ()
    phase: ClassVar[str] = ""
    #: What the check is for, shown by ``quantguard info`` and in reports.
    summary: ClassVar[str] = ""

    def applies(self, call: CallRecord) -> bool:
        """Cheap pre-filter; ``False`` skips the check for this call."""
        return True


class PlanCheck(Check):
    phase = "plan"

    def check(self, call: CallRecord) -> Iterable[Finding]:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass
class Measurement:
    """Device-side statistics enqueued by ``DataCheck.measure`` plus host context for ``judge``.

    ``tensors`` maps names to small tensors (typically scalars); the executor
    moves them to the host without blocking the producer stream.  ``context``
    holds plain Python values known at measure time.
    """

    tensors: dict[str, Any]
    context: dict[str, Any] = field(default_factory=dict)


class DataCheck(Check):
    """Reads tensor values of sampled calls.  Four steps, so nothing blocks the GPU:

    ``prepare`` (before the kernel: copy what the kernel overwrites),
    ``snapshot`` (right after it, on the producer stream: copy the few rows
    later work might overwrite), ``measure`` (on the side stream on CUDA:
    enqueue the statistics) and ``judge`` (host values → findings).
    """

    phase = "data"

    def prepare(self, call: CallRecord) -> None:
        """Before the kernel runs; default: nothing."""

    def snapshot(self, call: CallRecord) -> None:
        """Right after the kernel, on the caller's stream; default: nothing."""

    def measure(self, call: CallRecord) -> Measurement | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def judge(self, call: CallRecord, measurement: Measurement, values: Mapping[str, Any]) -> Iterable[Finding]:
        """Host values → findings; default: none (a check that only records, whose ``measure`` returns ``None``)."""
        return ()


class AroundCheck(Check):
    phase = "around"

    def around(
        self, call: CallRecord, proceed: Callable[[], Any], report: Callable[[Finding], None]
    ) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


class ScanCheck(Check):
    phase = "scan"

    def scan(self, function: Any, contract: Any) -> Iterable[Finding]:  # pragma: no cover - abstract
        raise NotImplementedError


_REGISTRY: dict[str, Check] = {}


class ShadowResult:
    """What a numerics check measured for one call; becomes a ``quantguard.shadow`` event."""

    __slots__ = ("fields", "passed", "cosine")

    def __init__(self, fields: dict[str, Any], passed: bool, cosine: float) -> None:
        self.fields = fields
        self.passed = passed
        self.cosine = cosine


def register_check(cls: type[Check]) -> type[Check]:
    """Class decorator: make a check available to contracts by its ``name``."""
    if not cls.name or cls.phase not in ("plan", "data", "around", "scan"):
        raise TypeError(f"{cls.__name__} needs a name and a phase")
    _REGISTRY[cls.name] = cls()
    return cls


def get_check(name: str) -> Check:
    """A registered check by name (the built-in ones register when ``quantguard.checks`` is imported)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown check {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def registered_checks() -> dict[str, Check]:
    """Every registered check (import ``quantguard.checks`` first for the built-in ones)."""
    return dict(_REGISTRY)
