"""How AITER's layout transforms read: what they permute, into what, for the no-op and provenance checks.

``shuffle_weight`` (and ``moe_shuffle_weight`` per expert) preshuffles a
weight for the bpreshuffle kernels; ``partial_transpose`` transposes the first
``num_rows`` rows of MoE scales into ``out``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from quantguard.contracts.views import TransformView

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.calls import CallRecord

__all__ = ["moe_shuffle_weight", "partial_transpose", "shuffle_weight"]


def partial_transpose(call: CallRecord) -> TransformView:
    return TransformView("partial_transpose", call["input"], call["out"], valid_rows=call.get("num_rows"))


def shuffle_weight(call: CallRecord) -> TransformView:
    return TransformView("shuffle_weight", call["x"], call.result, layout=tuple(call.get("layout") or (16, 16)))


def moe_shuffle_weight(call: CallRecord) -> TransformView | None:
    """``moe_shuffle_weight`` is ``shuffle_weight`` unless ``is_guinterleave`` (another permutation)."""
    if call.get("is_guinterleave"):
        return None
    return TransformView("shuffle_weight", call["src"], call.result, layout=tuple(call.get("layout") or (16, 16)))
