"""Late enable: originals captured before enable() (ATOM's stored quant_func) are found and rebound."""

from __future__ import annotations

import functools

import quantguard
from quantguard.engine.guard import Guard, guard_of
from quantguard.sim import workload
from quantguard.testing import capture_events


def test_late_enable_guards_the_layers_stored_quant_functions(tmp_path):
    with workload.deploy(
        arch="gfx942", backend="triton", ck_free=True, faults=("triton_quant_ignores_shuffle_scale",)
    ) as deployment:
        model = workload.build_model(deployment)  # layers capture get_hip_quant(...) now
        from atom.model_ops.linear import LinearBase

        layers = [m for m in model.modules() if isinstance(m, LinearBase)]
        before = {id(layer): layer.quant_func for layer in layers}
        assert any(isinstance(f, functools.partial) for f in before.values())
        with capture_events() as events:
            quantguard.enable(log=str(tmp_path / "log.jsonl"), sample_rate=0.0)
            guarded = 0
            for layer in layers:
                original = before[id(layer)]
                if guard_of(getattr(original, "func", original)) is not None:
                    now = layer.quant_func
                    assert isinstance(getattr(now, "func", now), Guard)
                    guarded += 1
            assert guarded
            workload.generate(model, [1, 2, 3], max_new_tokens=2)
            quantguard.disable()
        for layer in layers:
            assert layer.quant_func is before[id(layer)]
    rebound = [e for e in events.named("stale_reference") if e["rebound"]]
    assert {e["kind"] for e in rebound} == {"instance_attribute"}
    # per_group_quant_hip is a custom op guarded at its dispatch: the partials the layers stored
    # need no rebinding (and are not reported stale), yet their calls are judged
    assert not [e for e in events.named("stale_reference") if "per_group_quant_hip" in e["target"]]
    outer = events.violations(check="kwarg_ignored", target="aiter.ops.quant.per_group_quant_hip")
    assert outer and outer[0]["message"] == "transpose_scale=True requested; scales were written row-major (M, G)"


def test_references_that_cannot_be_rebound_are_reported(make_module, tmp_path):
    make_module(
        "qgt_stale",
        """
        def kernel(x):
            return x

        def _make():
            captured = kernel
            return lambda x: captured(x)

        REGISTRY = (kernel,)
        through_closure = _make()
    """,
    )
    quantguard.register(quantguard.Contract(target="qgt_stale.kernel", kind="kernel", backend="torch", key=("x",)))
    with capture_events() as events:
        quantguard.enable(targets="qgt_stale.*", log=str(tmp_path / "log.jsonl"))
    stale = {(e["kind"], e["rebound"]) for e in events.named("stale_reference")}
    assert ("closure", False) in stale and ("tuple", False) in stale
