"""Bounded cosine statistics: exact min/mean, exact nearest-rank p1 while the tail holds it, a lower bound after."""

from __future__ import annotations

import math
import random

import pytest

from quantguard.report.distribution import CosineDistribution


def _nearest_rank_p1(values):
    ordered = sorted(values)
    return ordered[math.ceil(len(ordered) / 100) - 1]


@pytest.mark.parametrize("n", [1, 99, 100, 101, 250, 5000])
def test_exact_statistics(n):
    rng = random.Random(n)
    values = [1.0 - rng.random() * 0.01 for _ in range(n)]
    distribution = CosineDistribution(tail_size=64)
    for value in values:
        distribution.add(value, failed=value < 0.995)
    assert distribution.samples == n
    assert distribution.failed == sum(value < 0.995 for value in values)
    assert distribution.min == min(values)
    assert distribution.mean == pytest.approx(sum(values) / n)
    assert distribution.p1 == _nearest_rank_p1(values)
    assert distribution.p1_exact
    assert distribution.retained <= 64


def test_p1_beyond_the_tail_is_a_lower_bound():
    rng = random.Random(0)
    values = [rng.random() for _ in range(10_000)]  # p1 is the 100th smallest; only 10 kept
    distribution = CosineDistribution(tail_size=10)
    for value in values:
        distribution.add(value)
    assert not distribution.p1_exact
    assert distribution.p1 == sorted(values)[9] <= _nearest_rank_p1(values)
    assert distribution.retained == 10
    assert distribution.min == min(values)


def test_nonfinite_cosines_are_samples_but_not_statistics():
    distribution = CosineDistribution()
    for value in (math.nan, None, 0.5, 1.0):
        distribution.add(value)
    assert (distribution.samples, distribution.nonfinite) == (4, 2)
    assert (distribution.min, distribution.mean, distribution.p1) == (0.5, 0.75, 0.5)


def test_empty_distribution_has_no_statistics():
    distribution = CosineDistribution()
    assert (distribution.min, distribution.mean, distribution.p1) == (None, None, None)


def test_tail_size_must_be_positive():
    with pytest.raises(ValueError, match="tail_size"):
        CosineDistribution(tail_size=0)
