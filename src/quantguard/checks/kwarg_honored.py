"""Were the scales written the way the caller asked?  (``kwarg_ignored``, ``e8m0_rounding``, ``scale_values``)

The incident: a Triton fallback of ``dynamic_per_token_scaled_quant`` ignored
``shuffle_scale=True`` and wrote row-major scales where column-major was
expected; nothing raised, the text was just wrong.  This check recomputes the
scales a correct producer writes (group amax over the format maximum, or the
e8m0 byte in each of AITER's four rounding modes) and compares them with the
scale buffer read, in memory order, in the requested layout and in every
alternative.  The verdict names the layout (and rounding) that was actually
written: "shuffle_scale=True requested; scales were written row-major".

Groups whose amax is 0 are left out (producers legitimately differ there),
and so are rows beyond ``num_rows`` for MoE buffers.  When the requested
layout cannot be told apart from another (one row, one group, identical
scales), a match counts as honored.  The comparison is
:mod:`quantguard.numerics.written_layout`'s, shared with ``quantguard validate``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import torch

from quantguard.checks._common import row_mask, sample_rows
from quantguard.checks.base import DataCheck, Finding, Measurement, register_check
from quantguard.numerics.formats import MODE_NAMES
from quantguard.numerics.layouts import describe_layout
from quantguard.numerics.scales import expected_scales, group_amax
from quantguard.numerics.written_layout import WrittenLayout, count_key, mismatch_counts, read_scale_grid

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.calls import CallRecord

__all__ = ["KwargHonored"]


@register_check
class KwargHonored(DataCheck):
    name = "kwarg_honored"
    reports = ("kwarg_ignored", "e8m0_rounding", "scale_layout", "scale_values")
    summary = "recompute the scales and find which layout/rounding the producer really wrote"

    def snapshot(self, call: CallRecord) -> None:
        view = call.view
        if view is None or view.static or view.scales is None or view.x is None:
            return
        rows = view.rows
        selected = sample_rows(call, rows) if view.group != 0 else slice(None)
        call.scratch["kwarg"] = {
            "x": view.x[selected].clone(),
            "scales": view.scales.detach().clone(memory_format=torch.preserve_format),
            "selected": selected,
            "smooth": view.smooth,
        }

    def measure(self, call: CallRecord) -> Measurement | None:
        snap = call.scratch.get("kwarg")
        view = call.view
        if snap is None or view is None or view.element is None:
            return None
        x = snap["x"].to(torch.float32)
        if snap["smooth"] is not None:
            x = x * snap["smooth"].to(torch.float32)
        rows, groups = view.rows, view.groups
        if view.group == 0:
            amax = group_amax(view.x, 0)
            rows = groups = 1
        else:
            amax = group_amax(x, view.group)
        if view.scale_upper_bound is not None:
            amax = torch.minimum(amax, view.scale_upper_bound.to(torch.float32).reshape(-1)[:1])
        considered = amax > 0
        mask = row_mask(snap["selected"], view.rows, view.valid_rows, amax.device) if view.group != 0 else None
        if mask is not None:
            considered = considered & mask.view(-1, 1)
        selected = snap["selected"] if view.group != 0 else None
        expected = expected_scales(amax, view.encoding, view.element, view.zero_amax_scale)
        layouts, tensors = mismatch_counts(
            snap["scales"], expected, [view.requested_layout, *view.alternatives], rows, groups, considered, selected
        )
        tensors["compared"] = considered.sum().to(torch.float64)
        if view.encoding != "e8m0" and view.requested_layout in layouts:
            read = read_scale_grid(snap["scales"], view.requested_layout, rows, groups, selected).to(torch.float32)
            relative = (read - expected["fp32"]).abs() / expected["fp32"].abs().clamp(min=1e-30)
            tensors["max_rel_err"] = (
                torch.where(considered, relative, torch.zeros_like(relative)).max().to(torch.float64)
            )
        return Measurement(tensors, {"layouts": layouts, "modes": list(expected)})

    def judge(self, call: CallRecord, measurement: Measurement, values: Mapping[str, Any]) -> Iterable[Finding]:
        view = call.view
        compared = int(values.get("compared", 0))
        layouts = measurement.context["layouts"]
        modes = measurement.context["modes"]
        if compared == 0 or not layouts:
            return []
        requested = view.requested_layout
        declared = view.rounding if view.encoding == "e8m0" and view.rounding in modes else modes[0]
        written_scales = WrittenLayout.from_counts(values, layouts, modes, compared)
        matches = written_scales.matches
        findings: list[Finding] = []
        details = {
            "requested_layout": requested,
            "rows": view.rows,
            "groups": view.groups,
            "group_size": view.group,
            "encoding": view.encoding,
            "compared_groups": compared,
            "scales_shape": list(view.scales.shape),
            "scales_stride": list(view.scales.stride()),
            "scales_dtype": str(view.scales.dtype),
        }
        written, observed = requested, declared
        if (requested, declared) in matches:
            pass
        elif requested in written_scales.layouts and view.encoding == "e8m0":
            observed = written_scales.encodings(requested)[0]
            findings.append(
                Finding(
                    "e8m0_rounding",
                    f"expected {MODE_NAMES[declared]} ({view.rounding_source or 'declared'}); "
                    f"scales match {MODE_NAMES[observed]}",
                    details={**details, "expected_mode": declared, "observed_mode": observed},
                )
            )
        elif matches:
            written, observed = written_scales.best(declared)
            where = describe_layout(written)
            if view.request:
                message = f"{view.request} requested; scales were written {where}"
                check = "kwarg_ignored"
            else:
                message = f"scales were written {where}; expected {describe_layout(requested)}"
                check = "scale_layout"
            if view.encoding == "e8m0" and observed != declared:
                message += f" (and rounded {MODE_NAMES[observed]}, not {MODE_NAMES[declared]})"
            findings.append(
                Finding(check, message, details={**details, "written_layout": written, "observed_mode": observed})
            )
        else:
            written, observed = None, None
            differing = int(values.get(count_key(requested, declared), compared))
            relative = values.get("max_rel_err")
            extra = f", max relative error {relative:.3g}" if relative is not None else ""
            findings.append(
                Finding(
                    "scale_values",
                    f"scales match no known layout or rounding: {differing}/{compared} groups "
                    f"differ from amax/{view.element.max:g} in the requested layout "
                    f"({describe_layout(requested)}){extra}",
                    details={**details, "differing_groups": differing},
                )
            )
        produced = call.scratch.get("produced_scales")
        if produced is not None:
            produced.written_layout = written
            produced.attributes["observed_rounding"] = observed
        wanted = call.config.e8m0_rounding
        if wanted and view.encoding == "e8m0" and observed is not None and observed != wanted:
            findings.append(
                Finding(
                    "e8m0_rounding",
                    f"{call.target} rounds e8m0 scales {MODE_NAMES[observed]}; the model's reference "
                    f"expects {MODE_NAMES[wanted]} (QUANTGUARD_E8M0_ROUNDING)",
                    details={**details, "expected_mode": wanted, "observed_mode": observed, "declared_mode": declared},
                    variant="model_rounding",
                )
            )
        return findings
