"""Every incident, reproduced by a simulator fault inside the ATOM-like workload, is caught; clean runs are quiet.

One parametrized test drives the whole quant→GEMM workload (build, load,
post-process, prefill, decode) with quantguard enabled before ATOM is
imported, as production does with ``QUANTGUARD_ENABLED=1``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

import quantguard
from quantguard.sim import workload
from quantguard.testing import CapturedEvents, capture_events


@dataclass(frozen=True)
class Case:
    fault: str
    deploy: dict = field(default_factory=dict)
    expected: tuple[str, ...] = ()           # checks (or "blocked") that must be reported
    raises: type[BaseException] | None = None
    options: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        backend = self.deploy.get("backend", "ck")
        return f"{self.fault}-{self.deploy.get('arch', 'gfx942')}-{backend}" + ("-ckfree" if self.deploy.get("ck_free") else "")


def run_workload(deploy: dict, faults: tuple[str, ...] = (), tokens: int = 3, **options) -> tuple[CapturedEvents, BaseException | None]:
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


CASES = [
    Case("triton_quant_ignores_shuffle_scale", dict(arch="gfx942", backend="triton", ck_free=True),
         ("kwarg_ignored", "ignored_parameter", "scale_layout", "numerics")),
    Case("triton_quant_ignores_shuffle_scale", dict(arch="gfx950", backend="triton", ck_free=True),
         ("kwarg_ignored", "ignored_parameter")),
    Case("asm_gemm_garbage_gfx950", dict(arch="gfx950", backend="asm", ck_free=True, preshuffle=True),
         ("blocked", "backend_selection"), raises=quantguard.QuantGuardBlocked),
    Case("asm_gemm_garbage_gfx950", dict(arch="gfx950", backend="asm", ck_free=True, preshuffle=True),
         ("blocked", "numerics"), options={"on_block": "log"}),
    Case("partial_transpose_noop", dict(arch="gfx942", backend="triton", ck_free=True),
         ("noop_transform", "ignored_parameter")),
    Case("missing_e4m3fnuz_normalization", dict(arch="gfx942", backend="ck"), ("fp8_variant",),
         raises=AssertionError),
    Case("missing_e4m3fnuz_normalization", dict(arch="gfx942", backend="triton"), ("fp8_variant",)),
    Case("jit_build_systemexit+atom_ignores_ck_free", dict(arch="gfx942", backend="triton", ck_free=True),
         ("jit_exit", "backend_selection"), raises=RuntimeError),
    Case("fp8_copy_drops_scale", dict(arch="gfx942", backend="ck"), ("weight_magnitude",)),
    Case("e8m0_copy_zero_fill", dict(arch="gfx950", backend="ck"), ("scale_values",)),
    Case("gemm_reads_scale_wrong_major", dict(arch="gfx942", backend="ck"), ("numerics",)),
    Case("gemm_reads_scale_wrong_major@triton", dict(arch="gfx942", backend="triton"), ("numerics",)),
    Case("gemm_reads_scale_wrong_major@asm", dict(arch="gfx942", backend="asm"), ("numerics",)),
    Case("e8m0_ceil_rounding@hip", dict(arch="gfx950", backend="ck"), ("e8m0_rounding",)),
    Case("moe_missing_routed_scaling", dict(arch="gfx942", backend="ck"), ("kwarg_ignored", "ignored_parameter")),
    Case("atom_ignores_ck_free", dict(arch="gfx950", backend="triton", ck_free=True), ("backend_selection",),
         raises=RuntimeError),
    Case("hipblaslt_drops_scale_b", dict(arch="gfx942", backend="ck"), ("numerics", "ignored_parameter")),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_fault_is_detected(case: Case, tmp_path):
    events, error = run_workload(case.deploy, tuple(case.fault.split("+")), log=str(tmp_path / "log.jsonl"),
                                 **case.options)
    if case.raises is None:
        assert error is None, repr(error)
    else:
        assert isinstance(error, case.raises), repr(error)
        assert not isinstance(error, SystemExit)
    missing = set(case.expected) - reported(events)
    assert not missing, f"not reported: {missing}; reported: {reported(events)}"


@pytest.mark.parametrize("deploy", [
    dict(arch="gfx942", backend="ck"), dict(arch="gfx950", backend="ck"),
    dict(arch="gfx942", backend="triton"), dict(arch="gfx950", backend="triton"),
    dict(arch="gfx942", backend="asm"), dict(arch="gfx950", backend="asm"),
    dict(arch="gfx942", backend="triton", ck_free=True), dict(arch="gfx950", backend="triton", ck_free=True),
], ids=lambda d: "-".join(str(v) for v in d.values()))
def test_clean_workload_is_quiet(deploy, tmp_path):
    events, error = run_workload(deploy, sample_rate=1.0, log=str(tmp_path / "log.jsonl"))
    assert error is None, repr(error)
    assert not events.violations(), [(e["check"], e["target"], e["message"]) for e in events.violations()]
    assert not events.named("blocked") and not events.named("internal_error")
    shadows = events.named("shadow")
    assert shadows and all(e["passed"] for e in shadows)


@pytest.mark.parametrize("deploy", [dict(backend="triton"), dict(backend="ck", ck_free=True)],
                         ids=["triton", "ck-free"])
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
