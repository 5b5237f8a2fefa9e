"""Shadow execution on a real GPU (skipped without CUDA; run on the device machine and reported).

* the simulator's kernels on CUDA: clean runs quiet, every incident caught as on CPU;
* ``torch._scaled_mm``, a real FP8 GEMM: shadow passes, a dropped scale is caught;
* no host-device synchronization with shadow at 100% (``set_sync_debug_mode("error")``);
* CUDA-graph capture and replay with quantguard enabled gives bitwise-identical outputs;
* torch.compile keeps working.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

import quantguard
from quantguard.contracts.torch_ops import CONTRACTS as TORCH_CONTRACTS
from quantguard.testing import capture_events

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

_spec = importlib.util.spec_from_file_location(
    "incident_cases", Path(__file__).parent.parent / "checks" / "test_incidents.py"
)
incidents = importlib.util.module_from_spec(_spec)
sys.modules["incident_cases"] = incidents
_spec.loader.exec_module(incidents)


def _fp8_operands(m: int = 64, n: int = 256, k: int = 512, row_wise: bool = True):
    x = torch.randn(m, k, device="cuda")
    w = torch.randn(n, k, device="cuda") * 0.05
    fp8 = torch.float8_e4m3fn
    scale_a = x.abs().amax(1, keepdim=True) / 448 if row_wise else x.abs().max().reshape(()) / 448
    scale_b = w.abs().amax(1, keepdim=True).t() / 448 if row_wise else w.abs().max().reshape(()) / 448
    a = (x / scale_a).to(fp8)
    b = (w / scale_b.t() if row_wise else w / scale_b).to(fp8).t()  # (K, N) column-major, as _scaled_mm wants
    return a, b, scale_a.float().contiguous(), scale_b.float().contiguous()


def _scaled_mm(a, b, scale_a, scale_b):
    return torch._scaled_mm(a, b, scale_a=scale_a, scale_b=scale_b, out_dtype=torch.bfloat16)


@pytest.mark.parametrize(
    "deploy",
    [
        dict(arch="gfx942", backend="ck"),
        dict(arch="gfx950", backend="ck"),
        dict(arch="gfx950", backend="triton", ck_free=True),
    ],
    ids=lambda d: "-".join(str(v) for v in d.values()),
)
def test_clean_simulated_workload_on_cuda_is_quiet(deploy, tmp_path):
    events, error = incidents.run_workload(
        {**deploy, "device": "cuda"}, sample_rate=1.0, log=str(tmp_path / "log.jsonl")
    )
    assert error is None, repr(error)
    assert not events.violations(), [(e["check"], e["message"]) for e in events.violations()]
    shadows = events.named("shadow")
    assert shadows and all(e["passed"] for e in shadows)


@pytest.mark.parametrize("case", incidents.CASES, ids=lambda case: case.name)
def test_every_fault_is_caught_on_cuda(case, tmp_path):
    events, error = incidents.run_workload(
        {**case.deployment, "device": "cuda"}, case.faults, log=str(tmp_path / "log.jsonl"), **case.options
    )
    if case.raises is not None:
        assert isinstance(error, case.raises), repr(error)
    missing = set(case.expected) - incidents.reported(events)
    assert not missing, f"not reported on CUDA: {missing}"


@pytest.mark.parametrize("row_wise", [True, False], ids=["row-wise", "per-tensor"])
def test_scaled_mm_shadow_passes(row_wise, tmp_path):
    operands = _fp8_operands(row_wise=row_wise)
    with capture_events() as events:
        quantguard.enable(sample_rate=1.0, rate_limit_interval=1e-6, log=str(tmp_path / "log.jsonl"))
        for _ in range(5):
            _scaled_mm(*operands)
        quantguard.disable()
    shadows = [e for e in events.named("shadow") if e["target"] == "torch._scaled_mm"]
    assert len(shadows) >= 1 and all(e["passed"] and e["cosine"] > 0.9999 for e in shadows)
    # the first 3 calls are thorough, the next 2 light (one device snapshot each, judged on the drainer)
    assert [bool(e.get("snapshot")) for e in shadows].count(True) == 2
    assert not events.violations()


@pytest.mark.parametrize("light", [False, True], ids=["thorough", "light"])
def test_scaled_mm_with_a_dropped_scale_is_caught(light, make_module, tmp_path):
    module = make_module(
        "qgt_scaled",
        """
        import torch
        def scaled_mm(self, mat2, scale_a, scale_b, bias=None, scale_result=None, out_dtype=None, use_fast_accum=False):
            return torch._scaled_mm(self, mat2, scale_a=scale_a, scale_b=torch.ones_like(scale_b), out_dtype=out_dtype)
    """,
    )
    quantguard.register(dataclasses.replace(TORCH_CONTRACTS[0], target="qgt_scaled.scaled_mm", signature_of=None))
    a, b, scale_a, scale_b = _fp8_operands()
    with capture_events() as events:
        quantguard.enable(
            sample_rate=1.0,
            sample_first=0,
            thorough_interval=3600 if light else 0,
            rate_limit_interval=1e-6,
            targets="qgt_scaled.*",
            log=str(tmp_path / "log.jsonl"),
        )
        for _ in range(2):  # the first sampled call of a site is thorough; with light, the second is not
            module.scaled_mm(a, b, scale_a, scale_b, out_dtype=torch.bfloat16)
        quantguard.disable()
    numerics = [e for e in events.violations(check="numerics") if bool(e["details"].get("snapshot")) == light]
    assert numerics and "norm ratio" in numerics[0]["message"]


def test_no_host_device_sync_with_shadow_at_100_percent(tmp_path):
    operands = _fp8_operands()
    with capture_events() as events:
        quantguard.enable(sample_rate=1.0, log=str(tmp_path / "log.jsonl"))
        _scaled_mm(*operands)  # first call: plan checks (metadata only)
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            for _ in range(50):
                _scaled_mm(*operands)
        finally:
            torch.cuda.set_sync_debug_mode(0)
        quantguard.disable()
    assert len([e for e in events.named("shadow") if e["target"] == "torch._scaled_mm"]) >= 1
    summary = events.named("summary")[0]
    assert summary["shadow"]["torch._scaled_mm"]["samples"] == 51 - summary["shadow_dropped"]
    assert not events.named("internal_error")


def test_cuda_graph_capture_and_replay_is_bitwise_identical(tmp_path):
    a, b, scale_a, scale_b = _fp8_operands()
    expected = _scaled_mm(a, b, scale_a, scale_b).clone()
    quantguard.enable(sample_rate=1.0, log=str(tmp_path / "log.jsonl"))
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):  # warm up outside capture (first calls are inspected)
            _scaled_mm(a, b, scale_a, scale_b)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = _scaled_mm(a, b, scale_a, scale_b)
    for _ in range(5):
        graph.replay()
    torch.cuda.synchronize()
    quantguard.disable()
    assert torch.equal(static_out, expected)


def test_torch_compile_keeps_working(tmp_path):
    a, b, scale_a, scale_b = _fp8_operands()
    expected = _scaled_mm(a, b, scale_a, scale_b)
    quantguard.enable(sample_rate=1.0, log=str(tmp_path / "log.jsonl"))
    compiled = torch.compile(lambda a, b, sa, sb: _scaled_mm(a, b, sa, sb) * 2)
    result = compiled(a, b, scale_a, scale_b)
    torch.cuda.synchronize()
    quantguard.disable()
    assert torch.equal(result, expected * 2)


def test_a_child_forked_after_light_samples_lives(tmp_path):
    """The parent's snapshot ring and pinned buffers are never freed in a forked child (that aborts it)."""
    import os

    operands = _fp8_operands()
    quantguard.enable(sample_rate=1.0, log=str(tmp_path / "log.jsonl"), summary_at_exit=False)
    try:
        for _ in range(5):  # thorough, then light: the process-wide device ring now exists
            _scaled_mm(*operands)
        torch.cuda.synchronize()
        pid = os.fork()
        if pid == 0:  # the child: quantguard's fork hooks have run; a CPU call and a summary, then exit
            try:
                torch.ones(4) + 1
                quantguard.disable()
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
    finally:
        quantguard.disable()
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"child status {status}"
