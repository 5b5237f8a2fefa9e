"""Patching engine: targets declared as data, aliases rebound, exact restore, missing targets."""

from __future__ import annotations

import sys

import pytest
import torch

import quantguard
from quantguard import Contract
from quantguard.checks.base import Finding, PlanCheck, register_check
from quantguard.engine.guard import Guard
from quantguard.testing import capture_events

KERNEL = """
import torch

def kernel(x, w, x_scale, w_scale, dtype=None):
    return (x.float() @ w.float().t()) * x_scale.mean() * w_scale.mean()

def other(x):
    return x + 1
"""


@register_check
class _RowsMatch(PlanCheck):
    """Test check: x_scale must have one row per row of x."""

    name = "test_rows_match"

    def check(self, call):
        if call["x_scale"].shape[0] != call["x"].shape[0]:
            yield Finding("scale_shape", f"{call['x_scale'].shape[0]} scale rows for {call['x'].shape[0]} rows")


def _contract(target: str) -> Contract:
    return Contract(
        target=target,
        kind="gemm",
        backend="torch",
        checks=("test_rows_match",),
        key=("x", "w@", "x_scale+", "w_scale@", "dtype="),
    )


def _operands(rows: int = 4, scale_rows: int | None = None):
    x, w = torch.randn(rows, 8), torch.randn(3, 8)
    return x, w, torch.ones(scale_rows or rows, 1), torch.ones(3, 1)


def test_enable_before_import_patches_on_import(make_module, quiet_log):
    quantguard.register(_contract("qgt_late.ops.kernel"))
    with capture_events() as events:
        quantguard.enable(targets="qgt_late.*", log=quiet_log)
        module = make_module("qgt_late.ops", KERNEL)
        assert isinstance(module.kernel, Guard)
        module.kernel(*_operands(4, 2))
    assert [e["target"] for e in events.named("patched")] == ["qgt_late.ops.kernel"]
    assert events.violations(check="scale_shape")


def test_disable_unbinds_guards_that_imports_after_enable_took(make_module, quiet_log):
    """ATOM imported after enable() holds the guard itself (``from aiter import ...``); disable puts originals back."""
    quantguard.register(_contract("qgt_after.ops.kernel"))
    quantguard.enable(targets="qgt_after.*", log=quiet_log)
    ops = make_module("qgt_after.ops", KERNEL)
    package = make_module("qgt_after", "from qgt_after.ops import kernel\n")  # a package re-export
    user = make_module(
        "qgt_after_user", "from qgt_after import kernel\n\nclass Layer:\n    fn = staticmethod(kernel)\n"
    )
    held = user.kernel
    assert isinstance(held, Guard) and package.kernel is held
    quantguard.disable()
    original = held.__wrapped__
    assert ops.kernel is original and package.kernel is original and user.kernel is original
    assert user.Layer.__dict__["fn"].__func__ is original
    with capture_events() as events:  # a guard something still holds (a local, a partial) is inert
        held(*_operands(4, 2))
    assert not events


def test_enable_after_import_rebinds_every_alias(make_module, quiet_log):
    ops = make_module("qgt_pkg.ops", KERNEL)
    package = make_module("qgt_pkg", "from qgt_pkg.ops import kernel, other\n")
    user = make_module(
        "qgt_user",
        """
        from qgt_pkg import kernel
        from qgt_pkg.ops import kernel as renamed

        class Layer:
            impl = staticmethod(kernel)
            plain = kernel

            def run(self, *args):
                return self.impl(*args)
    """,
    )
    original = ops.kernel
    quantguard.register(_contract("qgt_pkg.ops.kernel"))
    with capture_events() as events:
        quantguard.enable(targets="qgt_pkg.*", log=quiet_log)
        guard = ops.kernel
        assert isinstance(guard, Guard)
        assert package.kernel is guard and user.kernel is guard and user.renamed is guard
        assert user.Layer.__dict__["impl"].__func__ is guard
        assert user.Layer.__dict__["plain"] is guard
        for call in (ops.kernel, package.kernel, user.renamed, user.Layer().run):
            call(*_operands(4, 2))
        quantguard.disable()
    patched = events.named("patched")[0]
    assert patched["aliases"] == 5
    assert {"qgt_pkg.kernel", "qgt_user.kernel", "qgt_user.renamed"} <= set(patched["alias_names"])
    summary = events.named("summary")[0]
    assert summary["calls"]["qgt_pkg.ops.kernel"] == 4
    assert summary["violations"]["qgt_pkg.ops.kernel"]["scale_shape"] == 4
    for place in (
        ops.kernel,
        package.kernel,
        user.kernel,
        user.renamed,
        user.Layer.__dict__["plain"],
        user.Layer.__dict__["impl"].__func__,
    ):
        assert place is original


def test_function_stored_on_a_class_still_binds_self(make_module, quiet_log):
    module = make_module(
        "qgt_method",
        """
        class Holder:
            def scale(self, x, factor=2.0):
                return x * factor
    """,
    )
    quantguard.register(
        Contract(target="qgt_method:Holder.scale", kind="kernel", backend="torch", key=("x", "factor="))
    )
    quantguard.enable(targets="qgt_method*", log=quiet_log)
    assert isinstance(module.Holder.__dict__["scale"], Guard)
    assert torch.equal(module.Holder().scale(torch.ones(2)), torch.full((2,), 2.0))
    quantguard.disable()
    assert not isinstance(module.Holder.__dict__["scale"], Guard)


def test_instance_attribute_target_is_restored_by_deleting_it(make_module, quiet_log):
    module = make_module(
        "qgt_inst",
        """
        class Gemm:
            def mm(self, x, w):
                return x @ w.t()
        tgemm = Gemm()
    """,
    )
    quantguard.register(Contract(target="qgt_inst:tgemm.mm", kind="gemm", backend="torch", key=("x", "w")))
    quantguard.enable(targets="qgt_inst*", log=quiet_log)
    assert "mm" in vars(module.tgemm)
    module.tgemm.mm(torch.ones(2, 3), torch.ones(4, 3))
    quantguard.disable()
    assert "mm" not in vars(module.tgemm)


def test_enable_and_disable_are_idempotent(make_module, quiet_log):
    make_module("qgt_idem", KERNEL)
    quantguard.register(_contract("qgt_idem.kernel"))
    with capture_events() as events:
        first = quantguard.enable(targets="qgt_idem.*", log=quiet_log)
        assert quantguard.enable(targets="qgt_idem.*", log=quiet_log) is first
        assert quantguard.disable() is not None
        assert quantguard.disable() is None
    assert len(events.named("patched")) == 1
    assert len(events.named("enabled")) == 1 and len(events.named("disabled")) == 1


def test_reconfiguring_changes_mode(make_module, quiet_log):
    module = make_module("qgt_reconf", KERNEL)
    quantguard.register(_contract("qgt_reconf.kernel"))
    quantguard.enable(targets="qgt_reconf.*", log=quiet_log)
    module.kernel(*_operands(4, 2))
    quantguard.enable(targets="qgt_reconf.*", log=quiet_log, mode="raise")
    with pytest.raises(quantguard.QuantGuardViolation, match="scale_shape"):
        module.kernel(*_operands(4, 2))


def test_targets_and_disabled_targets_filter(make_module, quiet_log):
    module = make_module("qgt_filter", KERNEL)
    quantguard.register(_contract("qgt_filter.kernel"))
    quantguard.register(Contract(target="qgt_filter.other", kind="kernel", backend="torch", key=("x",)))
    quantguard.enable(targets="qgt_filter.*", disabled_targets="*.other", log=quiet_log)
    assert isinstance(module.kernel, Guard) and not isinstance(module.other, Guard)


@pytest.mark.parametrize(
    "target, level, reason",
    [
        ("qgt_missing_attr.no_such_function", "warning", "has no attribute"),
        ("qgt_absent_pkg.ops.kernel", "info", "not installed"),
    ],
)
def test_missing_target_is_one_event_not_an_exception(make_module, quiet_log, target, level, reason):
    make_module("qgt_missing_attr", KERNEL)
    quantguard.register(Contract(target=target, kind="kernel", backend="torch"))
    with capture_events() as events:
        quantguard.enable(targets=target.split(".")[0] + "*", log=quiet_log)
    missing = events.named("target_missing")
    assert len(missing) == 1 and missing[0]["level"] == level and reason in missing[0]["reason"]


def test_same_function_under_two_contracts_is_wrapped_once(make_module, quiet_log):
    module = make_module("qgt_twice", KERNEL + "\nsame = kernel\n")
    quantguard.register(_contract("qgt_twice.kernel"))
    quantguard.register(_contract("qgt_twice.same"))
    quantguard.enable(targets="qgt_twice.*", log=quiet_log)
    assert module.kernel is module.same
    assert isinstance(module.kernel, Guard) and not isinstance(module.kernel.__wrapped__, Guard)


def test_reimported_module_is_patched_again(make_module, quiet_log):
    quantguard.register(_contract("qgt_reimport.kernel"))
    quantguard.enable(targets="qgt_reimport.*", log=quiet_log)
    first = make_module("qgt_reimport", KERNEL)
    assert isinstance(first.kernel, Guard)
    del sys.modules["qgt_reimport"]
    again = __import__("qgt_reimport")
    assert again is not first and isinstance(again.kernel, Guard)


def test_guard_keeps_introspection(make_module, quiet_log):
    module = make_module("qgt_intro", KERNEL)
    original = module.kernel
    quantguard.register(_contract("qgt_intro.kernel"))
    quantguard.enable(targets="qgt_intro.*", log=quiet_log)
    assert module.kernel.__wrapped__ is original
    assert module.kernel.__name__ == "kernel" and module.kernel.__module__ == "qgt_intro"
    import inspect

    assert list(inspect.signature(module.kernel).parameters) == ["x", "w", "x_scale", "w_scale", "dtype"]
