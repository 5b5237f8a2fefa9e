"""A judged snapshot becomes the same events as an eager check: shadow results and findings.

Shared by the two paths that judge a device snapshot on the drainer: CUDA
graph replays (:mod:`quantguard.engine.graphs`) and light eager samples
(:mod:`quantguard.engine.eager_snapshots`).  The verdict is
``GemmNumerics.judge``'s, so thresholds, slice rules and messages never
differ between the paths.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.calls import CallRecord
    from quantguard.engine.guard import GuardState
    from quantguard.engine.runtime import Runtime
    from quantguard.shadow.graph_snapshot import SnapshotLayout

__all__ = ["report_snapshot"]


class _Picked:
    """The compared rows or columns of one snapshot, shaped like the eager check's selections
    (``indices()`` for rows; ``columns()``, ``blocks`` and ``size`` for output columns, one per block)."""

    size = 1

    def __init__(self, indices: list[int]) -> None:
        self._indices = indices
        self.blocks = indices

    def indices(self) -> list[int]:
        return self._indices

    def columns(self) -> list[int]:
        return self._indices

    def __len__(self) -> int:
        return len(self._indices)


def report_snapshot(
    runtime: Runtime,
    state: GuardState,
    record: CallRecord,
    check: Any,
    layout: SnapshotLayout,
    snapshot: dict[str, Any],
    fields: dict[str, Any],
    variant_suffix: str = "",
    reference_kernels: str = "graph snapshot",
) -> None:
    """Judge one decoded snapshot (:func:`~quantguard.shadow.graph_snapshot.snapshots_values`) and report it.

    ``fields`` are added to the shadow event and to any finding's details;
    ``variant_suffix`` keeps findings of different call sites apart.
    """
    from quantguard.checks._common import dtype_name
    from quantguard.checks.base import Finding, Measurement, ShadowResult

    context = {
        "rows": _Picked(snapshot["rows"]),
        "columns": _Picked(snapshot["columns"]),
        "out_dtype": dtype_name(layout.operands.out.dtype),
        "reference_kernels": reference_kernels,
    }
    reporter = runtime.reporter
    for outcome in check.judge(record, Measurement({}, context), snapshot["values"]):
        if isinstance(outcome, ShadowResult):
            reporter.shadow(
                record.target,
                record.contract.backend,
                record.layer,
                {**outcome.fields, **fields},
                outcome.passed,
                outcome.cosine,
            )
        elif isinstance(outcome, Finding):
            finding = replace(outcome, details={**outcome.details, **fields}, variant=outcome.variant + variant_suffix)
            reporter.report(state, record, finding, deferred=True)
