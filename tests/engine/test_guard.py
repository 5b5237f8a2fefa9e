"""The guard's call counter: every call counted once, and reading the count changes nothing."""

from __future__ import annotations

import torch

import quantguard
from quantguard import Contract
from quantguard.checks.base import DataCheck, Measurement, register_check

KERNEL = """
def kernel(x):
    return x + 1
"""


@register_check
class _RecordsIndices(DataCheck):
    """Test check: remembers the call index of every inspected call."""

    name = "test_guard_records_indices"
    seen: list[int] = []

    def measure(self, call):
        return Measurement({"sum": call["x"].sum().to(torch.float64)})

    def judge(self, call, measurement, values):
        type(self).seen.append(call.index)
        return []


def test_reading_the_call_count_neither_advances_it_nor_shifts_later_indices(make_module, quiet_log):
    _RecordsIndices.seen = []
    module = make_module("qgt_guard_count", KERNEL)
    quantguard.register(
        Contract(
            target="qgt_guard_count.kernel", kind="kernel", backend="torch", checks=(_RecordsIndices.name,), key=("x",)
        )
    )
    options = {"targets": "qgt_guard_count.*", "log": quiet_log, "sample_rate": 0.0, "sample_first": 2}
    quantguard.enable(**options)
    for _ in range(3):
        module.kernel(torch.ones(2))
    state = module.kernel.quantguard_state
    assert state.calls_so_far() == state.calls_so_far() == 3
    quantguard.enable(**options, rate_limit_interval=3600)  # a reconfiguration reads the count to reschedule
    for _ in range(2):
        module.kernel(torch.ones(3))  # a new signature: its first two calls are inspected
    assert _RecordsIndices.seen == [1, 2, 4, 5]
    assert quantguard.disable()["calls"]["qgt_guard_count.kernel"] == 5
