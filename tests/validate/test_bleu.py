"""Built-in corpus BLEU: hand-computed values, edge cases, and agreement with sacrebleu."""

from __future__ import annotations

import math
import random

import pytest

from quantguard.validate.accuracy import bleu

# (hypotheses, references, expected score), each worked out by hand from
# clipped n-gram precisions p1..p4 (in %), exp smoothing and the brevity penalty.
KNOWN = {
    "identical": ([[1, 2, 3, 4, 5]], [[1, 2, 3, 4, 5]], 100.0),
    # p = 3/4, 2/3, 1/2, and 0/1 smoothed to 100 / (2 * 1); BP = 1.
    "last token differs": ([[1, 2, 3, 4]], [[1, 2, 3, 5]], (75 * 200 / 3 * 50 * 50) ** 0.25),
    # All precisions 100; BP = exp(1 - 8/4).
    "half length": ([[1, 2, 3, 4]], [[1, 2, 3, 4, 5, 6, 7, 8]], 100 * math.exp(-1)),
    # Clipping: "1" counts once; p2..p4 have no match: 100/(2*3), 100/(4*2), 100/(8*1).
    "clipped repeats": ([[1, 1, 1, 1]], [[1, 2, 3, 4]], (25 * 100 / 6 * 12.5 * 12.5) ** 0.25),
    # Statistics pool over the corpus: p = 4/6, 3/4, 2/2, 1/1; BP = exp(1 - 7/6).
    "corpus pooling": (
        [[1, 2, 3, 4], [5, 6]],
        [[1, 2, 3, 4], [7, 8, 9]],
        math.exp(1 - 7 / 6) * (400 / 6 * 75 * 100 * 100) ** 0.25,
    ),
    "nothing matches": ([[1, 2, 3, 4]], [[5, 6, 7, 8]], 0.0),
    # No 4-gram in a 3-token hypothesis: precision 0, score 0 (sacrebleu's convention).
    "shorter than 4": ([[1, 2, 3]], [[1, 2, 3]], 0.0),
    "empty hypothesis": ([[]], [[1, 2, 3, 4]], 0.0),
}


@pytest.mark.parametrize("case", sorted(KNOWN))
def test_builtin_matches_hand_computed_values(case):
    hypotheses, references, expected = KNOWN[case]
    result = bleu.builtin_corpus_bleu(hypotheses, references)
    assert result.score == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert result.implementation == "builtin"


def test_statistics_are_reported():
    result = bleu.builtin_corpus_bleu([[1, 2, 3, 4], [5, 6]], [[1, 2, 3, 4], [7, 8, 9]])
    assert result.counts == (4, 3, 2, 1)
    assert result.totals == (6, 4, 2, 1)
    assert (result.sys_len, result.ref_len) == (6, 7)
    assert result.brevity_penalty == pytest.approx(math.exp(-1 / 6))


@pytest.mark.parametrize(
    "hypotheses, references",
    [([[1, 2]], [[1, 2], [3]]), ([[1, 2]], [[]])],
    ids=["length mismatch", "empty reference"],
)
def test_rejects_bad_input(hypotheses, references):
    with pytest.raises(ValueError):
        bleu.builtin_corpus_bleu(hypotheses, references)


def _random_corpus(seed: int):
    rng = random.Random(seed)
    hypotheses, references = [], []
    for _ in range(rng.randint(1, 6)):
        reference = [rng.randrange(8) for _ in range(rng.randint(1, 30))]
        hypothesis = [token if rng.random() < 0.7 else rng.randrange(8) for token in reference]
        hypotheses.append(hypothesis[: rng.randint(0, len(hypothesis))])
        references.append(reference)
    return hypotheses, references


@pytest.mark.parametrize("seed", range(20))
def test_builtin_agrees_with_sacrebleu(seed):
    sacrebleu = pytest.importorskip("sacrebleu")
    hypotheses, references = _random_corpus(seed)
    expected = sacrebleu.corpus_bleu(
        [" ".join(map(str, h)) for h in hypotheses],
        [[" ".join(map(str, r)) for r in references]],
        tokenize="none",
    )
    result = bleu.builtin_corpus_bleu(hypotheses, references)
    assert result.score == pytest.approx(expected.score, rel=1e-12, abs=1e-12)
    assert list(result.counts) == list(expected.counts)
    assert list(result.totals) == list(expected.totals)
    assert bleu.corpus_bleu(hypotheses, references).implementation == "sacrebleu"
