"""The library facts generic code reads through ``quantguard.contracts`` (never from a library's own modules)."""

from __future__ import annotations

import types

import pytest

from quantguard.contracts import (
    Contract,
    asm_functions_loaded,
    backend_selections,
    builtin_contracts,
    internal_packages,
    is_asm,
    kernel_factories,
    library_of,
    resets_platform,
    runs_ck,
)
from quantguard.contracts.aiter import CK_KERNELS, FACTORIES, is_asm_name


def _contract(target, backend="hip", asm=False):
    return Contract(target=target, kind="kernel", backend=backend, asm=asm)


@pytest.mark.parametrize(
    "target, asm, expected",
    [
        ("mylib.ops.my_gemm", True, True),  # declared
        ("aiter.ops.gemm_op_a8w8.gemm_a8w8_asm", False, True),  # AITER's naming rule
        ("mylib.ops.gemm_ASM", False, True),  # the rule applies to users' contracts too (as before)
        ("aiter.ops.gemm_op_a8w8.gemm_a8w8_blockscale", False, False),
    ],
)
def test_is_asm_by_declaration_or_naming_rule(target, asm, expected):
    assert is_asm(_contract(target, asm=asm)) is expected


def test_every_builtin_asm_kernel_declares_it():
    """The tables say asm=True themselves; the naming rule is for kernels no contract names."""
    undeclared = [c.target for c in builtin_contracts() if is_asm_name(c.target) and not c.asm]
    assert undeclared == []


def test_runs_ck_by_backend_or_listed_target():
    assert runs_ck(_contract("mylib.ops.gemm", backend="ck"))
    assert runs_ck(_contract(CK_KERNELS[0], backend="hip"))
    assert not runs_ck(_contract("mylib.ops.gemm", backend="triton"))
    assert {c.backend for c in builtin_contracts() if c.target in CK_KERNELS} == {"ck"}


def test_module_facts():
    assert kernel_factories() == FACTORIES
    assert internal_packages() == ("aiter",)
    assert resets_platform("aiter.jit.core") and resets_platform("aiter")
    assert not resets_platform("atom.utils.envs") and not resets_platform("torch")
    assert library_of("atom.model_ops.moe:FusedMoE.forward").name == "atom"
    assert library_of("aiter.ops.quant.get_hip_quant").name == "aiter"
    assert library_of("torch._scaled_mm") is None


def test_asm_functions_loaded_lists_functions_of_library_modules(monkeypatch):
    module = types.ModuleType("aiter.qgt_fake")

    def gemm_fake_asm():
        pass

    module.gemm_fake_asm = gemm_fake_asm
    module.Kernel_asm = type("Kernel_asm", (), {})  # a class is not a kernel to guard
    module.gemm_fake = gemm_fake_asm  # its name is not ASM
    monkeypatch.setitem(__import__("sys").modules, "aiter.qgt_fake", module)
    found = [entry for entry in asm_functions_loaded() if entry[1] == "aiter.qgt_fake"]
    assert found == [("aiter.qgt_fake.gemm_fake_asm", "aiter.qgt_fake", "gemm_fake_asm", gemm_fake_asm)]


class _Mxfp4Method:
    def __init__(self, use_triton):
        self.use_triton = use_triton


def test_atom_backend_selection_facts():
    [selection] = backend_selections()
    assert selection.ck_hint == "ATOM: use_triton_gemm()"
    layer = types.SimpleNamespace(prefix="model.layers.3.mlp.experts")
    choice = selection.instance_choice(_Mxfp4Method(False), layer, "")
    assert (choice.layer, choice.selector, choice.path, choice.chosen) == (
        "model.layers.3.mlp.experts",
        "_Mxfp4Method.use_triton",
        "atom.model_ops.moe._Mxfp4Method.use_triton",
        False,
    )
    assert choice.kernels == "AITER's CK/ASM MoE kernels" and "ATOM_USE_TRITON_MOE=1" in choice.hint
    assert selection.instance_choice(_Mxfp4Method(True), layer, "known.name").layer == "known.name"
    assert selection.instance_choice(object(), layer, "") is None  # no per-instance switch
