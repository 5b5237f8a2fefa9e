"""``quantguard.attach(model)``: events and the summary name the module that made the call."""

from __future__ import annotations

import quantguard
from quantguard.sim import workload
from quantguard.testing import capture_events


def test_attach_names_events_and_summary_by_layer(tmp_path):
    with capture_events() as events:
        quantguard.enable(log=str(tmp_path / "log.jsonl"), sample_rate=1.0)
        with workload.deploy(arch="gfx942", backend="ck", faults=("gemm_reads_scale_wrong_major",)) as deployment:
            model = workload.build_model(deployment)
            hooks = quantguard.attach(model)
            workload.generate(model, [1, 2, 3, 4], max_new_tokens=2)
            hooks.remove()
        summary = quantguard.disable()
    layers = {e["layer"] for e in events.named("shadow") if e.get("layer")}
    assert any(layer.startswith("layers.") for layer in layers), layers
    flagged = [e for e in events.violations(check="numerics") if e.get("layer")]
    assert flagged and all("." in e["layer"] for e in flagged)
    per_layer = summary["layers"]
    assert per_layer and all(
        set(stats) == {"samples", "failed", "min_cosine", "mean_cosine"} for stats in per_layer.values()
    )
    assert any(stats["failed"] for stats in per_layer.values())
