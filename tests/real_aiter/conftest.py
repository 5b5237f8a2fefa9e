"""Fixtures for the tests against the real AITER and ATOM trees (``../shared/third_party``).

The trees are imported only inside worker processes (``real_worker.py``), one per
(package, arch, enable order), started once per session.  Without the trees or their pip
requirements every test that needs them is skipped with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from real_harness import ORDERS, WORKERS, Worker, WorkerPool, locate_third_party, missing_requirements


@pytest.fixture(scope="session")
def third_party() -> Path:
    folder, reason = locate_third_party()
    if folder is None:
        pytest.skip(reason)
    missing = missing_requirements()
    if missing:
        pytest.skip(f"the real AITER import needs {', '.join(missing)} (pip install -e '.[test]')")
    return folder


@pytest.fixture(scope="session")
def workers(third_party: Path) -> Iterator[WorkerPool]:
    pool = WorkerPool(third_party)
    pool.start_all(list(WORKERS))
    yield pool
    pool.close()


@pytest.fixture
def real(workers: WorkerPool, gfx: str) -> Worker:
    """The real tree on ``gfx``, quantguard enabled in that arch's :data:`ORDERS`."""
    return workers.get("real", gfx, ORDERS[gfx])


@pytest.fixture
def sim(workers: WorkerPool, gfx: str) -> Worker:
    """quantguard's simulator on ``gfx``, for the verdicts the real tree must reproduce."""
    return workers.get("sim", gfx, ORDERS[gfx])
