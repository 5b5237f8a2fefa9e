"""The worker harness fails loudly and quickly: start-up errors and hangs become test failures."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import real_harness
from real_harness import Worker, WorkerError


def _real_settings(third_party: Path) -> dict[str, str]:
    return {"mode": "real", "gfx": "gfx950", "order": "import_first", "third_party": str(third_party)}


def test_a_worker_that_cannot_start_fails_with_its_stderr(tmp_path: Path) -> None:
    worker = Worker(_real_settings(tmp_path))  # no real_aiter.py there
    started = time.monotonic()
    try:
        with pytest.raises(WorkerError) as failure:
            worker.run("clean.gemm_a8w8")
        assert "exited with code" in str(failure.value)
        assert "No module named 'real_aiter_triton'" in str(failure.value)  # the worker's own traceback
        with pytest.raises(WorkerError):  # later calls fail at once with the same reason
            worker.run("clean.gemm_a8w8")
    finally:
        worker.close()
    assert time.monotonic() - started < 60


def test_a_worker_that_does_not_answer_is_killed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(real_harness, "START_TIMEOUT_S", 0.05)  # less than the interpreter's own start
    worker = Worker(_real_settings(tmp_path))
    try:
        with pytest.raises(WorkerError, match="no answer within"):
            worker.wait_ready()
        assert worker._process is not None and worker._process.poll() is not None
    finally:
        worker.close()


def test_a_scenario_error_carries_the_worker_traceback(workers: real_harness.WorkerPool) -> None:
    worker = workers.get("sim", "gfx950", real_harness.ORDERS["gfx950"])
    with pytest.raises(WorkerError, match="KeyError: 'no.such.scenario'"):
        worker.run("no.such.scenario")
    assert worker.run("clean.gemm_a8w8").value["calls"]  # the worker keeps serving
