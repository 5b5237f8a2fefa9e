"""Light eager samples end to end on a CPU, with the Triton interpreter running the snapshot kernel.

Run as a subprocess with ``TRITON_INTERPRET=1`` by ``test_eager_snapshots.py``;
prints one JSON line.  ``allow_cpu`` lets CPU calls take the light path that
CUDA calls take in production.
"""

from __future__ import annotations

import json
import sys

import torch
from fake_gemm import BIAS, Faults, contract, product, reset
from fake_gemm import layers as make_layers

import quantguard
from quantguard.testing import capture_events

SHAPES = [(256, 512), (128, 256), (256, 512)]  # (N, K); layers 0 and 2 share a layout (one batch)


def gemm(x, w, x_scale, w_scale):
    return product(x, w, x_scale, w_scale)


def main(scenario: str) -> dict:
    reset()
    layers = make_layers(SHAPES)
    if scenario == "bias":
        for _, w, _, _ in layers:
            BIAS[id(w)] = torch.zeros(w.shape[0])
    module = sys.modules[__name__]
    interval = 0.0 if scenario == "thorough_only" else 3600.0
    with capture_events() as events:
        runtime = quantguard.enable(
            log="/dev/null",
            rate_limit_interval=1e-6,
            sample_rate=1.0,
            sample_first=1,
            thorough_interval=interval,
            summary_at_exit=False,
        )
        runtime.snapshots.allow_cpu = True
        for step in range(4):
            if scenario == "output" and step == 2:
                Faults.output_factor = 1.5
            for layer in layers:
                module.gemm(*layer)
        summary = quantguard.disable()
    shadow = events.named("shadow")
    return {
        "light": [e for e in shadow if e.get("snapshot")].__len__(),
        "thorough": [e for e in shadow if not e.get("snapshot")].__len__(),
        "light_passed": {e["snapshot_sample"]: e["passed"] for e in shadow if e.get("snapshot")},
        "light_kernels": sorted({e.get("reference_kernels") for e in shadow if e.get("snapshot")}),
        "samples": [e["snapshot_sample"] for e in shadow if e.get("snapshot")],
        "rows_compared": sorted({e["rows_compared"] for e in shadow if e.get("snapshot")}),
        "violations": sorted({e["check"] for e in events.violations()}),
        "internal_errors": [e["error"] for e in events.named("internal_error")],
        "stats": summary["eager_snapshots"],
    }


if __name__ == "__main__":
    quantguard.register(contract(f"{__name__}.gemm"))
    print(json.dumps({scenario: main(scenario) for scenario in sys.argv[1:]}, default=str))
