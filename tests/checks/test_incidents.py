"""Every incident, reproduced by a simulator fault inside the ATOM-like workload, is caught; clean runs are quiet.

One parametrized test drives the whole quant→GEMM workload (build, load,
post-process, prefill, decode) with quantguard enabled before ATOM is
imported, as production does with ``QUANTGUARD_ENABLED=1``.
"""

from __future__ import annotations

import pytest

import quantguard
from quantguard.sim import workload
from quantguard.sim.scenarios import SCENARIOS, Scenario
from quantguard.testing import CapturedEvents, capture_events


def run_workload(
    deploy: dict, faults: tuple[str, ...] = (), tokens: int = 3, **options
) -> tuple[CapturedEvents, BaseException | None]:
    error = None
    with capture_events() as events:
        quantguard.enable(sample_rate=options.pop("sample_rate", 0.0), **options)
        try:
            with workload.deploy(faults=faults, **deploy) as deployment:
                model = workload.build_model(deployment)
                workload.generate(model, [1, 2, 3, 4, 5], max_new_tokens=tokens)
        except BaseException as exc:  # noqa: BLE001 - the workload's failure is part of the verdict
            error = exc
        quantguard.disable()
    return events, error


def reported(events: CapturedEvents) -> set[str]:
    found = events.checks()
    if events.named("blocked"):
        found.add("blocked")
    return found


#: Every incident scenario the demo runs, with the checks it must fire (``quantguard.sim.scenarios``);
#: a late enable is the demo's own (the model is built before quantguard).
CASES = [scenario for scenario in SCENARIOS if not scenario.late_enable]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_fault_is_detected(case: Scenario, tmp_path):
    events, error = run_workload(case.deployment, case.faults, log=str(tmp_path / "log.jsonl"), **case.options)
    if case.raises is None:
        assert error is None, repr(error)
    else:
        assert isinstance(error, case.raises), repr(error)
        assert not isinstance(error, SystemExit)
    missing = set(case.expected) - reported(events)
    assert not missing, f"not reported: {missing}; reported: {reported(events)}"


@pytest.mark.parametrize(
    "deploy",
    [
        dict(arch="gfx942", backend="ck"),
        dict(arch="gfx950", backend="ck"),
        dict(arch="gfx942", backend="triton"),
        dict(arch="gfx950", backend="triton"),
        dict(arch="gfx942", backend="asm"),
        dict(arch="gfx950", backend="asm"),
        dict(arch="gfx942", backend="triton", ck_free=True),
        dict(arch="gfx950", backend="triton", ck_free=True),
    ],
    ids=lambda d: "-".join(str(v) for v in d.values()),
)
def test_clean_workload_is_quiet(deploy, tmp_path):
    events, error = run_workload(deploy, sample_rate=1.0, log=str(tmp_path / "log.jsonl"))
    assert error is None, repr(error)
    assert not events.violations(), [(e["check"], e["target"], e["message"]) for e in events.violations()]
    assert not events.named("blocked") and not events.named("internal_error")
    shadows = events.named("shadow")
    assert shadows and all(e["passed"] for e in shadows)


@pytest.mark.parametrize(
    "deploy", [dict(backend="triton"), dict(backend="ck", ck_free=True)], ids=["triton", "ck-free"]
)
def test_clean_mxfp4_dense_layers_are_quiet(deploy, tmp_path):
    """Every dense linear in MXFP4 on gfx950: correct FP4 quantization moves row norms by up to ~8%."""
    schemes = {family: "mxfp4" for family in workload.DEFAULT_SCHEMES if family != "mlp.experts"}
    with capture_events() as events:
        quantguard.enable(sample_rate=1.0, sample_first=10**6, on_block="log", log=str(tmp_path / "log.jsonl"))
        with workload.deploy(arch="gfx950", **deploy) as deployment:
            model = workload.build_model(deployment, schemes=schemes)
            workload.generate(model, [11, 42, 7, 300, 5], max_new_tokens=10)
        quantguard.disable()
    assert not events.violations(), [(e["check"], e["target"], e["message"]) for e in events.violations()]
