"""Light eager samples: the decision, the ring of slots, and the whole path under the Triton interpreter.

The path itself (snapshot kernel, device→host copy, batched judging on the
drainer) runs in a subprocess with ``TRITON_INTERPRET=1``; on a GPU the same
path is ``tests/shadow/test_cuda.py`` / ``benchmarks/profile_shadow_gpu.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from quantguard.engine.eager_snapshots import _Ring

WORKER = Path(__file__).with_name("eager_snapshot_worker.py")


@pytest.fixture(scope="module")
def results(run_interpreted) -> dict:
    return run_interpreted(WORKER, "clean", "output", "bias", "thorough_only")


def test_sampled_calls_after_the_first_are_judged_from_snapshots_quietly(results):
    clean = results["clean"]
    # 12 sampled calls: the signature's first is thorough, the other 11 light, every one judged
    assert (clean["thorough"], clean["light"]) == (1, 11)
    assert clean["stats"]["judged"] == 11 and clean["stats"]["skipped"] == 0
    assert all(clean["light_passed"].values()) and clean["violations"] == [] and clean["internal_errors"] == []
    assert clean["light_kernels"] == ["eager snapshot"] and clean["rows_compared"] == [4]
    assert sorted(clean["samples"]) == list(range(1, 12))  # the site's counter moves the rows at every sample


def test_a_corrupted_output_is_caught_by_light_samples(results):
    output = results["output"]
    assert output["violations"] == ["numerics"] and output["internal_errors"] == []
    # the fault starts at the 7th call, the 6th light sample: every sample before passes, every one after fails
    passed = {int(sample): ok for sample, ok in output["light_passed"].items()}
    assert [sample for sample in sorted(passed) if not passed[sample]] == list(range(6, 12))


@pytest.mark.parametrize("scenario, unfit", [("bias", 1), ("thorough_only", 0)])
def test_calls_the_snapshot_cannot_cover_and_interval_zero_stay_thorough(results, scenario, unfit):
    got = results[scenario]
    assert (got["light"], got["thorough"]) == (0, 12)
    assert got["stats"]["unfit"] == unfit and got["violations"] == [] and got["internal_errors"] == []


def test_ring_hands_out_ranges_in_order_and_refuses_when_full():
    ring = _Ring(1024)
    assert [ring.take(256) for _ in range(4)] == [(0, 256), (256, 512), (512, 768), (768, 1024)]
    assert ring.take(1) is None  # full: the sample is skipped, never waits
    ring.give_back(0, 256)
    assert ring.take(200) == (0, 256)  # wraps into the freed head (ranges are aligned)
    assert ring.take(256) is None
    for start in (256, 512, 768):
        ring.give_back(start, start + 256)
    assert ring.take(512) == (256, 768)  # after the live [0, 256)
    assert ring.take(2048) is None  # larger than the ring
