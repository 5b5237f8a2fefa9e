"""The shadow queue's gauge and dropped-jobs counter on a real GPU (skipped without CUDA).

On a CPU shadow work is synchronous, so these two metrics never move there;
on CUDA the judging runs on a drainer thread behind a bounded queue.
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

import quantguard  # noqa: E402
from quantguard import telemetry  # noqa: E402
from quantguard.testing import capture_events  # noqa: E402

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _value(text: str, name: str) -> float:
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name)


def test_queue_depth_and_dropped_jobs_follow_a_stalled_drainer_without_a_host_sync(tmp_path):
    x = torch.randn(256, 1024, device="cuda")
    w = torch.randn(1024, 1024, device="cuda") * 0.05
    scale_a = x.abs().amax(1, keepdim=True).float() / 448
    scale_b = w.abs().amax(1, keepdim=True).t().float().contiguous() / 448
    a = (x / scale_a).to(torch.float8_e4m3fn)
    b = (w / scale_b.t()).to(torch.float8_e4m3fn).t()

    def gemm() -> None:
        torch._scaled_mm(a, b, scale_a=scale_a, scale_b=scale_b, out_dtype=torch.bfloat16)

    with capture_events() as events:
        # thorough_interval=0: every sampled call queues its full checks (no one-snapshot light samples)
        runtime = quantguard.enable(
            sample_rate=1.0, thorough_interval=0, metrics=True, shadow_queue_size=2, log=str(tmp_path / "log.jsonl")
        )
        gemm()
        assert runtime._executor.flush(timeout=30)
        idle = telemetry.metrics_text()
        # A drainer that falls behind (here: held between jobs, as a busy host would starve it):
        # the queue fills to its bound, later samples are dropped and counted, the engine never waits.
        runtime._executor.pause()
        torch.cuda.set_sync_debug_mode("error")
        try:
            for _ in range(10):
                gemm()
            stalled = telemetry.metrics_text()
        finally:
            torch.cuda.set_sync_debug_mode(0)
            runtime._executor.resume()
        assert runtime._executor.flush(timeout=30)
        drained = telemetry.metrics_text()
        quantguard.disable()
    assert _value(idle, "quantguard_shadow_queue_depth") == 0 and _value(idle, "quantguard_shadow_dropped_total") == 0
    assert _value(stalled, "quantguard_shadow_queue_depth") == 2  # shadow_queue_size
    assert _value(stalled, "quantguard_shadow_dropped_total") == 8
    assert _value(drained, "quantguard_shadow_queue_depth") == 0
    assert events.named("summary")[0]["shadow_dropped"] == _value(drained, "quantguard_shadow_dropped_total") == 8
    assert not events.named("internal_error")
