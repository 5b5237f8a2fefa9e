"""Fault injection: an internal error in any phase of any check never reaches the host.

Every registered check's every phase (``applies``, ``check``, ``prepare``,
``snapshot``, ``measure``, ``judge``, ``around``, ``scan``) is made to raise on
its first invocation, all at once; the ATOM-like workload then runs on every
deployment the incident scenarios use (faults off).  The host's logits and
generated tokens must be bit-identical to the same run with quantguard off,
every injected error must be logged as ``quantguard.internal_error``, and the
deployments together must reach every (check, phase) pair: the pairs are
enumerated from the check registry, not hand-picked, so a new check is
covered (or this test says which deployment it needs).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections import Counter
from typing import Any

import pytest
import torch

import quantguard
import quantguard.sim as sim
from quantguard.checks.base import registered_checks
from quantguard.sim import workload
from quantguard.sim.scenarios import SCENARIOS
from quantguard.testing import capture_events

PHASES = ("applies", "check", "prepare", "snapshot", "measure", "judge", "around", "scan")
PROMPT = [1, 2, 3, 4, 5]

#: One exception class per phase: the reporter logs each distinct (type, raising line) per (target, check).
INJECTED = {phase: type(f"Injected_{phase}", (RuntimeError,), {}) for phase in PHASES}


def _deployments() -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    for scenario in SCENARIOS:
        deploy = dict(scenario.deployment)
        if deploy not in seen:
            seen.append(deploy)
    return seen


DEPLOYMENTS = _deployments()


def _builtin_checks() -> dict[str, Any]:
    """quantguard's own checks (other tests register checks of their own in the same registry)."""
    return {
        name: check for name, check in registered_checks().items() if type(check).__module__.startswith("quantguard.")
    }


def _defined_pairs() -> set[tuple[str, str]]:
    """(check, phase): every phase a registered check implements, plus the base phases the engine always runs."""
    pairs = set()
    for name, check in _builtin_checks().items():
        for phase in PHASES:
            owner = next((cls for cls in type(check).__mro__ if phase in vars(cls)), None)
            if owner is None:
                continue
            always_run = ("prepare", "snapshot") + (("applies",) if check.phase in ("plan", "data") else ())
            if owner.__module__ != "quantguard.checks.base" or phase in always_run:
                pairs.add((name, phase))
    return pairs


#: Each injected phase raises once, so a path the host takes once would only reach its first phase.
REPEATS = len(PHASES)


class _Injector:
    """Wraps each phase of each registered check so that its first invocation raises."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.fired: Counter[tuple[str, str]] = Counter()
        for name, check in _builtin_checks().items():
            for phase in PHASES:
                method = getattr(check, phase, None)
                if callable(method):
                    monkeypatch.setattr(check, phase, self._wrap(name, phase, method), raising=False)

    def _wrap(self, name: str, phase: str, method: Any) -> Any:
        @functools.wraps(method)
        def injected(*args: Any, **kwargs: Any) -> Any:
            self.fired[(name, phase)] += 1
            if self.fired[(name, phase)] == 1:
                raise INJECTED[phase](f"injected in {name}.{phase}")
            return method(*args, **kwargs)

        return injected


def _workload(deploy: dict[str, Any]) -> tuple[torch.Tensor, list[int]]:
    with workload.deploy(**deploy) as deployment:
        model = workload.build_model(deployment)
        with torch.no_grad():
            logits = model(torch.tensor(PROMPT))
        return logits, workload.generate(model, PROMPT, max_new_tokens=1)


def _static_fused_chain(_: dict[str, Any]) -> tuple[torch.Tensor, list[int]]:
    """A static-scale fused producer feeding a GEMM (ATOM's per-tensor path; not in the decoder workload)."""
    sim.install("gfx942")
    try:
        import aiter
        from aiter.ops.triton.quant import fused_fp8_quant as fused
        from aiter.tuned_gemm import tgemm

        fp8 = aiter.dtypes.fp8
        generator = torch.Generator().manual_seed(0)
        x = (torch.randn(7, 256, generator=generator) * 2).to(torch.bfloat16)
        norm = (torch.rand(256, generator=generator) + 0.5).to(torch.bfloat16)
        w = torch.randn(128, 256, generator=generator) * 0.05
        w_scale = (w.abs().amax() / torch.finfo(fp8).max).reshape(1)
        scale = (x.float().abs().amax() * 2 / torch.finfo(fp8).max).reshape(1)
        outputs = []
        for _ in range(REPEATS):
            q, *_ = fused.fused_rms_fp8_per_tensor_static_quant(x, norm, 1e-6, scale, dtype_quant=fp8)
            outputs.append(tgemm.mm(q, (w / w_scale).to(fp8), None, torch.bfloat16, scale, w_scale))
        return torch.stack(outputs), []
    finally:
        sim.uninstall()


def _atom_main_moe_ck_free(_: dict[str, Any]) -> tuple[torch.Tensor, list[int]]:
    """ATOM main's per-instance MoE backend choice, read when its weights are processed in a CK-free build."""
    saved = {name: os.environ.get(name) for name in ("ATOM_USE_TRITON_GEMM", "ATOM_CK_FREE")}
    os.environ["ATOM_USE_TRITON_GEMM"] = "1"
    os.environ.pop("ATOM_CK_FREE", None)
    sim.install("gfx950", ck_free=True, atom=True)
    try:
        import aiter
        import atom.model_ops.moe as moe
        from atom.model_loader.loader import process_weights_after_loading

        weights = []
        for index in range(REPEATS):
            layer = moe.FusedMoE(
                8,
                2,
                256,
                256,
                4,
                2,
                quant_type=aiter.QuantType.per_1x128,
                params_dtype=aiter.dtypes.fp8,
                prefix=f"layers.{index}.mlp.experts",
            )
            for param in (layer.w13_weight, layer.w2_weight):
                layer.weight_loader(param, torch.ones(param.shape).to(torch.float8_e4m3fn))
            process_weights_after_loading(layer)
            weights.append(layer.w13_weight.detach().view(torch.uint8).clone())
        return torch.stack(weights), []
    finally:
        sim.uninstall()
        for name, value in saved.items():
            os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, value)


def _load_time_requantizations(_: dict[str, Any]) -> tuple[torch.Tensor, list[int]]:
    """DeepSeek-V4's wo_a BF16 conversion and ATOM's in-place max-scale requantization (not in the decoder)."""
    sim.install("gfx942", atom=True)
    try:
        import atom.model_ops.utils as utils
        import atom.models.deepseek_v4 as v4

        generator = torch.Generator().manual_seed(0)
        outputs = []
        for _ in range(REPEATS):
            q = (torch.randn(256, 256, generator=generator) * 100).clamp(-448, 448).to(torch.float8_e4m3fn)
            outputs.append(v4._dequant_fp8_block_to_bf16(q, torch.rand(2, 2, generator=generator) + 0.5).float())
            _, requantized = utils.requantize_with_max_scale(q, torch.tensor([1e-3, 2e-3]), [128, 128])
            outputs.append(requantized.float())
        return torch.stack(outputs), []
    finally:
        sim.uninstall()


def _hash_routed_experts(_: dict[str, Any]) -> tuple[torch.Tensor, list[int]]:
    """ATOM's select_experts with a custom routing function, as DeepSeek-V4's hash layers (not in the decoder)."""
    sim.install("gfx942", atom=True)
    try:
        from atom.model_ops.moe import FusedMoE

        table = torch.tensor([[3, 5], [0, 7], [1, 2]], dtype=torch.int32)

        def hash_topk(hidden_states, gating_output, topk, renormalize):
            ids = table[torch.arange(gating_output.shape[0]) % len(table)]
            return torch.sigmoid(gating_output).gather(1, ids.long()), ids

        generator = torch.Generator().manual_seed(0)
        outputs = []
        for _ in range(REPEATS):
            logits = torch.randn(6, 8, generator=generator)
            weights, ids = FusedMoE.select_experts(torch.zeros(6, 16), logits, 2, False, False, None, None, hash_topk)
            outputs += [weights, ids.float()]
        return torch.stack(outputs), []
    finally:
        sim.uninstall()


#: (driver, its argument): the decoder workload on every scenario deployment, plus the paths it never takes.
DRIVERS = [(_workload, deploy) for deploy in DEPLOYMENTS] + [
    (_static_fused_chain, {}),
    (_atom_main_moe_ck_free, {}),
    (_load_time_requantizations, {}),
    (_hash_routed_experts, {}),
]


def _driver_id(driver: Any, argument: dict[str, Any]) -> str:
    return driver.__name__.strip("_") + (
        "-" + "-".join(f"{k}={v}" for k, v in sorted(argument.items())) * bool(argument)
    )


def _run(driver: Any, argument: dict[str, Any]) -> tuple[torch.Tensor, list[int], BaseException | None]:
    try:
        return (*driver(argument), None)
    except BaseException as exc:  # noqa: BLE001 - compared with the quantguard-off run
        return torch.empty(0), [], exc


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run every driver off, then on with every phase injected; shared by the tests below."""
    results: dict[str, Any] = {"runs": {}, "fired": Counter()}
    log = str(tmp_path_factory.mktemp("injection") / "events.jsonl")
    with pytest.MonkeyPatch.context() as monkeypatch:
        for driver, argument in DRIVERS:
            baseline = _run(driver, argument)
            injector = _Injector(monkeypatch)
            with capture_events() as events:
                quantguard.enable(sample_rate=1.0, on_block="log", log=log)  # a block is policy, not a fault
                try:
                    guarded = _run(driver, argument)
                finally:
                    quantguard.disable()
            monkeypatch.undo()
            logged = {
                tuple(e["error"].split("injected in ", 1)[1].split("."))
                for e in events.named("internal_error")
                if "injected in " in str(e.get("error"))
            }
            results["runs"][_driver_id(driver, argument)] = (baseline, guarded, set(injector.fired), logged)
            results["fired"].update(injector.fired)
    return results


@pytest.mark.parametrize("driver, argument", DRIVERS, ids=[_driver_id(d, a) for d, a in DRIVERS])
def test_host_results_are_bit_identical_and_every_injected_error_is_logged(matrix, driver, argument):
    (logits, tokens, error), (g_logits, g_tokens, g_error), fired, logged = matrix["runs"][_driver_id(driver, argument)]
    assert error is None, repr(error)
    assert g_error is None, repr(g_error)
    assert torch.equal(logits, g_logits) and tokens == g_tokens
    assert fired, "the driver reached no check"
    assert fired == logged, f"raised but not logged: {sorted(fired - logged)}"


def test_the_deployments_reach_every_phase_of_every_check(matrix):
    missing = _defined_pairs() - set(matrix["fired"])
    assert not missing, f"(check, phase) pairs no deployment reached: {sorted(missing)}"


def test_injection_is_real():
    """The injector does raise (guards against a harness that silently injects nothing)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        _Injector(monkeypatch)
        check = registered_checks()["nonfinite"]
        with contextlib.suppress(Exception), pytest.raises(INJECTED["measure"]):
            check.measure(None)


# -- the engine's own components ------------------------------------------------------------

from quantguard import _sinks, events  # noqa: E402
from quantguard.engine.calls import Binder  # noqa: E402
from quantguard.engine.inspection import InspectionSession  # noqa: E402
from quantguard.engine.provenance import ProvenanceStore  # noqa: E402
from quantguard.engine.reporter import Reporter  # noqa: E402
from quantguard.engine.sampling import Sampler  # noqa: E402
from quantguard.shadow.executor import Executor  # noqa: E402

#: Every public method of each component raises on its first invocation (enumerated from the class).
#: The reporter's ``internal_error`` is the logger of last resort and stays intact.
COMPONENTS = {
    "sampler": (Sampler, ()),
    "binder": (Binder, ()),
    "provenance": (ProvenanceStore, ()),
    "reporter": (Reporter, ("internal_error",)),
    "inspection": (InspectionSession, ()),
    "shadow executor": (Executor, ()),
    "sink": (_sinks.FileSink, ()),
}
#: A CK-free Triton deployment: producers, provenance, GEMM chains and shadow references all run.
COMPONENT_DEPLOYMENTS = [{"release_build": True, "arch": "gfx950", "backend": "triton", "ck_free": True}]


def _public_methods(cls: type, spared: tuple[str, ...]) -> list[str]:
    names = set()
    for klass in cls.__mro__[:-1]:
        for name, value in vars(klass).items():
            if callable(value) and (not name.startswith("_") or name == "_write") and name not in spared:
                names.add(name)
    return sorted(names)


def _inject_component(monkeypatch: pytest.MonkeyPatch, cls: type, spared: tuple[str, ...]) -> Counter[str]:
    fired: Counter[str] = Counter()
    for name in _public_methods(cls, spared):
        original = getattr(cls, name)

        def injected(*args: Any, _name: str = name, _original: Any = original, **kwargs: Any) -> Any:
            fired[_name] += 1
            if fired[_name] == 1:
                raise RuntimeError(f"injected in {cls.__name__}.{_name}")
            return _original(*args, **kwargs)

        monkeypatch.setattr(cls, name, injected)
    return fired


@pytest.mark.parametrize("component", sorted(COMPONENTS) + ["renderer"])
@pytest.mark.parametrize("deploy", COMPONENT_DEPLOYMENTS, ids=lambda d: "-".join(str(v) for v in d.values()))
def test_a_broken_component_never_reaches_the_host(component, deploy, tmp_path, capfd):
    baseline = _run(_workload, deploy)
    with pytest.MonkeyPatch.context() as monkeypatch:
        if component == "renderer":
            fired: Counter[str] = Counter()

            def broken_dumps(obj: Any, **kwargs: Any) -> str:
                fired["dumps"] += 1
                raise RuntimeError("injected in the renderer")

            monkeypatch.setattr(events, "_json_dumps", broken_dumps)
        else:
            cls, spared = COMPONENTS[component]
            fired = _inject_component(monkeypatch, cls, spared)
        with capture_events() as seen:
            quantguard.enable(sample_rate=1.0, on_block="log", log=str(tmp_path / "events.jsonl"))
            try:
                guarded = _run(_workload, deploy)
            finally:
                quantguard.disable()
    assert guarded[2] is None, repr(guarded[2])
    assert torch.equal(baseline[0], guarded[0]) and baseline[1] == guarded[1]
    assert fired, f"the workload never used the {component}"
    if component in ("sink", "renderer"):  # nothing can be logged through a broken log: stderr says so
        err = capfd.readouterr().err
        assert "quantguard:" in err
        # once per event kind, not once per event (the run emits hundreds)
        assert err.count("could not write event") <= len(events.EVENT_NAMES), err.count("could not write event")
    else:
        assert any("injected in" in str(e.get("error")) for e in seen.named("internal_error")), sorted(fired)
