"""The scale-fault matrix on a GPU, with AITER's real Triton kernels compiled for it (not interpreted).

    python tests/real_aiter/real_scale_faults_gpu.py THIRD_PARTY     # prints one JSON line per case

Loads only AITER's Triton wrappers and kernels (``real_aiter_triton``: gfx950 configs, AMD-only
launch options dropped), enables quantguard at 100% sampling, and runs the same scenarios and
cases as ``test_real_scale_faults.py`` with the tensors on ``cuda``.  Run by
``test_real_scale_faults.py::test_the_matrix_on_a_gpu`` where a CUDA device exists.
"""

from __future__ import annotations

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main(third_party: str) -> None:
    os.environ["QUANTGUARD_SCENARIO_DEVICE"] = "cuda"
    sys.path[:0] = [third_party, HERE]
    import real_aiter_triton

    real_aiter_triton.install("gfx950")
    real_aiter_triton.strip_amd_kwargs()
    import real_scenarios
    from test_real_scale_faults import CLEAN, FAULTS

    import quantguard
    from quantguard.engine.lifecycle import current_runtime
    from quantguard.testing import capture_events

    class Context:
        @property
        def aiter(self):
            import aiter

            return aiter

        @property
        def runtime(self):
            return current_runtime()

    quantguard.enable(sample_rate=1.0, gfx="gfx950", log=os.devnull, summary_at_exit=False)
    # imported (and patched, with their static scans) before the cases: patch-time events are not a case's
    import importlib

    for module in ("aiter.ops.triton.quant", "aiter.ops.triton.gemm.basic.gemm_a8w8_blockscale"):
        importlib.import_module(module)
    cases = [("scales.clean", tuple(params.items()), None) for params in CLEAN] + [
        (name, params, FAULTS[(name, params)]) for name, params in sorted(FAULTS)
    ]
    for name, params, expected in cases:
        with capture_events() as events:
            try:
                value = real_scenarios.SCENARIOS[name].run(Context(), **dict(params))
                error = None
                current_runtime().executor.flush()  # on CUDA the shadow is judged on the drainer thread
                current_runtime().reporter.flush()
            except Exception as exc:  # a case that breaks is a result, reported as such
                value, error = {}, f"{type(exc).__name__}: {exc}"[:300]
        violations = sorted({(e["target"], e["check"]) for e in events.violations()})
        problems = [
            e["event"] for e in events if e["event"] in ("quantguard.internal_error", "quantguard.target_mismatch")
        ]
        print(
            json.dumps(
                {
                    "scenario": name,
                    "params": dict(params),
                    "expected": sorted(expected[1]) if expected else [],
                    "consumer": expected[0] if expected else None,
                    "violations": violations,
                    "problems": problems,
                    "error": error,
                    "finite": value.get("finite"),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1])
