"""Runs a probe script against the real AITER/ATOM trees in a fresh interpreter (tests/contracts).

A fresh process because importing the real trees installs stubs and patches
that must not leak into the test session; the probe prints one ``PROBE <json>``
line.  Skips when the trees or their pip requirements are absent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[2]
_CANDIDATES = (Path("/work/shared/third_party"), _REPO.parent / "shared" / "third_party")

__all__ = ["third_party", "run_probe"]


def third_party() -> Path:
    """The folder holding ``real_aiter.py`` and the trees, or skip."""
    for folder in _CANDIDATES:
        if (folder / "real_aiter.py").is_file():
            return folder
    pytest.skip("the real AITER/ATOM trees are absent (looked in " + ", ".join(map(str, _CANDIDATES)) + ")")


def run_probe(code: str, args: list[str], scratch: Path) -> dict:
    """``python -c code THIRD_PARTY *args`` in ``scratch`` without ATOM_/QUANTGUARD_ settings; its PROBE json."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("ATOM_", "QUANTGUARD_", "CK_DIR"))}
    environ["CK_DIR"] = str(scratch / "no-composable-kernel")
    done = subprocess.run(
        [sys.executable, "-c", code, str(third_party()), *args],
        capture_output=True,
        text=True,
        env=environ,
        cwd=scratch,
        timeout=300,
    )
    if done.returncode and "ModuleNotFoundError" in done.stderr:
        pytest.skip("the real trees' pip requirements are missing: " + done.stderr.strip().splitlines()[-1])
    assert done.returncode == 0, done.stderr[-3000:]
    [line] = [line for line in done.stdout.splitlines() if line.startswith("PROBE")]
    return json.loads(line[len("PROBE") :])
