"""Batched comparison statistics (graph snapshots are judged in batches) equal the per-comparison ones."""

from __future__ import annotations

import math

import pytest
import torch

from quantguard.numerics.metrics import batched_statistics, comparison_tensors, slice_tensors


@pytest.mark.parametrize("fault", ["none", "nan", "inf", "zero_reference_row"])
def test_batched_statistics_equal_the_single_ones(fault):
    generator = torch.Generator().manual_seed(1)
    ref = torch.randn(5, 4, 16, generator=generator).to(torch.bfloat16)
    out = (ref.float() + 0.01 * torch.randn(5, 4, 16, generator=generator)).to(torch.bfloat16)
    if fault == "nan":
        out[2, 1, 3] = math.nan
    elif fault == "inf":
        out[4, 0, 0] = math.inf
    elif fault == "zero_reference_row":
        ref[1, 2] = 0
    batched = batched_statistics(out, ref)
    for index in range(5):
        single = torch.cat(
            [comparison_tensors(out[index], ref[index])["stats"], slice_tensors(out[index], ref[index])["slices"]]
        )
        torch.testing.assert_close(batched[index], single, rtol=1e-12, atol=1e-12, equal_nan=True)
