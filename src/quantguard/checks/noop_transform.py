"""Layout transforms must really transform (``noop_transform``).

The incident: ``_fallback_partial_transpose`` was a no-op.  ``out`` is
snapshotted before the call; afterwards its first ``r*cols`` elements must
hold ``input[:r]`` transposed (``out_flat[c*r + row] = input[row, c]``), and
must have changed where the transposition moves anything.  A weight
preshuffle must differ from its input and equal AITER's 16x16 permutation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import torch

from quantguard.checks.base import DataCheck, Finding, Measurement, register_check
from quantguard.contracts.views import TransformView
from quantguard.numerics.formats import raw_bits
from quantguard.numerics.layouts import shuffle_weight

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.calls import CallRecord

__all__ = ["NoopTransform"]


def _raw(tensor: torch.Tensor) -> torch.Tensor:
    """Flat bit-exact comparable view (so NaN payloads and -0 compare as bytes)."""
    return raw_bits(tensor.reshape(-1))


@register_check
class NoopTransform(DataCheck):
    name = "noop_transform"
    reports = ("noop_transform",)
    summary = "layout transforms (partial_transpose, shuffle_weight) really changed the layout"

    def prepare(self, call: CallRecord) -> None:
        if call.contract.kind == "transform" and "out" in call.arguments and isinstance(call.get("out"), torch.Tensor):
            call.scratch["noop_before"] = call["out"].detach().clone()

    def snapshot(self, call: CallRecord) -> None:
        view = call.view
        if not isinstance(view, TransformView) or view.out is None:
            return
        call.scratch["noop_after"] = view.out.detach().clone()
        call.scratch["noop_input"] = view.input.detach().clone()

    def measure(self, call: CallRecord) -> Measurement | None:
        view = call.view
        after, source = call.scratch.get("noop_after"), call.scratch.get("noop_input")
        if after is None or source is None:
            return None
        if view.kind == "partial_transpose":
            rows_total, cols = source.reshape(-1, source.shape[-1]).shape
            limit = view.valid_rows
            count = (
                limit.reshape(-1)[:1].to(torch.int64)
                if isinstance(limit, torch.Tensor)
                else source.new_full((1,), rows_total if limit is None else int(limit), dtype=torch.int64)
            )
            count = count.clamp(max=rows_total)
            index = torch.arange(rows_total * cols, device=source.device)
            row, col = index // cols, index % cols
            valid = row < count
            destination = torch.where(valid, col * count + row, index)
            # valid destinations fill [0, r*cols) exactly once; the rest map to themselves (no sync, no mask indexing)
            expected = _raw(after).clone().scatter_(0, destination, torch.where(valid, _raw(source), _raw(after)))
            moved = valid & (destination != index)
            tensors = {
                "wrong": (_raw(after) != expected).sum().to(torch.float64),
                "must_change": moved.sum().to(torch.float64),
            }
            before = call.scratch.get("noop_before")
            if before is not None:
                unchanged = (_raw(after) == _raw(before)) & (_raw(before) != expected)
                tensors["unchanged"] = unchanged.sum().to(torch.float64)
            return Measurement(tensors, {"shape": list(source.shape), "dtype": str(source.dtype)})
        expected = shuffle_weight(source, view.layout or (16, 16))
        return Measurement(
            {
                "wrong": (_raw(after) != _raw(expected)).sum().to(torch.float64),
                "must_change": (_raw(expected) != _raw(source)).sum().to(torch.float64),
                "unchanged": ((_raw(after) == _raw(source)) & (_raw(expected) != _raw(source))).sum().to(torch.float64),
            },
            {"shape": list(source.shape), "dtype": str(source.dtype)},
        )

    def judge(self, call: CallRecord, measurement: Measurement, values: Mapping[str, Any]) -> Iterable[Finding]:
        wrong, must_change = int(values["wrong"]), int(values["must_change"])
        if not wrong:
            return []
        unchanged = int(values.get("unchanged", 0))
        details = {
            **measurement.context,
            "wrong_elements": wrong,
            "elements_to_move": must_change,
            "left_unchanged": unchanged,
        }
        if must_change and unchanged >= must_change:
            message = f"{call.contract.name} was a no-op: out was left unchanged where {must_change} elements must move"
        else:
            message = f"{call.contract.name} wrote {wrong} elements that differ from the expected layout"
        return [Finding("noop_transform", message, details=details)]
