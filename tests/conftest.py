"""Shared fixtures: every test starts and ends with quantguard disabled and no simulator installed."""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path
from typing import Callable, Iterator

import pytest
import torch

import quantguard
from quantguard.engine import lifecycle


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(__import__("os").environ):
        if name.startswith("QUANTGUARD_") or name.startswith("ATOM_"):
            monkeypatch.delenv(name, raising=False)
    torch.set_num_threads(1)
    yield
    if quantguard.is_enabled():
        quantguard.disable()
    lifecycle._user_contracts.clear()
    sim = sys.modules.get("quantguard.sim")
    if sim is not None and sim.is_installed():
        sim.uninstall()


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
