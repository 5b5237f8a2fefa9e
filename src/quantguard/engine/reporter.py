"""Turns findings into events, counts, and (under ``mode="raise"``) exceptions.

The only module of the engine that emits violation, blocked, shadow and
internal-error events, so counting, rate limiting and the values opt-in are
applied in one place.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from quantguard import events
from quantguard._ratelimit import RateLimiter
from quantguard.engine.stats import Stats
from quantguard.errors import QuantGuardViolation

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.checks.base import Finding
    from quantguard.config import Config
    from quantguard.engine.calls import CallRecord
    from quantguard.engine.guard import GuardState

__all__ = ["Reporter", "format_exception"]


def format_exception(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-4000:]


def emit_internal_error(target: str, check: str, exc: BaseException) -> None:
    """One ``quantguard.internal_error`` event (the one schema every stage that fails open uses)."""
    events.emit(
        events.INTERNAL_ERROR,
        "error",
        target=target,
        check=check,
        error=f"{type(exc).__name__}: {exc}",
        traceback=format_exception(exc),
    )


#: Distinct internal errors logged per process; beyond this, errors are only counted.
_MAX_DISTINCT_ERRORS = 1000


def _error_site(exc: BaseException) -> tuple[str, str, int]:
    """(exception type, file, line) of the innermost frame that raised it."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return (type(exc).__name__, "", 0)
    return (type(exc).__name__, tb.tb_frame.f_code.co_filename, tb.tb_lineno)


class Reporter:
    __slots__ = ("config", "stats", "_violations", "_shadow", "_errors_logged", "shadow_observers")

    def __init__(self, config: Config) -> None:
        self.config = config
        self.stats = Stats()
        self._violations = RateLimiter(config.rate_limit_interval)
        self._shadow = RateLimiter(config.rate_limit_interval)
        self._errors_logged: set[tuple[str, str, tuple[str, str, int]]] = set()
        #: Called with ``(target, layer, fields)`` for every shadow result, before rate limiting
        #: (metrics histograms must see every sample, not only the logged ones).
        self.shadow_observers: list[Callable[[str, str | None, dict[str, Any]], None]] = []

    def reconfigure(self, config: Config) -> None:
        self.config = config
        self._violations.interval = config.rate_limit_interval
        self._shadow.interval = config.rate_limit_interval

    # -- violations ----------------------------------------------------------------------
    def report(self, state: GuardState, record: CallRecord, finding: Finding, deferred: bool = False) -> None:
        """Count and (rate-limited) log a finding of a call; raise under ``mode="raise"``.

        ``deferred`` findings were judged after the call returned (on the drainer
        thread): under raise mode they are raised by the next call of the target.
        """
        target = state.contract.target
        extra: dict[str, Any] = {"backend": state.contract.backend}
        if record.layer:
            extra["layer"] = record.layer
        if record.entry_point and record.entry_point != target:
            extra["entry_point"] = record.entry_point
        self.violation(target, finding, record.callsite, extra)
        if self.config.mode == "raise" and finding.severity == "error":
            error = QuantGuardViolation(target, finding.check, finding.message, finding.details)
            if deferred:
                state.pending_error = error
                state.cool_down()
            else:
                raise error

    def violation(self, target: str, finding: Finding, callsite: str, extra: Mapping[str, Any] | None = None) -> None:
        self.stats.add_violation(target, finding.check)
        admission = self._violations.admit((target, finding.check, callsite, finding.variant))
        if not admission.emit:
            return
        fields: dict[str, Any] = {
            "target": target,
            "check": finding.check,
            "severity": finding.severity,
            "message": finding.message,
            "details": dict(finding.details),
            "callsite": callsite,
            "count": admission.count,
        }
        if admission.suppressed:
            fields["suppressed"] = admission.suppressed
        if finding.variant:
            fields["variant"] = finding.variant
        if extra:
            fields.update(extra)
        if finding.values is not None and self.config.log_values:
            fields["values"] = dict(finding.values)
        events.emit(events.VIOLATION, finding.severity, **fields)

    def flush(self) -> None:
        """Emit the counts that rate limiting folded since the last event of each key."""
        for (target, check, callsite, variant), count, suppressed in self._violations.drain():
            fields = {"variant": variant} if variant else {}
            events.emit(
                events.VIOLATION,
                "warning",
                target=target,
                check=check,
                severity="warning",
                message=f"{suppressed} more occurrence(s) since the last event",
                details={"repeat": True},
                callsite=callsite,
                count=count,
                suppressed=suppressed,
                **fields,
            )

    # -- other events --------------------------------------------------------------------
    def blocked(
        self,
        target: str,
        reason: str,
        action: str,
        rerouted_to: str | None,
        entry_point: str | None,
        callsite: str,
        details: Mapping[str, Any],
    ) -> None:
        self.stats.add_blocked(target)
        admission = self._violations.admit((target, "blocked", callsite, ""))
        if admission.emit:
            events.emit(
                events.BLOCKED,
                "error" if action != "reroute" else "warning",
                target=target,
                reason=reason,
                action=action,
                rerouted_to=rerouted_to,
                entry_point=entry_point,
                callsite=callsite,
                count=admission.count,
                details=dict(details),
            )

    def shadow(
        self, target: str, backend: str, layer: str | None, fields: dict[str, Any], passed: bool, cosine: float
    ) -> None:
        self.stats.add_shadow(target, layer, cosine, passed)
        for observe in self.shadow_observers:
            observe(target, layer, fields)
        admission = self._shadow.admit((target, layer))
        if admission.emit or not passed:
            events.emit(
                events.SHADOW,
                "info" if passed else "error",
                target=target,
                backend=backend,
                layer=layer,
                count=admission.count,
                **fields,
            )

    def internal_error(self, target: str, check: str, exc: BaseException) -> None:
        """Log each distinct internal error once per (target, check); count every occurrence.

        Distinct means another exception type or another raising line: a
        first, harmless error of a check must not hide a later, different one
        of the same check (only exact repeats are folded into the count).
        """
        self.stats.add_internal_error(target, check)
        signature = (target, check, _error_site(exc))
        if signature not in self._errors_logged and len(self._errors_logged) < _MAX_DISTINCT_ERRORS:
            self._errors_logged.add(signature)
            emit_internal_error(target, check, exc)

    def after_fork(self) -> None:
        self.stats.after_fork()
        self._errors_logged = set()
        self._violations = RateLimiter(self.config.rate_limit_interval)
        self._shadow = RateLimiter(self.config.rate_limit_interval)
