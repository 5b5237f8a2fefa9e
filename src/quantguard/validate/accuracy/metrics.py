"""Metrics of ``validate accuracy``: layer cosine, logits KL and top-1, generation match.

Layer statistics reuse :mod:`quantguard.numerics.metrics` (float64 sums, so
cosine over every position of every calibration batch is one exact
reduction, and non-finite outputs are counted rather than averaged away).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from quantguard.numerics.metrics import Metrics, comparison_tensors, merge_stats, summarize

__all__ = ["LayerStats", "LogitsStats", "token_match"]


class LayerStats:
    """Running float64 sums of one layer's outputs against the reference's."""

    __slots__ = ("_sums",)

    def __init__(self) -> None:
        self._sums: list[float] | None = None

    def add(self, out: torch.Tensor, ref: torch.Tensor) -> None:
        if out.shape != ref.shape:
            raise ValueError(f"output shape {tuple(out.shape)} differs from the reference's {tuple(ref.shape)}")
        self._merge(comparison_tensors(out, ref)["stats"].tolist())

    def _merge(self, values: list[float] | None) -> None:
        if values is not None:
            self._sums = merge_stats(self._sums, values)

    @classmethod
    def pooled(cls, parts: Iterable[LayerStats]) -> LayerStats:
        """One set of sums over several layers (the configuration's overall cosine)."""
        total = cls()
        for part in parts:
            total._merge(part._sums)
        return total

    def metrics(self) -> Metrics:
        return summarize({"stats": self._sums})


class LogitsStats:
    """KL(reference || quantized) of next-token distributions and top-1 agreement, per position."""

    __slots__ = ("kl_sum", "top1_matches", "positions")

    def __init__(self) -> None:
        self.kl_sum = 0.0
        self.top1_matches = 0
        self.positions = 0

    def add(self, ref: torch.Tensor, out: torch.Tensor) -> None:
        ref_rows = ref.reshape(-1, ref.shape[-1]).double()
        out_rows = out.reshape(-1, out.shape[-1]).double()
        ref_log = torch.log_softmax(ref_rows, dim=-1)
        out_log = torch.log_softmax(out_rows, dim=-1)
        self.kl_sum += float((ref_log.exp() * (ref_log - out_log)).sum(-1).sum())
        self.top1_matches += int((ref_rows.argmax(-1) == out_rows.argmax(-1)).sum())
        self.positions += ref_rows.shape[0]

    @property
    def kl(self) -> float:
        return self.kl_sum / self.positions if self.positions else float("nan")

    @property
    def top1(self) -> float:
        return self.top1_matches / self.positions if self.positions else float("nan")


def token_match(generated: Sequence[int], reference: Sequence[int]) -> float:
    """Share of the reference's positions where the quantized model chose the same token."""
    if not reference:
        return 1.0
    return sum(a == b for a, b in zip(generated, reference)) / len(reference)
