"""ATOM main's contracts on the simulator: the weight scan after each MoE quant method, per-layer MoE backend."""

from __future__ import annotations

import pytest
import torch

import quantguard
import quantguard.sim as sim
from quantguard.checks.weights import WeightScan
from quantguard.contracts.atom import CONTRACTS, MOE_QUANT_METHODS, class_behind_lazy_wrapper
from quantguard.testing import capture_events

#: The checks this deliverable owns; other teams' findings are not judged here.
_OWN = ("weight_magnitude", "scale_values", "unloaded_parameter", "nonfinite", "backend_selection")
_SWITCHES = ("ATOM_USE_TRITON_GEMM", "ATOM_USE_TRITON_MOE", "ATOM_CK_FREE")


# --------------------------------------------------------------------------- the lazy-wrapper resolver


def _lazy(original):
    """A decorator shaped like ATOM main's ``FusedMoEDecoratorForPluginMode``."""
    cache = {}

    def decorated():
        return cache.setdefault("value", original)

    class LazyMoEWrapper(original):
        def __new__(cls, *args, **kwargs):
            return decorated()(*args, **kwargs)

    return LazyMoEWrapper


class _Plain(torch.nn.Module):
    def process_weights_after_loading(self):
        return None


class _OwnNew:
    def __new__(cls):  # a __new__ whose closure holds no base class: not a wrapper
        return super().__new__(cls)


def _new_closing_over_an_unrelated_class():
    unrelated = _Plain

    class Factory:
        def __new__(cls):  # builds another class's instance, but that class is not a base
            return unrelated()

    return Factory


_NewWithUnrelatedClosure = _new_closing_over_an_unrelated_class()


@pytest.mark.parametrize(
    "cls, expected",
    [
        (_lazy(_Plain), _Plain),
        (_Plain, _Plain),
        (_OwnNew, _OwnNew),
        (_NewWithUnrelatedClosure, _NewWithUnrelatedClosure),
        (torch.nn.Module, torch.nn.Module),
        ("not a class", "not a class"),
    ],
)
def test_class_behind_lazy_wrapper(cls, expected):
    assert class_behind_lazy_wrapper(cls) is expected


def test_fused_moe_contract_declares_the_resolver():
    [contract] = [c for c in CONTRACTS if c.target == "atom.model_ops.moe:FusedMoE.process_weights_after_loading"]
    assert contract.options["resolve_class"] is class_behind_lazy_wrapper
    targets = {c.target for c in CONTRACTS}
    assert {f"atom.model_ops.moe:{name}.process_weights_after_loading" for name in MOE_QUANT_METHODS} <= targets


# --------------------------------------------------------------------------- end to end on the simulator


@pytest.fixture
def main_atom(monkeypatch):
    def load(arch="gfx942", env=None, ck_free=False):
        for name in _SWITCHES:
            monkeypatch.delenv(name, raising=False)
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        sim.install(arch, atom=True, ck_free=ck_free)  # the root conftest uninstalls it
        import aiter
        import atom.model_ops.moe as moe
        from atom.model_loader.loader import load_model

        return aiter, moe, load_model

    return load


def _checkpoint(quant_type, incident):
    """w13/w2 checkpoint tensors for 8 experts (256 hidden, 256 inter), with one loading incident."""
    generator = torch.Generator().manual_seed(1)
    tensors = {}
    for name, rows, cols in (("w13", 512, 256), ("w2", 256, 256)):
        w = torch.randn(8, rows, cols, generator=generator) * 0.05
        if quant_type == "No" and incident != "dropped_block_scale":
            tensors[f"experts.{name}_weight"] = w.bfloat16()
            continue
        blocks = (8, rows // 128, cols // 128) if quant_type == "per_1x128" else (8, rows, 1)
        if quant_type == "per_1x128" or quant_type == "No":
            scale = w.view(8, rows // 128, 128, cols // 128, 128).abs().amax((2, 4)) / 448.0
            expanded = scale.repeat_interleave(128, 1).repeat_interleave(128, 2)
        else:
            scale = w.abs().amax(-1, keepdim=True) / 448.0
            expanded = scale
        q = (w / expanded).to(torch.float8_e4m3fn)
        tensors[f"experts.{name}_weight"] = q
        if quant_type != "No":
            tensors[f"experts.{name}_weight_scale"] = scale.reshape(blocks)
    if incident == "inverted_scale":
        tensors["experts.w2_weight_scale"] = 1 / tensors["experts.w2_weight_scale"]
    if incident == "never_loaded":
        del tensors["experts.w2_weight"]
    return tensors


def _model(aiter, moe, quant_type):
    model = torch.nn.Module()
    dtype = None if quant_type == "No" else aiter.dtypes.fp8
    model.experts = moe.FusedMoE(
        8,
        2,
        256,
        256,
        4,
        2,
        quant_type=getattr(aiter.QuantType, quant_type),
        params_dtype=dtype,
        prefix="layers.0.mlp.experts",
    )
    model.experts.w2_weight.data.zero_()  # what a parameter the checkpoint lacks holds ("never_loaded")
    return model


def _own(events):
    return [
        (e["check"], e["target"].rsplit(":", 1)[-1], e["message"]) for e in events.violations() if e["check"] in _OWN
    ]


@pytest.mark.parametrize(
    "quant_type, incident, method, parameter",
    [
        ("per_1x128", "inverted_scale", "Mxfp4MoEMethod", "w2_weight"),
        ("No", "dropped_block_scale", "UnquantizedFusedMoEMethod", "w13_weight"),
        ("per_Token", "never_loaded", "Fp8MoEMethod", "w2_weight"),
    ],
)
def test_moe_weight_incidents_are_found_after_the_quant_method(main_atom, quant_type, incident, method, parameter):
    aiter, moe, load_model = main_atom()
    with capture_events() as events:
        quantguard.enable(log="/dev/null", sample_rate=1.0)
        load_model(_model(aiter, moe, quant_type), _checkpoint(quant_type, incident))
        quantguard.disable()
    found = _own(events)
    assert found and {target for _, target, _ in found} == {f"{method}.process_weights_after_loading"}
    assert any(f"layers.0.mlp.experts.{parameter}:" in message for _, _, message in found)


@pytest.mark.parametrize("quant_type", ["per_1x128", "No", "per_Token"])
def test_clean_moe_load_is_quiet(main_atom, quant_type):
    aiter, moe, load_model = main_atom()
    with capture_events() as events:
        quantguard.enable(log="/dev/null", sample_rate=1.0)
        load_model(_model(aiter, moe, quant_type), _checkpoint(quant_type, None))
        quantguard.disable()
    assert _own(events) == []


@pytest.mark.parametrize(
    "env, flagged",
    [
        ({}, True),
        ({"ATOM_USE_TRITON_GEMM": "1"}, False),
        ({"ATOM_USE_TRITON_MOE": "1", "ATOM_USE_TRITON_GEMM": "1"}, False),
    ],
)
def test_ck_free_moe_layer_must_pick_triton(main_atom, env, flagged):
    aiter, moe, load_model = main_atom("gfx950", env, ck_free=True)
    with capture_events() as events:
        quantguard.enable(log="/dev/null", sample_rate=1.0)
        load_model(_model(aiter, moe, "per_1x128"), _checkpoint("per_1x128", None))
        quantguard.disable()
    moe_findings = [m for check, _, m in _own(events) if "Mxfp4MoEMethod.use_triton" in m]
    assert bool(moe_findings) is flagged
    if flagged:
        assert "layers.0.mlp.experts" in moe_findings[0] and "not a directory" in moe_findings[0]
    assert all(check == "backend_selection" for check, _, _ in _own(events))


def test_ck_build_moe_on_ck_is_quiet(main_atom):
    aiter, moe, load_model = main_atom("gfx950", {}, ck_free=False)
    with capture_events() as events:
        quantguard.enable(log="/dev/null", sample_rate=1.0)
        load_model(_model(aiter, moe, "per_1x128"), _checkpoint("per_1x128", None))
        quantguard.disable()
    assert _own(events) == []


class _Call:
    """The two things WeightScan.measure reads from a call record."""

    def __init__(self, arguments):
        self.arguments, self.layer = arguments, None

    def get(self, name, default=None):
        return self.arguments.get(name, default)


def test_layer_with_a_quant_method_is_scanned_after_that_method_not_its_own_step():
    class Method:
        def process_weights_after_loading(self, layer):
            return None

    layer = torch.nn.Linear(2, 2)
    assert WeightScan().measure(_Call({"self": layer})) is not None
    layer.quant_method = Method()
    assert WeightScan().measure(_Call({"self": layer})) is None
    assert WeightScan().measure(_Call({"self": Method(), "layer": layer})).context["module"] is layer


def test_fused_moe_patch_lands_on_the_class_behind_the_wrapper(main_atom):
    aiter, moe, _ = main_atom()
    quantguard.enable(log="/dev/null")
    try:
        real = class_behind_lazy_wrapper(moe.FusedMoE)
        assert real is not moe.FusedMoE
        assert type(vars(real)["process_weights_after_loading"]).__name__ != "function"
    finally:
        quantguard.disable()
