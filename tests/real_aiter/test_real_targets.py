"""Every built-in contract against the real trees: patched, bound by name, no internal errors.

Parametrized over ``builtin_contracts()`` as it is at run time, on gfx942 (AITER imported
before ``enable()``) and gfx950 (``enable()`` first: the import hooks patch), see
``real_harness.ORDERS``.  A target the real tree does not have is skipped with the reason, so
``-ra`` lists them.
"""

from __future__ import annotations

from typing import Any

import pytest
from real_harness import ARCHS, ORDERS, Worker, brief

from quantguard.contracts import builtin_contracts, split_target

TARGETS = sorted(contract.target for contract in builtin_contracts())
GUARDED = ("patched", "alias")


@pytest.fixture(params=ARCHS)
def started(request: pytest.FixtureRequest, workers: Any) -> Worker:
    worker = workers.get("real", request.param, ORDERS[request.param])
    worker.wait_ready()
    return worker


@pytest.mark.parametrize("target", TARGETS)
def test_target_is_guarded(started: Worker, target: str) -> None:
    status = started.ready["statuses"].get(target)
    assert status is not None, f"{target}: no contract applied in the worker (contract list differs?)"
    module = split_target(target)[0]
    import_error = next(
        (
            error
            for name, error in started.ready["import_errors"].items()
            if module == name or module.startswith(name + ".")
        ),
        None,
    )
    if status["status"] == "pending" and module.split(".")[0] not in ("aiter", "atom"):
        # the worker imports only the real trees (real_worker._import_packages): e.g. sglang, which ATOM's plugin calls
        pytest.skip(f"{target}: {module.split('.')[0]} is not among the real trees, so it is never imported here")
    if status["status"] == "missing" or (status["status"] == "pending" and import_error):
        pytest.skip(f"{target} does not exist in the real tree: {import_error or status['reason']}")
    mismatches = [event for event in started.startup.events.named("target_mismatch") if event["target"] == target]
    assert not mismatches, brief(mismatches)
    assert status["status"] in GUARDED, f"{target}: {status}"


def test_enable_reports_no_problem(started: Worker) -> None:
    """No ``target_mismatch`` and no ``internal_error`` while AITER/ATOM import and quantguard enables."""
    assert not started.startup.problems(), brief(started.startup.problems())
