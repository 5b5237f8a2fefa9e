"""Scale mistakes on AITER's real Triton quant -> GEMM chain (CPU interpreter), and on the simulator.

The matrix: activation-side (another activation's x_scale, an x_scale of ones, both from the
plain and from a fused RMSNorm producer), weight-side (a w_scale of ones, another layer's, one
left stale by an in-place requantization) and faults confined to one part of the tensor (the
last partial M tile, the last output columns, the last K group).  Each must be reported at the
consumer by the named checks; clean runs must be quiet at M = 1, 7, 257 and 300, with and
without outlier channels.  gfx950 only: Triton's CPU interpreter has no e4m3fnuz (gfx942's FP8).
"""

from __future__ import annotations

import pytest
from real_harness import Worker, brief

_GFX = "gfx950"
_CONSUMER = "aiter.ops.triton.gemm.basic.gemm_a8w8_blockscale.gemm_a8w8_blockscale"
_FAULTY = "qg_real_tile_faults.gemm_a8w8_blockscale"

#: (scenario, params) -> (consumer target, checks that must report it: at least one of them)
FAULTS = {
    ("scales.x_scale_of_another_activation", ()): (_CONSUMER, {"scale_pairing"}),
    ("scales.x_scale_of_another_activation", (("fused", True),)): (_CONSUMER, {"scale_pairing"}),
    ("scales.x_scale_of_ones", ()): (_CONSUMER, {"numerics"}),
    ("scales.x_scale_of_ones", (("fused", True),)): (_CONSUMER, {"numerics"}),
    ("scales.w_scale_of_ones", ()): (_CONSUMER, {"scale_pairing", "weight_scale"}),
    ("scales.w_scale_of_another_layer", ()): (_CONSUMER, {"scale_pairing"}),
    ("scales.w_scale_stale_after_requantization", ()): (_CONSUMER, {"scale_pairing", "weight_scale"}),
    ("scales.fault_confined_to_one_tile", (("fault", "rows"),)): (_FAULTY, {"numerics"}),
    ("scales.fault_confined_to_one_tile", (("fault", "columns"),)): (_FAULTY, {"numerics"}),
    ("scales.fault_confined_to_one_tile", (("fault", "k_group"),)): (_FAULTY, {"numerics"}),
}
CLEAN = [{"m": m, "outliers": outliers} for m in (1, 7, 257, 300) for outliers in (False, True)] + [
    {"m": m, "fused": True} for m in (7, 300)
]


def _id(value: object) -> str:
    if isinstance(value, dict):
        return "-".join(f"{k}={v}" for k, v in value.items())
    name, params = value
    return name.split(".", 1)[1] + "".join(f"-{k}={v}" for k, v in params)


@pytest.mark.parametrize("gfx", [_GFX])
@pytest.mark.parametrize("params", CLEAN, ids=_id)
@pytest.mark.parametrize("bed", ["real", "sim"])
def test_clean_chain_is_quiet(request: pytest.FixtureRequest, gfx: str, params: dict, bed: str) -> None:
    worker: Worker = request.getfixturevalue(bed)
    reply = worker.run("scales.clean", **params)
    assert not reply.problems(), brief(reply.problems())
    assert not reply.violations(), brief(reply.violations())
    assert reply.value["finite"] and reply.value["calls"].get(_CONSUMER), reply.value


@pytest.mark.parametrize("gfx", [_GFX])
@pytest.mark.parametrize("case", sorted(FAULTS), ids=_id)
@pytest.mark.parametrize("bed", ["real", "sim"])
def test_scale_mistake_is_reported_at_the_consumer(
    request: pytest.FixtureRequest, gfx: str, case: tuple, bed: str
) -> None:
    worker: Worker = request.getfixturevalue(bed)
    name, params = case
    consumer, expected = FAULTS[case]
    reply = worker.run(name, **dict(params))
    assert not reply.problems(), brief(reply.problems())
    reported = {event["check"] for event in reply.violations(target=consumer)}
    assert reported & expected, f"expected one of {sorted(expected)} at {consumer}; got {brief(reply.violations())}"


def test_the_matrix_on_a_gpu() -> None:
    """The same matrix with AITER's Triton kernels compiled for a GPU (run where CUDA exists)."""
    import json
    import os
    import subprocess
    import sys

    import torch
    from real_harness import locate_third_party

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device: the GPU run of this matrix is reported in the closing note")
    third_party, reason = locate_third_party()
    if third_party is None:
        pytest.skip(reason)
    script = os.path.join(os.path.dirname(__file__), "real_scale_faults_gpu.py")
    done = subprocess.run([sys.executable, script, str(third_party)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(results) == len(CLEAN) + len(FAULTS)
    for result in results:
        assert result["error"] is None and not result["problems"], result
        if not result["expected"]:
            assert not result["violations"], result
        else:
            reported = {check for target, check in result["violations"] if target == result["consumer"]}
            assert reported & set(result["expected"]), result
