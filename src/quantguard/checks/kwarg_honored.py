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
scales), a match counts as honored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from quantguard.checks._common import row_mask, sample_rows
from quantguard.checks.base import DataCheck, Finding, Measurement, register_check
from quantguard.numerics.formats import FP8_E4M3FN, MODE_NAMES, ROUNDING_MODES, e8m0_encode
from quantguard.numerics.layouts import describe_layout, read_scales

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.contracts.views import QuantView
    from quantguard.engine.calls import CallRecord

__all__ = ["KwargHonored", "group_amax", "expected_fp32_scales"]

_RELATIVE_TOLERANCE = 1e-6


def group_amax(x: torch.Tensor, group: int | None) -> torch.Tensor:
    """``(rows, G)`` float32 amax of each group along the last dim (``None``: the whole row)."""
    x = x.to(torch.float32).abs()
    if group is None:
        return x.amax(dim=-1, keepdim=True)
    width = x.shape[-1]
    padded = -(-width // group) * group
    if padded != width:
        x = F.pad(x, (0, padded - width))
    return x.reshape(x.shape[0], -1, group).amax(dim=-1)


def expected_fp32_scales(amax: torch.Tensor, maximum: float, zero_rule: str) -> torch.Tensor:
    if zero_rule == "one":
        return torch.where(amax == 0, torch.ones_like(amax), amax / maximum)
    return torch.clamp(amax, min=1e-10) / maximum


def _e8m0_constants(view: QuantView) -> Any:
    """e8m0 constants come from the element format (fp4: t=2; e4m3fn: 8; e4m3fnuz: 7)."""
    element = view.element
    return element if element is not None and element.target_max_pow2 else FP8_E4M3FN


def _as_bytes(buffer: torch.Tensor) -> torch.Tensor:
    return buffer.view(torch.uint8) if buffer.element_size() == 1 else buffer


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
            amax = view.x.to(torch.float32).abs().amax().reshape(1, 1)
            rows = groups = 1
        else:
            amax = group_amax(x, view.group)
        if view.scale_upper_bound is not None:
            amax = torch.minimum(amax, view.scale_upper_bound.to(torch.float32).reshape(-1)[:1])
        considered = amax > 0
        mask = row_mask(snap["selected"], view.rows, view.valid_rows, amax.device) if view.group != 0 else None
        if mask is not None:
            considered = considered & mask.view(-1, 1)
        buffer = snap["scales"]
        layouts = [view.requested_layout] + [a for a in view.alternatives if a != view.requested_layout]
        selected = snap["selected"] if view.group != 0 else None
        tensors: dict[str, torch.Tensor] = {"compared": considered.sum().to(torch.float64)}
        if view.encoding == "e8m0":
            constants = _e8m0_constants(view)
            expected = {mode: e8m0_encode(amax, mode, constants) for mode in ROUNDING_MODES}
            source = _as_bytes(buffer)
        else:
            expected = {"fp32": expected_fp32_scales(amax, view.element.max, view.zero_amax_scale)}
            source = buffer
        measured_layouts = []
        for layout in layouts:
            read = self._read(source, layout, rows, groups, selected)
            if read is None or read.shape != amax.shape:
                continue
            measured_layouts.append(layout)
            for mode, want in expected.items():
                if view.encoding == "e8m0":
                    differs = read.to(torch.int64) != want
                else:
                    have = read.to(torch.float32)
                    differs = ~((have - want).abs() <= _RELATIVE_TOLERANCE * want.abs())
                tensors[f"{layout}|{mode}"] = (differs & considered).sum().to(torch.float64)
        if view.encoding != "e8m0" and view.requested_layout in measured_layouts:
            read = self._read(source, view.requested_layout, rows, groups, selected).to(torch.float32)
            relative = (read - expected["fp32"]).abs() / expected["fp32"].abs().clamp(min=1e-30)
            tensors["max_rel_err"] = (
                torch.where(considered, relative, torch.zeros_like(relative)).max().to(torch.float64)
            )
        return Measurement(tensors, {"layouts": measured_layouts, "modes": list(expected)})

    @staticmethod
    def _read(buffer: torch.Tensor, layout: str, rows: int, groups: int, selected: slice | None) -> Any:
        if selected is None and buffer.numel() == rows * groups == 1:
            return buffer.reshape(1, 1)
        return read_scales(buffer, layout, rows, groups, selected)

    def judge(self, call: CallRecord, measurement: Measurement, values: Mapping[str, Any]) -> Iterable[Finding]:
        view = call.view
        compared = int(values.get("compared", 0))
        layouts = measurement.context["layouts"]
        modes = measurement.context["modes"]
        if compared == 0 or not layouts:
            return []
        requested = view.requested_layout
        declared = view.rounding if view.encoding == "e8m0" and view.rounding in modes else modes[0]
        matches = [(layout, mode) for layout in layouts for mode in modes if values.get(f"{layout}|{mode}", 1.0) == 0.0]
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
        elif any(layout == requested for layout, _ in matches) and view.encoding == "e8m0":
            observed = next(mode for layout, mode in matches if layout == requested)
            findings.append(
                Finding(
                    "e8m0_rounding",
                    f"expected {MODE_NAMES[declared]} ({view.rounding_source or 'declared'}); "
                    f"scales match {MODE_NAMES[observed]}",
                    details={**details, "expected_mode": declared, "observed_mode": observed},
                )
            )
        elif matches:
            ordered = sorted(matches, key=lambda item: (item[1] != declared, layouts.index(item[0])))
            written, observed = ordered[0]
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
            differing = int(values.get(f"{requested}|{declared}", compared))
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
