"""Remember what a guarded producer wrote, for the consumer that reads it.

Runs right after the producer (on the caller's thread, before any consumer
can run) and records, weakly, the scales' requested layout and how it was
requested, and for quantized activations a snapshot of the sampled rows of
the high-precision input, so a guarded GEMM consuming them can compare the
layout it reads with the layout written (``scale_layout``) and the whole
quant→GEMM chain against the unquantized product.  The quantized output and
its scales are recorded with one :class:`ProducerCall` (pair id, producer,
call index, callsite), so a GEMM can tell whether its activation and its
scale were written by the same call (``scale_pairing``).  The layout actually
written is filled in when the producer's scales have been checked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from quantguard.checks._common import sample_rows
from quantguard.checks.base import DataCheck, Measurement, register_check
from quantguard.records import Produced

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.calls import CallRecord

__all__ = ["ProvenanceRecord"]


@register_check
class ProvenanceRecord(DataCheck):
    name = "provenance_record"
    summary = "record the layout a producer wrote so consumers can be checked against it"

    def snapshot(self, call: CallRecord) -> None:
        view = call.view
        if view is None:
            return
        store = call.runtime.provenance
        if getattr(view, "kind", None) == "shuffle_weight":
            if view.out is not None:
                rows, lanes = view.layout or (16, 16)
                store.record(
                    view.out, Produced(call.target, "weight", f"preshuffle_{rows}x{lanes}", f"layout={(rows, lanes)}")
                )
            return
        if getattr(view, "scales", None) is None or view.static:
            return
        producer_call = store.new_call(call.target, call.index, call.callsite)
        produced_scales = Produced(
            call.target,
            "scales",
            view.requested_layout,
            view.request,
            attributes={"group": view.group, "encoding": view.encoding, "rows": view.rows, "groups": view.groups},
            call=producer_call,
        )
        store.record(view.scales, produced_scales)
        call.scratch["produced_scales"] = produced_scales
        if view.q is None:
            return
        attributes: dict[str, Any] = {"scales": produced_scales}
        if view.group != 0:  # sampled input rows for the chain reference (not kept for per-tensor producers)
            selected = sample_rows(call, view.rows)
            x_rows = view.x[selected].clone()
            if view.smooth is not None:
                x_rows = x_rows * view.smooth
            attributes.update(x_rows=x_rows, selected=selected, rows=view.rows)
        store.record(
            view.q,
            Produced(
                call.target, "quantized", view.requested_layout, view.request, attributes=attributes, call=producer_call
            ),
        )

    def measure(self, call: CallRecord) -> Measurement | None:
        return None  # records only: nothing to judge
