"""Graph checks on a CPU: the monitor's capture, snapshot, drain and judge path with a stand-in graph.

The kernels run under Triton's interpreter (a subprocess: the interpreter
must be on before they are defined).  The same path on a real GPU with
``torch.cuda.CUDAGraph`` is ``tests/shadow/test_graphs_cuda.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("triton")

WORKER = Path(__file__).with_name("graph_worker.py")


@pytest.fixture(scope="module")
def results(run_interpreted) -> dict:
    return {scenario: run_interpreted(WORKER, scenario) for scenario in ("clean", "scale", "output", "bias")}


def test_every_captured_site_is_snapshotted_and_judged_quietly(results):
    clean = results["clean"]
    assert clean["graph_event"]["monitored"] == 4 and clean["graph_event"]["unmonitored"] == {}
    # period 4, 24 replays: every site judged at every drain
    assert clean["checks_per_site"] == {"0": 6, "1": 6, "2": 6, "3": 6}
    assert all(clean["passed"]) and clean["violations"] == [] and clean["internal_errors"] == []


@pytest.mark.parametrize(
    "scenario, expected",
    [
        ("scale", {("weight_scale", 1), ("numerics", 1)}),  # site 1's weight scales overwritten after capture
        ("output", {("numerics", site) for site in range(4)}),  # every site's output corrupted in replays
    ],
    ids=["weight-scale-overwritten", "output-corrupted"],
)
def test_a_fault_after_capture_is_caught_from_replays(results, scenario, expected):
    got = results[scenario]
    assert got["clean_violations"] == 0  # quiet before the fault
    assert {tuple(v) for v in got["violations"]} == expected
    assert got["internal_errors"] == []


def test_a_captured_call_the_snapshot_cannot_cover_is_reported_unmonitored(results):
    bias = results["bias"]
    assert bias["graph_event"]["monitored"] == 0 and bias["graph_event"]["level"] == "warning"
    ((reason, count),) = bias["graph_event"]["unmonitored"].items()
    assert reason.endswith(".gemm: GEMMs with a bias are not snapshotted") and count == 4
    assert bias["checks_per_site"] == {"0": 0, "1": 0, "2": 0, "3": 0}
    assert bias["violations"] == [] and bias["internal_errors"] == []


def test_disable_gives_the_graph_class_its_methods_back():
    import quantguard

    class Graph:
        def capture_begin(self, *args, **kwargs): ...
        def capture_end(self): ...
        def replay(self): ...

    originals = {name: Graph.__dict__[name] for name in ("capture_begin", "capture_end", "replay")}
    runtime = quantguard.enable(log="/dev/null", summary_at_exit=False)
    try:
        assert runtime.graphs.install(Graph)
        assert all(Graph.__dict__[name] is not original for name, original in originals.items())
        Graph().replay()  # a graph quantguard never saw captured: replayed untouched
    finally:
        quantguard.disable()
    assert all(Graph.__dict__[name] is original for name, original in originals.items())


def test_snapshot_memory_outlives_disable_and_is_never_handed_out_twice(run_interpreted):
    """Captured graphs keep replaying into their slots after disable(): their memory is kept, and a
    later enable() places new graphs after it."""
    got = run_interpreted(WORKER, "reenable")
    assert got["violations"] == [] and got["internal_errors"] == []
    assert got["graphs"]["checks"] == 8  # the second graph's 4 sites, judged at replays 4 and 8
    spans = {(chunk, offset, offset + size) for chunk, offset, size in got["first"] + got["second"]}
    assert len(spans) == 8
    for chunk, start, end in spans:
        assert not any(
            other != (chunk, start, end) and other[0] == chunk and other[1] < end and start < other[2]
            for other in spans
        )


def test_an_eager_call_on_another_thread_during_a_capture_does_not_hide_captured_calls(run_interpreted):
    """The other thread's call is eager (not captured) and reschedules sampling; the capturing thread's
    later calls must still be seen: 3 captured calls, all monitored."""
    got = run_interpreted(WORKER, "thread")
    assert got["graph_event"]["monitored"] == 3
    assert got["violations"] == [] and got["internal_errors"] == []


@pytest.mark.parametrize(
    "scenario, reason, errors",
    [
        ("no_triton", "Triton unavailable", 0),
        ("launch_error", "internal error (RuntimeError)", 1),  # logged once per (target, check), counted always
    ],
    ids=["triton-unavailable", "snapshot-launch-fails"],
)
def test_a_capture_goes_on_when_its_snapshot_cannot_be_recorded(run_interpreted, scenario, reason, errors):
    got = run_interpreted(WORKER, scenario)
    assert got["captured_outputs_correct"]  # the captured calls returned their own results
    assert got["violations"] == [] and len(got["internal_errors"]) == errors
    assert got["graph_event"]["monitored"] == 0 and got["graph_event"]["level"] == "warning"
    assert sum(got["graph_event"]["unmonitored"].values()) == 4
    assert all(reason in key for key in got["graph_event"]["unmonitored"])
