"""Never break the host: around-phase checks fail open; guards, partials and errors pickle."""

from __future__ import annotations

import copy
import functools
import pickle

import pytest
import torch

import quantguard
from quantguard import Contract
from quantguard.checks.base import AroundCheck, register_check
from quantguard.errors import QuantGuardBlocked, QuantGuardViolation
from quantguard.testing import capture_events

KERNEL = """
def kernel(x, fail=False):
    if fail:
        raise ValueError("the kernel's own error")
    return x + 1
"""


@register_check
class _BrokenAround(AroundCheck):
    """Test check: breaks before the call (``mode="before"``), converts the call's error (``"convert"``)."""

    name = "test_broken_around"
    mode = "before"

    def around(self, call, proceed, report):
        if self.mode == "before":
            raise KeyError("a bug in the check")
        try:
            return proceed()
        except ValueError as exc:
            raise RuntimeError("converted on purpose") from exc


@pytest.fixture
def kernel(make_module, quiet_log):
    quantguard.register(
        Contract(
            target="qgt_safety.kernel",
            kind="kernel",
            backend="torch",
            checks=("test_broken_around",),
            key=("x", "fail="),
        )
    )
    quantguard.enable(targets="qgt_safety.*", log=quiet_log)
    return make_module("qgt_safety", KERNEL)


def test_an_around_check_that_breaks_fails_open(kernel, monkeypatch):
    monkeypatch.setattr(_BrokenAround, "mode", "before")
    with capture_events() as events:
        assert kernel.kernel(1) == 2
    [error] = events.named("internal_error")
    assert error["check"] == "test_broken_around" and "KeyError" in error["error"]


@pytest.mark.parametrize("mode", ["before", "convert"])
def test_the_calls_own_error_still_reaches_the_host(kernel, monkeypatch, mode):
    monkeypatch.setattr(_BrokenAround, "mode", mode)
    expected = ValueError if mode == "before" else RuntimeError  # "convert" is the check's deliberate act
    with pytest.raises(expected):
        kernel.kernel(1, fail=True)


def test_guards_partials_and_models_holding_them_pickle_and_copy(kernel):
    guard = kernel.kernel
    assert pickle.loads(pickle.dumps(guard)) is guard  # a guard while enabled
    stored = functools.partial(guard, fail=False)
    model = torch.nn.Linear(2, 2)
    model.quant_func = stored  # as ATOM layers hold get_hip_quant partials
    assert copy.deepcopy(model).quant_func.func is guard
    restored = pickle.loads(pickle.dumps(model))
    assert restored.quant_func(1) == 2
    quantguard.disable()
    plain = pickle.loads(pickle.dumps(stored)).func
    assert plain is kernel.kernel and plain(1) == 2  # the plain function once disabled


@pytest.mark.parametrize(
    "error",
    [
        QuantGuardViolation("aiter.x", "scale_shape", "x_scale is [4, 1]", {"m": 4}),
        QuantGuardBlocked("aiter.asm", "ASM on gfx950", "aiter.triton", "aiter.gemm"),
    ],
    ids=["violation", "blocked"],
)
def test_errors_survive_pickling(error):
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is type(error) and str(again) == str(error) and vars(again) == vars(error)
