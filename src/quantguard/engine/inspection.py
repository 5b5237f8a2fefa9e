"""One inspected call: snapshots, measurements on the side, judgement, reports."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from quantguard.checks.base import Finding, ShadowResult

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.checks.base import DataCheck, Measurement
    from quantguard.engine.calls import CallRecord
    from quantguard.engine.guard import GuardState
    from quantguard.engine.runtime import Runtime

__all__ = ["InspectionSession", "ShadowResult", "tensor_device", "inspection_blocked"]


def tensor_device(record: CallRecord) -> Any:
    for value in record.arguments.values():
        device = getattr(value, "device", None)
        if device is not None and hasattr(value, "data_ptr"):
            return device
    return None


def inspection_blocked(record: CallRecord) -> str | None:
    """Why reading tensor data is not allowed now (graph capture, tracing, fake tensors), or None."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    compiler = getattr(torch, "compiler", None)
    if compiler is not None and getattr(compiler, "is_compiling", None) and compiler.is_compiling():
        return "torch.compile tracing"
    device = tensor_device(record)
    if device is None:
        return None
    if device.type == "meta":
        return "meta tensors"
    for value in record.arguments.values():
        if type(value).__name__ in ("FakeTensor", "FunctionalTensor"):
            return "fake tensors"
    if device.type == "cuda" and torch.cuda.is_current_stream_capturing():
        return "CUDA graph capture"
    return None


class InspectionSession:
    __slots__ = ("runtime", "state", "record", "checks")

    def __init__(self, runtime: Runtime, state: GuardState, record: CallRecord, checks: list[DataCheck]) -> None:
        self.runtime = runtime
        self.state = state
        self.record = record
        self.checks = checks
        for check in list(checks):
            try:
                check.prepare(record)
            except Exception as exc:
                self.checks.remove(check)
                state.internal_error(check.name, exc)

    def finish(self, result: Any) -> None:
        record = self.record
        record.result = result
        record.reset_view()  # producers that return their outputs are interpretable only now
        device = tensor_device(record)
        executor = self.runtime.executor
        for check in list(self.checks):
            try:
                check.snapshot(record)
            except Exception as exc:
                self.checks.remove(check)
                self.state.internal_error(check.name, exc)
        if executor.is_async(device):
            _ = record.callsite  # resolve on this thread: the drainer has another stack
        executor.run(record, device, self._measure, self._judge)

    def _measure(self) -> list[tuple[DataCheck, Measurement]]:
        items = []
        for check in self.checks:
            try:
                measurement = check.measure(self.record)
            except Exception as exc:
                self.state.internal_error(check.name, exc)
                continue
            if measurement is not None:
                items.append((check, measurement))
        return items

    def _judge(
        self, record: CallRecord, items: list[tuple[DataCheck, Measurement]], values: list[dict[str, Any]]
    ) -> None:
        deferred = self.runtime.executor.is_async(tensor_device(record))
        reporter = self.runtime.reporter
        for (check, measurement), host_values in zip(items, values):
            try:
                outcomes = list(check.judge(record, measurement, host_values))
            except Exception as exc:
                self.state.internal_error(check.name, exc)
                continue
            for outcome in outcomes:
                if isinstance(outcome, ShadowResult):
                    reporter.shadow(
                        record.target,
                        record.contract.backend,
                        record.layer,
                        outcome.fields,
                        outcome.passed,
                        outcome.cosine,
                    )
                elif isinstance(outcome, Finding):
                    reporter.report(self.state, record, outcome, deferred=deferred)
