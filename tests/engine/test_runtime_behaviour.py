"""Threads, fork, fail-open isolation, re-entrancy, sampling and rate limiting."""

from __future__ import annotations

import os
import threading

import pytest
import torch

import quantguard
from quantguard import Contract
from quantguard.checks.base import DataCheck, Finding, Measurement, PlanCheck, register_check
from quantguard.reentrancy import suppressed
from quantguard.testing import capture_events

KERNEL = """
def kernel(x, scale, tag=None):
    return x * scale
"""


@register_check
class _AlwaysFlag(PlanCheck):
    """Test check: flags every signature whose tag is 'bad'."""

    name = "test_always_flag"

    def check(self, call):
        if call.get("tag") == "bad":
            yield Finding("test_flag", "tag is bad")


@register_check
class _Explodes(PlanCheck):
    name = "test_explodes"

    def check(self, call):
        raise ZeroDivisionError("a bug inside a check")


@register_check
class _ExplodesLater(DataCheck):
    name = "test_explodes_later"

    def measure(self, call):
        raise KeyError("a bug inside a data check")

    def judge(self, call, measurement, values):
        return []


@register_check
class _CountsInspections(DataCheck):
    name = "test_counts_inspections"
    seen: list[int] = []

    def measure(self, call):
        return Measurement({"sum": call["x"].sum().to(torch.float64)})

    def judge(self, call, measurement, values):
        type(self).seen.append(call.index)
        return []


def _use(make_module, quiet_log, checks, **options):
    module = make_module("qgt_rt", KERNEL)
    quantguard.register(
        Contract(target="qgt_rt.kernel", kind="kernel", backend="torch", checks=checks, key=("x", "scale=", "tag="))
    )
    quantguard.enable(targets="qgt_rt.*", log=quiet_log, **options)
    return module


def test_eight_threads_ten_thousand_calls_exact_counts(make_module, quiet_log):
    module = _use(make_module, quiet_log, ("test_always_flag",), rate_limit_interval=3600)
    x = torch.ones(2)
    barrier = threading.Barrier(8)

    def work(index: int) -> None:
        barrier.wait()
        for _ in range(10_000):
            module.kernel(x, 2.0, tag="bad" if index % 2 else "ok")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    with capture_events() as events:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not any(thread.is_alive() for thread in threads)
        summary = quantguard.disable()
    assert summary["calls"]["qgt_rt.kernel"] == 80_000
    assert summary["violations"]["qgt_rt.kernel"]["test_flag"] == 40_000
    logged = [e for e in events.violations(check="test_flag")]
    assert 1 <= len(logged) <= 3  # first occurrence, then the flushed count at disable
    assert max(e["count"] for e in logged) == 40_000


def test_check_that_raises_is_isolated(make_module, quiet_log):
    module = _use(make_module, quiet_log, ("test_explodes", "test_explodes_later"), sample_rate=1.0)
    with capture_events() as events:
        results = [module.kernel(torch.ones(2), 3.0) for _ in range(5)]
    assert all(torch.equal(r, torch.full((2,), 3.0)) for r in results)
    errors = events.named("internal_error")
    assert sorted(e["check"] for e in errors) == ["test_explodes", "test_explodes_later"]
    assert all("Traceback" in e["traceback"] for e in errors)
    summary = quantguard.disable()
    assert summary["internal_errors"]["qgt_rt.kernel"]["test_explodes_later"] == 5


def test_user_exceptions_propagate_unchanged(make_module, quiet_log):
    module = _use(make_module, quiet_log, ("test_always_flag",))
    with pytest.raises(TypeError):
        module.kernel(torch.ones(2))  # missing argument: the original's own error


def test_quantguards_own_work_is_not_guarded(make_module, quiet_log):
    module = _use(make_module, quiet_log, ("test_always_flag",))
    with capture_events() as events, suppressed():
        module.kernel(torch.ones(2), 1.0, tag="bad")
    assert not events.violations()


def test_sampling_first_n_then_rate_deterministic(make_module, quiet_log):
    _CountsInspections.seen = []
    module = _use(make_module, quiet_log, ("test_counts_inspections",), sample_rate=0.1, sample_first=3, seed=7)
    for _ in range(300):
        module.kernel(torch.ones(2), 1.0)
    first_run = list(_CountsInspections.seen)
    quantguard.disable()
    _CountsInspections.seen = []
    module = _use(make_module, quiet_log, ("test_counts_inspections",), sample_rate=0.1, sample_first=3, seed=7)
    for _ in range(300):
        module.kernel(torch.ones(2), 1.0)
    assert first_run[:3] == [1, 2, 3]
    assert 10 <= len(first_run) - 3 <= 60  # about 1 in 10 of the remaining 297
    assert _CountsInspections.seen == first_run  # same seed, same calls inspected


def test_new_signature_gets_its_own_first_n(make_module, quiet_log):
    _CountsInspections.seen = []
    module = _use(make_module, quiet_log, ("test_counts_inspections",), sample_rate=0.0, sample_first=2)
    for _ in range(5):
        module.kernel(torch.ones(2), 1.0)
    for _ in range(5):
        module.kernel(torch.ones(3), 1.0)
    assert _CountsInspections.seen == [1, 2, 6, 7]


def test_per_second_cap_limits_sampled_inspections(make_module, quiet_log):
    _CountsInspections.seen = []
    module = _use(
        make_module, quiet_log, ("test_counts_inspections",), sample_rate=1.0, sample_first=0, max_samples_per_second=5
    )
    for _ in range(100):
        module.kernel(torch.ones(2), 1.0)
    assert 5 <= len(_CountsInspections.seen) <= 10


def test_rate_limited_violations_keep_exact_counts(make_module, quiet_log):
    module = _use(make_module, quiet_log, ("test_always_flag",), rate_limit_interval=3600)
    with capture_events() as events:
        for _ in range(1000):
            module.kernel(torch.ones(2), 1.0, tag="bad")
        assert len(events.violations()) == 1
        summary = quantguard.disable()
    flushed = events.violations()[-1]
    assert flushed["count"] == 1000 and flushed["suppressed"] == 999 and flushed["details"]["repeat"]
    assert summary["violations"]["qgt_rt.kernel"]["test_flag"] == 1000


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_state_is_valid_in_a_forked_child(make_module, quiet_log, tmp_path):
    module = _use(make_module, quiet_log, ("test_always_flag",))
    module.kernel(torch.ones(2), 1.0)
    result = tmp_path / "child.txt"
    pid = os.fork()
    if pid == 0:  # child: guarded calls and disable must work
        try:
            out = module.kernel(torch.ones(2), 2.0, tag="bad")
            summary = quantguard.disable()
            result.write_text(f"{float(out.sum())} {summary['violations']['qgt_rt.kernel']['test_flag']}")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert result.read_text() == "4.0 1"
    assert quantguard.is_enabled()


@pytest.mark.parametrize("arch", ["gfx942", "gfx950"])
def test_calls_with_no_rows_are_valid_and_quiet(arch, quiet_log):
    """An MoE expert that got no tokens calls quant and GEMM kernels with M = 0: nothing to check."""
    import quantguard.sim as sim

    sim.install(arch)
    with capture_events() as events:
        quantguard.enable(log=quiet_log, sample_rate=1.0)
        import aiter
        from aiter.ops.triton.gemm.basic.gemm_a8w8_blockscale import gemm_a8w8_blockscale as triton_blockscale

        fp8 = aiter.dtypes.fp8
        x = torch.randn(0, 256).to(torch.bfloat16)
        w = (torch.randn(256, 256) * 0.05).to(fp8)
        xq, xs = aiter.per_group_quant_hip(x, quant_dtype=fp8, group_size=128)
        assert aiter.gemm_a8w8_blockscale(xq, w, xs, torch.rand(2, 2)).shape == (0, 256)
        assert triton_blockscale(xq, w, xs, torch.rand(2, 2)).shape == (0, 256)
        xq, xs = aiter.per_token_quant_hip(x, quant_dtype=fp8)
        assert aiter.gemm_a8w8(xq, w, xs, torch.rand(256, 1)).shape == (0, 256)
        # a malformed call with rows is still judged after the empty ones
        xq, xs = aiter.per_group_quant_hip(torch.randn(4, 256).to(torch.bfloat16), quant_dtype=fp8, group_size=128)
        with pytest.raises(RuntimeError):  # the simulated kernel rejects it too, after the guard judged it
            aiter.gemm_a8w8_blockscale(xq, w, torch.rand(4, 1), torch.rand(2, 2))
    assert not events.named("internal_error"), events.named("internal_error")
    assert [e["check"] for e in events.violations() if e["check"] == "scale_shape"] == ["scale_shape"]
