"""Metrics of ``validate accuracy``: layer cosine, logits cosine/KL/top-1/perplexity, generation match, BLEU.

Layer statistics reuse :mod:`quantguard.numerics.metrics` (float64 sums, so
cosine over every position of every calibration batch is one exact
reduction, and non-finite outputs are counted rather than averaged away).
BLEU is sacrebleu's corpus BLEU: on decoded text (its default ``13a``
tokenizer) when the model has a tokenizer, else on token ids written as
space-separated numbers (``tokenize="none"``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch

from quantguard.numerics.metrics import Metrics, comparison_tensors, merge_stats, summarize

__all__ = ["BleuScore", "LayerStats", "LogitsStats", "corpus_bleu", "generation_nll", "token_match"]


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
    """Logits against the reference's, per position: cosine, KL(reference || quantized), top-1.

    Cosine pools float64 sums over every position of every batch.
    """

    __slots__ = ("kl_sum", "top1_matches", "positions", "_dot", "_ref_sq", "_out_sq")

    def __init__(self) -> None:
        self.kl_sum = 0.0
        self.top1_matches = 0
        self.positions = 0
        self._dot = self._ref_sq = self._out_sq = 0.0

    def add(self, ref: torch.Tensor, out: torch.Tensor) -> None:
        """One calibration batch: (B, T, V) logits of both models."""
        ref_rows = ref.reshape(-1, ref.shape[-1]).double()
        out_rows = out.reshape(-1, out.shape[-1]).double()
        ref_log = torch.log_softmax(ref_rows, dim=-1)
        out_log = torch.log_softmax(out_rows, dim=-1)
        self.kl_sum += float((ref_log.exp() * (ref_log - out_log)).sum(-1).sum())
        self.top1_matches += int((ref_rows.argmax(-1) == out_rows.argmax(-1)).sum())
        self.positions += ref_rows.shape[0]
        self._dot += float((ref_rows * out_rows).sum())
        self._ref_sq += float((ref_rows * ref_rows).sum())
        self._out_sq += float((out_rows * out_rows).sum())

    @property
    def cosine(self) -> float:
        """Cosine of all quantized logits to all reference logits (NaN when either is zero or not finite)."""
        denominator = math.sqrt(self._ref_sq * self._out_sq)
        return self._dot / denominator if denominator > 0 and math.isfinite(denominator) else float("nan")

    @property
    def kl(self) -> float:
        return self.kl_sum / self.positions if self.positions else float("nan")

    @property
    def top1(self) -> float:
        return self.top1_matches / self.positions if self.positions else float("nan")


def generation_nll(logits: torch.Tensor, ids: torch.Tensor, prompt_length: int) -> tuple[float, int]:
    """Summed negative log-likelihood of the generated tokens ``ids[:, prompt_length:]`` and their count.

    ``logits`` are a model's (B, T, V) logits of the (B, T) sequences ``ids`` (prompt, then generation).
    """
    if ids.shape[1] <= prompt_length:
        return 0.0, 0
    log_probs = torch.log_softmax(logits[:, prompt_length - 1 : -1].double(), dim=-1)
    targets = ids[:, prompt_length:].to(log_probs.device).unsqueeze(-1)
    return -float(log_probs.gather(-1, targets).sum()), targets.numel()


def token_match(generated: Sequence[int], reference: Sequence[int]) -> float:
    """Share of the reference's positions where the quantized model chose the same token."""
    if not reference:
        return 1.0
    return sum(a == b for a, b in zip(generated, reference)) / len(reference)


@dataclass(frozen=True)
class BleuScore:
    """A corpus BLEU score (0 to 100), what it was computed on, and sacrebleu's statistics."""

    score: float
    on: str
    counts: tuple[int, ...]
    totals: tuple[int, ...]
    precisions: tuple[float, ...]
    sys_len: int
    ref_len: int


def corpus_bleu(
    hypotheses: Sequence[Sequence[int]],
    references: Sequence[Sequence[int]],
    decode: Callable[[Sequence[int]], str] | None = None,
) -> BleuScore:
    """sacrebleu corpus BLEU-4 of greedy generations against the reference's: on text with ``decode``, else ids."""
    import sacrebleu

    if decode is not None:
        system, refs, tokenize = [decode(h) for h in hypotheses], [decode(r) for r in references], "13a"
    else:
        system = [" ".join(map(str, h)) for h in hypotheses]
        refs, tokenize = [" ".join(map(str, r)) for r in references], "none"
    result = sacrebleu.corpus_bleu(system, [refs], tokenize=tokenize)
    return BleuScore(
        float(result.score),
        "text (13a tokenizer)" if decode is not None else "token ids",
        tuple(result.counts),
        tuple(result.totals),
        tuple(float(p) for p in result.precisions),
        int(result.sys_len),
        int(result.ref_len),
    )
