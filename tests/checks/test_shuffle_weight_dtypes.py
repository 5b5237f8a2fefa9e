"""``noop_transform`` on ``shuffle_weight`` follows AITER's element packing for every dtype and rank."""

from __future__ import annotations

import pytest
import torch

import quantguard
import quantguard.sim as sim
from quantguard.testing import capture_events


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [
        ((64, 256), torch.float8_e4m3fnuz),
        ((64, 256), torch.bfloat16),
        ((64, 256), torch.int32),
        ((4, 32, 256), torch.float8_e4m3fnuz),
        ((4, 32, 128), torch.bfloat16),
    ],
    ids=lambda v: str(v).replace("torch.", "").replace(" ", ""),
)
def test_a_correct_preshuffle_is_quiet_and_a_skipped_one_is_caught(shape, dtype, quiet_log):
    sim.install("gfx942")
    with capture_events() as events:
        quantguard.enable(log=quiet_log, sample_rate=1.0)
        from aiter.ops.shuffle import shuffle_weight

        weight = (
            (torch.randn(*shape) * 8).to(dtype)
            if dtype.is_floating_point
            else torch.randint(0, 1000, shape, dtype=dtype)
        )
        shuffle_weight(weight, layout=(16, 16))
        assert not events.violations(check="noop_transform"), events.violations()
        assert not events.named("internal_error")
    from quantguard.engine.calls import CallRecord
    from quantguard.engine.lifecycle import current_runtime

    with capture_events() as events:  # a "shuffle" that returned its input unchanged, as a broken fallback would
        state = current_runtime().applied["aiter.ops.shuffle.shuffle_weight"].state
        session = current_runtime().begin_inspection(state, CallRecord(state, (weight,), {"layout": (16, 16)}))
        session.finish(weight.clone())
    assert events.violations(check="noop_transform")
