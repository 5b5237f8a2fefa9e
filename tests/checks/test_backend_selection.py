"""Backend selection: selectors and per-instance choices come from the contracts; the messages stay specific."""

from __future__ import annotations

import sys
import types

from quantguard.checks.backend_selection import MoeMethodSelection, audit_backend_selection
from quantguard.checks.base import Measurement
from quantguard.hardware import Platform

_PLATFORM = Platform("gfx950", "test", True, "test CK-free source", "float8_e4m3fn", "test")


class Mxfp4MoEMethod:
    def __init__(self, use_triton):
        self.use_triton = use_triton


def test_selectors_of_loaded_library_modules_are_called(monkeypatch):
    module = types.ModuleType("atom.model_ops.linear")
    module.use_triton_gemm = lambda: False
    module.use_triton_fp4 = lambda: False  # fp4 selectors are not GEMM backend selectors
    monkeypatch.setitem(sys.modules, "atom.model_ops.linear", module)
    found = dict(audit_backend_selection(_PLATFORM))
    assert "atom.model_ops.linear.use_triton_fp4" not in found
    finding = found["atom.model_ops.linear.use_triton_gemm"]
    assert finding.message == (
        "atom.model_ops.linear.use_triton_gemm() returned False in CK-free mode (test CK-free source): "
        "this path selects CK GEMMs, whose JIT build fails in a CK-free build"
    )


def test_a_moe_method_choosing_ck_is_reported_with_the_library_hint():
    call = types.SimpleNamespace(
        platform=_PLATFORM,
        layer="model.layers.3.mlp.experts",
        get={"self": Mxfp4MoEMethod(False), "layer": object()}.get,
    )
    check = MoeMethodSelection()
    measurement = check.measure(call)
    assert isinstance(measurement, Measurement)
    [finding] = check.judge(call, measurement, {})
    assert finding.message == (
        "Mxfp4MoEMethod.use_triton is False for MoE layer model.layers.3.mlp.experts in CK-free mode "
        "(test CK-free source): its experts run AITER's CK/ASM MoE kernels, whose JIT build fails in a "
        "CK-free build (ATOM main: set ATOM_USE_TRITON_MOE=1, or ATOM_USE_TRITON_GEMM=1 on gfx95x)"
    )
    assert finding.details == {
        "selector": "Mxfp4MoEMethod.use_triton",
        "layer": "model.layers.3.mlp.experts",
        "returned": False,
        "ck_free_source": "test CK-free source",
    }


def test_an_object_without_a_choice_is_not_measured():
    call = types.SimpleNamespace(platform=_PLATFORM, layer="", get={"self": object()}.get)
    assert MoeMethodSelection().measure(call) is None
