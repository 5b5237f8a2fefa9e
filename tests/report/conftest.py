"""Fixtures for the report tests: real logs from the simulator, and synthetic event lines.

The simulated runs are generated once per session (they take about a second
each); edge cases (malformed lines, many ranks, rate-limit flushes) are
written as synthetic events with the schema of docs/events.md.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import torch

import quantguard
from quantguard.sim import workload

#: Simulated runs: label -> deploy settings.  One faulty run with several checks and rate-limit flushes, one clean.
SIM_RUNS = {
    "faulty": dict(arch="gfx942", backend="triton", ck_free=True, faults=("triton_quant_ignores_shuffle_scale",)),
    "clean": dict(arch="gfx942", backend="ck"),
}


@pytest.fixture(scope="session")
def sim_logs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``{"faulty": path, "clean": path}``: JSON-lines logs of short simulated generations."""
    directory = tmp_path_factory.mktemp("sim_logs")
    logs = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith(("QUANTGUARD_", "ATOM_")):
                patch.delenv(name)
        patch.setenv("QUANTGUARD_SIM_BUILD", "release")  # a clean AITER; HEAD's own bugs are tested elsewhere
        try:
            for label, settings in SIM_RUNS.items():
                path = directory / f"{label}.jsonl"
                quantguard.enable(log=str(path), sample_rate=1.0, label=label, summary_at_exit=False)
                try:
                    with workload.deploy(**settings) as deployment:
                        model = workload.build_model(deployment)
                        quantguard.attach(model)
                        workload.generate(model, [1, 2, 3], max_new_tokens=4)
                finally:
                    quantguard.disable()
                logs[label] = path
        finally:
            torch.set_num_threads(threads)
    return logs


@pytest.fixture
def write_log(tmp_path: Path) -> Callable[..., Path]:
    """Write events (dicts, or raw strings for malformed lines) as one log; ``.gz`` names are gzipped."""

    def write(name: str, lines: Iterable[dict[str, Any] | str]) -> Path:
        path = tmp_path / name
        text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
        if name.endswith(".gz"):
            path.write_bytes(gzip.compress(text.encode()))
        else:
            path.write_text(text)
        return path

    return write
