"""Shared fixtures: every test starts and ends with quantguard disabled and no simulator installed."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

import quantguard
from quantguard.engine import lifecycle


def _sim_installed() -> bool:
    sim = sys.modules.get("quantguard.sim")
    return sim is not None and sim.is_installed()


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No QUANTGUARD_*/ATOM_* variables leak in; quantguard and a simulator the test installed are undone."""
    for name in list(__import__("os").environ):
        if name.startswith("QUANTGUARD_") or name.startswith("ATOM_"):
            monkeypatch.delenv(name, raising=False)
    # clean baselines run on a simulated release build; tests of AITER HEAD's own bugs ask for it
    monkeypatch.setenv("QUANTGUARD_SIM_BUILD", "release")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the tensors are tiny: extra intra-op threads only spin on a shared CPU
    installed_before = _sim_installed()  # a wider-scoped fixture's install is not ours to undo
    yield
    torch.set_num_threads(threads)
    if quantguard.is_enabled():
        quantguard.disable()
    lifecycle._user_contracts.clear()
    if _sim_installed() and not installed_before:
        sys.modules["quantguard.sim"].uninstall()


@pytest.fixture
def make_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, str], object]]:
    """Write a module (dotted names create packages) under tmp_path; import it on request."""
    monkeypatch.syspath_prepend(str(tmp_path))
    created: list[str] = []

    def make(name: str, source: str, load: bool = True) -> object:
        parts = name.split(".")
        directory = tmp_path
        for part in parts[:-1]:
            directory = directory / part
            directory.mkdir(exist_ok=True)
            init = directory / "__init__.py"
            if not init.exists():
                init.write_text("")
        package_dir = directory / parts[-1]
        path = package_dir / "__init__.py" if package_dir.is_dir() else directory / f"{parts[-1]}.py"
        path.write_text(textwrap.dedent(source))
        created.append(parts[0])
        importlib.invalidate_caches()
        if name in sys.modules:
            return importlib.reload(sys.modules[name]) if load else None
        return importlib.import_module(name) if load else None

    yield make
    for name in list(sys.modules):
        if name.split(".")[0] in created:
            del sys.modules[name]


@pytest.fixture
def quiet_log(tmp_path: Path) -> str:
    """A log file per test so events don't clutter the output; tests read it when they need to."""
    return str(tmp_path / "events.jsonl")


@pytest.fixture(scope="session")
def run_interpreted() -> Callable[..., Any]:
    """Run a worker script in a subprocess under Triton's interpreter and return the JSON of its last line.

    The interpreter must be on before Triton kernels are defined, hence the
    fresh process; ``tests/`` is on its path for the shared fake GEMM
    (``tests/fake_gemm.py``).
    """
    pytest.importorskip("triton")
    tests = str(Path(__file__).parent)
    path = os.pathsep.join(filter(None, (tests, os.environ.get("PYTHONPATH"))))

    def run(worker: Path, *args: str, timeout: int = 600) -> Any:
        done = subprocess.run(
            [sys.executable, str(worker), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": path},
            cwd=worker.parent,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    return run
