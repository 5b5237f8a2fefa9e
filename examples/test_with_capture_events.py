"""quantguard inside your own pytest suite: assert that a code path is clean, or that a check fires.

``capture_events()`` collects every quantguard event emitted inside the
block; ``violations(check=...)`` filters them. Copy this into your tests.

    python -m pytest examples/test_with_capture_events.py -q
"""

from __future__ import annotations

import os

import pytest

import quantguard
from quantguard.sim import workload
from quantguard.sim.scenarios import scenario
from quantguard.testing import capture_events


@pytest.fixture
def guarded():
    """quantguard on for one test, every call inspected, off afterwards whatever happens."""
    quantguard.enable(log=os.devnull, sample_rate=1.0, summary_at_exit=False)
    yield
    quantguard.disable()


def _generate(faults=(), **deployment):
    with workload.deploy(faults=faults, **{"arch": "gfx942", "release_build": True, **deployment}) as deployed:
        return workload.generate(workload.build_model(deployed), [11, 42, 7], max_new_tokens=4)


def test_my_deployment_is_clean(guarded):
    with capture_events() as events:
        _generate()
    assert not events.violations(), [(e["check"], e["message"]) for e in events.violations()]
    assert events.named("shadow") and all(e["passed"] for e in events.named("shadow"))


def test_a_dropped_weight_scale_is_caught(guarded):
    incident = scenario("fp8_copy_drops_scale")
    with capture_events() as events:
        _generate(incident.faults, **incident.deployment)
    assert events.violations(check="weight_magnitude")
