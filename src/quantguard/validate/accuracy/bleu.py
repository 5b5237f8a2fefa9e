"""Corpus BLEU-4 over token-id sequences, computed exactly as sacrebleu does by default.

Greedy generations of a quantized model are compared with the reference
model's as token ids, which are already tokens, so the score is sacrebleu's
``corpus_bleu(hypotheses, [references], tokenize="none")`` with its defaults:
n-grams up to 4, clipped counts pooled over the corpus, ``exp`` smoothing of
orders without a match, no effective order, and the brevity penalty
``exp(1 - ref_len / sys_len)`` when the hypotheses are shorter in total.

:func:`corpus_bleu` uses sacrebleu when it is importable and
:func:`builtin_corpus_bleu` otherwise; both return the same score (the tests
check the built-in one against hand-computed values and against sacrebleu).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

__all__ = ["MAX_ORDER", "BleuScore", "builtin_corpus_bleu", "corpus_bleu"]

#: Longest n-gram BLEU counts (sacrebleu's default).
MAX_ORDER = 4

# sacrebleu's log of a zero precision: makes the score 0 without a math error.
_LOG_ZERO = -9999999999.0


@dataclass(frozen=True)
class BleuScore:
    """A corpus BLEU score (0 to 100) with the statistics it was computed from."""

    score: float
    counts: tuple[int, ...]
    totals: tuple[int, ...]
    precisions: tuple[float, ...]
    brevity_penalty: float
    sys_len: int
    ref_len: int
    implementation: str


def _ngrams(tokens: Sequence[Hashable]) -> Counter:
    grams: Counter = Counter()
    for order in range(1, MAX_ORDER + 1):
        for start in range(len(tokens) - order + 1):
            grams[tuple(tokens[start : start + order])] += 1
    return grams


def _score(counts: list[int], totals: list[int], sys_len: int, ref_len: int) -> BleuScore:
    """sacrebleu's ``BLEU.compute_bleu`` with ``smooth_method="exp"``."""
    if sys_len < ref_len:
        brevity_penalty = math.exp(1 - ref_len / sys_len) if sys_len > 0 else 0.0
    else:
        brevity_penalty = 1.0
    precisions = [0.0] * MAX_ORDER
    score = 0.0
    if any(counts):
        smooth = 1.0
        for order in range(1, MAX_ORDER + 1):
            if totals[order - 1] == 0:
                break
            if counts[order - 1] == 0:
                smooth *= 2
                precisions[order - 1] = 100.0 / (smooth * totals[order - 1])
            else:
                precisions[order - 1] = 100.0 * counts[order - 1] / totals[order - 1]
        logs = (math.log(p) if p > 0 else _LOG_ZERO for p in precisions)
        score = brevity_penalty * math.exp(sum(logs) / MAX_ORDER)
    return BleuScore(
        score, tuple(counts), tuple(totals), tuple(precisions), brevity_penalty, sys_len, ref_len, "builtin"
    )


def _check_pairs(hypotheses: Sequence[Sequence[Hashable]], references: Sequence[Sequence[Hashable]]) -> None:
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    if any(len(reference) == 0 for reference in references):
        raise ValueError("BLEU needs a non-empty reference for every hypothesis")


def builtin_corpus_bleu(
    hypotheses: Sequence[Sequence[Hashable]], references: Sequence[Sequence[Hashable]]
) -> BleuScore:
    """Corpus BLEU-4 of ``hypotheses`` against one reference each, without sacrebleu.

    Tokens are compared for equality (token ids, or strings without spaces).
    """
    _check_pairs(hypotheses, references)
    counts, totals = [0] * MAX_ORDER, [0] * MAX_ORDER
    sys_len = ref_len = 0
    for hypothesis, reference in zip(hypotheses, references):
        sys_len += len(hypothesis)
        ref_len += len(reference)
        reference_grams = _ngrams(reference)
        for gram, count in _ngrams(hypothesis).items():
            counts[len(gram) - 1] += min(count, reference_grams[gram])
            totals[len(gram) - 1] += count
    return _score(counts, totals, sys_len, ref_len)


def corpus_bleu(hypotheses: Sequence[Sequence[Hashable]], references: Sequence[Sequence[Hashable]]) -> BleuScore:
    """Corpus BLEU-4 with sacrebleu when it is installed, else :func:`builtin_corpus_bleu`."""
    try:
        import sacrebleu
    except ImportError:
        return builtin_corpus_bleu(hypotheses, references)
    _check_pairs(hypotheses, references)
    result = sacrebleu.corpus_bleu(
        [" ".join(map(str, hypothesis)) for hypothesis in hypotheses],
        [[" ".join(map(str, reference)) for reference in references]],
        tokenize="none",
    )
    return BleuScore(
        result.score,
        tuple(result.counts),
        tuple(result.totals),
        tuple(result.precisions),
        result.bp,
        result.sys_len,
        result.ref_len,
        "sacrebleu",
    )
