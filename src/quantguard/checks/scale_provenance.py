"""Producer's layout against consumer's expectation (``scale_layout``, ``weight_layout``).

``per_group_quant_hip(transpose_scale=True)`` hands the GEMM a contiguous
``(M, G)`` tensor whose bytes are ``(G, M)``; a row-major consumer sees
plausible strides and reads garbage.  Metadata cannot tell, so a consumer
looks up what the guarded producer wrote into that memory (its requested
layout, and the layout its scales were verified to be written in) and
compares it with the memory layout this kernel reads.  A weight preshuffled
by ``shuffle_weight`` fed to a kernel that reads plain weights is the same
class of bug.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from quantguard.checks.base import DataCheck, Finding, Measurement, register_check
from quantguard.contracts.views import GemmView
from quantguard.numerics.layouts import describe_layout, scale_address_strides
from quantguard.shadow.references import x_scale_read_layout

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.calls import CallRecord

__all__ = ["ScaleProvenance"]

_MEMORY_LAYOUTS = ("row_major", "transposed")


def _same_addresses(written: tuple[int, int], read: tuple[int, int], rows: int, groups: int) -> bool:
    """Whether writer and reader agree on where every group lives (unit dims do not matter)."""
    return (rows <= 1 or written[0] == read[0]) and (groups <= 1 or written[1] == read[1])


@register_check
class ScaleProvenance(DataCheck):
    name = "scale_provenance"
    reports = ("scale_layout", "weight_layout")
    summary = "compare the layout a guarded producer wrote with the layout this kernel reads"

    def snapshot(self, call: CallRecord) -> None:
        view = call.view
        if not isinstance(view, GemmView):
            return
        store = call.runtime.provenance
        scale = store.lookup(view.x_scale, consume=True) if view.x_scale is not None else None
        activation = store.lookup(view.x, consume=True)
        weight = store.lookup(view.w) if view.w is not None else None
        reads = x_scale_read_layout(view, view.x_scale) if view.x_scale is not None else None
        call.scratch["provenance"] = {"scale": scale, "activation": activation, "weight": weight, "reads": reads}

    def measure(self, call: CallRecord) -> Measurement | None:
        found = call.scratch.get("provenance")
        if not found or not any(found[k] for k in ("scale", "weight")):
            return None
        return Measurement({}, found)

    def judge(self, call: CallRecord, measurement: Measurement, values: Mapping[str, Any]) -> Iterable[Finding]:
        view = call.view
        found = measurement.context
        findings = []
        produced = found["scale"]
        if produced is not None:
            written = produced.written_layout or produced.requested_layout
            reads = found["reads"]
            verified = produced.written_layout is not None
            scale = view.x_scale
            rows, groups = (int(scale.shape[0]), int(scale.shape[1])) if scale.dim() == 2 else (view.m, 1)
            written_at = (
                scale_address_strides(
                    written, scale, produced.attributes.get("rows", rows), produced.attributes.get("groups", groups)
                )
                if written in _MEMORY_LAYOUTS
                else None
            )
            read_at = scale_address_strides(reads, scale, view.m, groups)
            if (
                written_at is not None
                and read_at is not None
                and not _same_addresses(written_at, read_at, min(rows, view.m), groups)
            ):
                reads = reads if reads != "logical" else f"by its strides {list(scale.stride())}"
                how = f"{produced.producer}({produced.request})" if produced.request else produced.producer
                findings.append(
                    Finding(
                        "scale_layout",
                        f"x_scale was written {describe_layout(written)} by {how}; {view.kernel} reads it "
                        f"{describe_layout(reads)}",
                        details={
                            "producer": produced.producer,
                            "request": produced.request,
                            "written_layout": written,
                            "written_verified": verified,
                            "consumer_reads": reads,
                            "x_scale_shape": list(view.x_scale.shape),
                            "x_scale_stride": list(view.x_scale.stride()),
                        },
                    )
                )
            group = produced.attributes.get("group")
            expected_group = (
                view.block_k if view.scheme == "block" else (view.mx_group if view.scheme == "mx" else None)
            )
            if expected_group and group and group != expected_group:
                findings.append(
                    Finding(
                        "scale_shape",
                        f"x_scale was produced with group size {group}; {view.kernel} reads groups of {expected_group}",
                        details={"producer": produced.producer, "group": group, "expected_group": expected_group},
                    )
                )
        weight = found["weight"]
        if weight is not None and weight.role == "weight" and weight.requested_layout != view.w_layout:
            reads = "a plain (N, K) weight" if view.w_layout == "plain" else f"a {view.w_layout} weight"
            findings.append(
                Finding(
                    "weight_layout",
                    f"w was preshuffled by {weight.producer} ({weight.request}); {view.kernel} reads {reads}",
                    details={
                        "producer": weight.producer,
                        "written_layout": weight.requested_layout,
                        "expected_layout": view.w_layout,
                        "w_shape": list(view.w.shape),
                    },
                )
            )
        return findings
