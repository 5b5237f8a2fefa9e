"""The simulated ATOM follows ATOM main (lazy FusedMoE, per-layer MoE backend, loader order); the CK-free branch stays an option."""

from __future__ import annotations

import pytest
import torch

from quantguard.contracts.atom import class_behind_lazy_wrapper

_SWITCHES = ("ATOM_USE_TRITON_GEMM", "ATOM_USE_TRITON_MOE", "ATOM_CK_FREE", "ATOM_FP8_BLOCKSCALE_WEIGHT_PRESHUFFLE")


@pytest.fixture
def atom(install, monkeypatch):
    """``atom(arch, env, **install_settings)`` -> the simulated ``atom.model_ops.moe`` under that environment."""

    def load(arch="gfx942", env=None, **settings):
        for name in _SWITCHES:
            monkeypatch.delenv(name, raising=False)
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        install(arch, atom=True, **settings)
        import atom.model_ops.moe as moe

        return moe

    return load


def _experts(moe, quant_type="per_1x128", **kwargs):
    import aiter

    dtype = aiter.dtypes.fp8 if quant_type != "No" else None
    return moe.FusedMoE(
        8,
        2,
        256,
        256,
        4,
        2,
        quant_type=getattr(aiter.QuantType, quant_type),
        params_dtype=dtype,
        prefix="layers.0.mlp.experts",
        **kwargs,
    )


def test_main_fused_moe_is_a_lazy_wrapper_over_the_real_class(atom):
    moe = atom()
    layer = _experts(moe)
    assert type(layer) is not moe.FusedMoE and not isinstance(layer, moe.FusedMoE)
    assert type(layer).__name__ == "FusedMoE" and issubclass(moe.FusedMoE, type(layer))
    assert class_behind_lazy_wrapper(moe.FusedMoE) is type(layer)


def test_main_has_no_atom_ck_free_switch(atom):
    atom()
    from atom.utils import envs

    assert "ATOM_CK_FREE" not in envs.environment_variables and not envs.CK_FREE_BRANCH
    with pytest.raises(AttributeError):
        _ = envs.ATOM_CK_FREE


@pytest.mark.parametrize(
    "quant_type, quant_method, expected",
    [
        ("No", "", "UnquantizedFusedMoEMethod"),
        ("per_Token", "", "Fp8MoEMethod"),
        ("per_Token", "compressed-tensors", "CompressedTensorsFp8MoEMethod"),
        ("per_1x128", "", "Mxfp4MoEMethod"),
    ],
)
def test_each_layer_gets_a_quant_method(atom, quant_type, quant_method, expected):
    layer = _experts(atom(), quant_type, quant_method=quant_method)
    assert type(layer.quant_method).__name__ == expected
    assert layer.quant_method.use_triton is (expected == "Mxfp4MoEMethod")  # gfx942: Triton MoE by default


@pytest.mark.parametrize(
    "arch, env, use_triton",
    [
        ("gfx942", {}, True),
        ("gfx950", {}, False),
        ("gfx950", {"ATOM_USE_TRITON_GEMM": "1"}, True),
        ("gfx942", {"ATOM_USE_TRITON_MOE": "0"}, False),
        ("gfx950", {"ATOM_USE_TRITON_MOE": "1"}, True),
    ],
)
def test_mxfp4_method_picks_triton_per_instance_like_atom_main(atom, arch, env, use_triton):
    layer = _experts(atom(arch, env))
    assert layer.quant_method.use_triton is use_triton


def test_atom_ignores_ck_free_fault_keeps_moe_on_ck_in_main(atom):
    settings = dict(ck_free=True, faults=["atom_ignores_ck_free"])
    layer = _experts(atom("gfx950", {"ATOM_USE_TRITON_GEMM": "1"}, **settings))
    assert layer.quant_method.use_triton is False


@pytest.mark.parametrize("env, triton", [({"ATOM_CK_FREE": "1"}, True), ({"ATOM_CK_FREE": "0"}, False)])
def test_ck_free_branch_is_the_labelled_option(atom, env, triton):
    moe = atom("gfx950", env, ck_free=env["ATOM_CK_FREE"] == "1")
    from atom.utils import envs

    layer = _experts(moe)
    assert envs.CK_FREE_BRANCH and type(layer) is moe.FusedMoE and layer.quant_method is None
    assert moe._use_triton_experts() is triton


def _load(layer):
    q = torch.zeros(layer.w13_weight.shape, dtype=torch.float8_e4m3fn)
    layer.weight_loader(layer.w13_weight, q)
    layer.weight_loader(layer.w2_weight, torch.zeros(layer.w2_weight.shape, dtype=torch.float8_e4m3fn))


def test_main_loader_runs_the_layer_then_its_quant_method(atom, monkeypatch):
    moe = atom()
    layer = _experts(moe)
    calls = []
    for owner in (type(layer), type(layer.quant_method)):
        original = owner.process_weights_after_loading

        def spy(self, *args, _original=original, _owner=owner.__name__):
            calls.append(_owner)
            return _original(self, *args)

        monkeypatch.setattr(owner, "process_weights_after_loading", spy)
    _load(layer)
    layer.process_weights_after_loading()
    assert not getattr(layer.w13_weight, "is_shuffled", False)  # the layer's own step leaves experts as loaded
    from atom.model_loader.loader import process_weights_after_loading

    calls.clear()
    process_weights_after_loading(layer)
    assert calls == ["FusedMoE", "Mxfp4MoEMethod"] and layer.w13_weight.is_shuffled
