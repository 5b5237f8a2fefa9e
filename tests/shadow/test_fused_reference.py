"""The fused Triton reference gives the torch reference's statistics (CPU, Triton interpreter).

Every element format and scale layout the kernels decode, with a fault in the
last row (which every selection includes).  The same comparison on a GPU is
``test_graphs_cuda.py::test_fused_reference_matches_the_torch_reference``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("triton")

WORKER = Path(__file__).with_name("fused_worker.py")
CASES = ["per_token", "per_tensor", "block", "block_transposed", "fnuz", "int8", "mx"]


@pytest.fixture(scope="module")
def cases(run_interpreted) -> dict:
    return run_interpreted(WORKER, *CASES)


@pytest.mark.parametrize("case", CASES)
def test_fused_statistics_match_the_torch_reference(cases, case):
    result = cases[case]
    assert result["reason"] is None
    expected, got = result["torch"], result["fused"]
    for index in (0, 1, 4, 13):  # |out|^2, out.ref, |ref|^2, count
        assert got[index] == pytest.approx(expected[index], rel=1e-5)
    # the error energy up to fp32 summation order (a bf16 rounding may flip by one ulp); the fault dominates it
    assert abs(got[8] - expected[8]) <= 1e-6 * expected[4]
    assert expected[8] > 0
    assert (got[15], got[17]) == (expected[15], expected[17])  # the worst row and column: same positions
    assert got[14] == pytest.approx(expected[14], rel=1e-3) and got[16] == pytest.approx(expected[16], rel=1e-3)


@pytest.mark.parametrize("fault, passed", [("clean", True), ("dropped_scale", False)])
def test_the_eager_check_runs_on_the_fused_reference(run_interpreted, fault, passed):
    """GemmNumerics end to end through the fused path: a clean call is quiet, a dropped w_scale is caught
    by its norm ratio (cosine alone would not), and the event says which reference ran."""
    result = run_interpreted(WORKER, "engine", fault, timeout=300)
    assert result["kernels"] == ["fused"] and result["passed"] == [passed]
    assert result["internal_errors"] == []
    if passed:
        assert result["violations"] == []
    else:
        assert len(result["violations"]) == 1 and "norm ratio" in result["violations"][0]
