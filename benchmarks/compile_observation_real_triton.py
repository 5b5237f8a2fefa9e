"""AITER's real Triton quant -> GEMM chain under torch.compile with quantguard: breaks and observed calls.

Needs a GPU that runs AITER's Triton kernels (an NVIDIA H200 was used: see
``../shared/aiter_api.md``, "Real AITER on NVIDIA") and the real AITER tree
(``--third-party``, default ``../shared/third_party``). Two chains, as ATOM's linear
layers call them with ``ATOM_USE_TRITON_GEMM``: blockscale (``fused_flatten_fp8_group_quant``
-> ``gemm_a8w8_blockscale``) and per-token (``dynamic_per_token_quant_fp8_i8`` ->
``gemm_a8w8``). For each backend and ``fullgraph`` setting it prints graph breaks with
quantguard off and on, guarded calls observed per compiled forward against eager, and
the largest output difference against eager without quantguard.

    python benchmarks/compile_observation_real_triton.py [--third-party PATH] [--m 32]
"""

from __future__ import annotations

import argparse
import os
import sys

import torch


def _load(third_party: str):
    sys.path.insert(0, third_party)
    import real_aiter_triton

    real_aiter_triton.install("gfx950")
    real_aiter_triton.strip_amd_kwargs()


def _chain(m: int, n: int, k: int):
    from aiter.ops.triton.gemm.basic import gemm_a8w8 as per_token_gemm
    from aiter.ops.triton.gemm.basic import gemm_a8w8_blockscale as block_gemm
    from aiter.ops.triton.quant import fused_fp8_quant, quant

    fp8 = torch.float8_e4m3fn
    torch.manual_seed(0)
    w = (torch.randn(n, k, device="cuda") * 0.05).to(fp8)
    w_block_scale = torch.rand(n // 128, k // 128, device="cuda") + 0.5
    w2 = (torch.randn(n, n, device="cuda") * 0.05).to(fp8)
    w2_row_scale = torch.rand(n, 1, device="cuda") + 0.5

    def forward(x):
        # looked up at call time, as ATOM's module globals are: the guards are what is there
        q, x_scale = fused_fp8_quant.fused_flatten_fp8_group_quant(x.view(m, 1, k), group_size=128, dtype_quant=fp8)
        y = block_gemm.gemm_a8w8_blockscale(q, w, x_scale, w_block_scale, dtype=torch.bfloat16)
        qx = torch.empty(m, n, dtype=fp8, device="cuda")
        row_scale = torch.empty(m, 1, dtype=torch.float32, device="cuda")
        quant.dynamic_per_token_quant_fp8_i8(qx, y, row_scale)
        return per_token_gemm.gemm_a8w8(qx, w2, row_scale, w2_row_scale, dtype=torch.bfloat16)

    x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16) * 4
    return forward, x


def _breaks() -> int:
    from torch._dynamo.utils import counters

    return sum(counters["graph_break"].values())


def _calls() -> int:
    from quantguard.engine import lifecycle

    runtime = lifecycle.current_runtime()
    return sum(runtime.call_counts().values()) if runtime is not None else 0


def _compiled(forward, x, backend: str, fullgraph: bool):
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    compiled = torch.compile(forward, backend=backend, fullgraph=fullgraph)
    try:
        compiled(x)
    except Exception as exc:
        return None, _breaks(), type(exc).__name__
    return compiled, _breaks(), "ok"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--third-party", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "third_party")
    )
    parser.add_argument("--m", type=int, default=32)
    parser.add_argument("--backends", default="eager,aot_eager,inductor")
    options = parser.parse_args()
    _load(options.third_party)
    import quantguard

    forward, x = _chain(options.m, 1024, 1024)
    reference = forward(x)
    print(
        "backend | fullgraph | breaks off | breaks on | compiled off/on | calls/fwd eager | "
        "calls/fwd compiled | max |diff| | violations"
    )
    print("--- | --- | --- | --- | --- | --- | --- | --- | ---")
    for backend in options.backends.split(","):
        for fullgraph in (False, True):
            _, breaks_off, status_off = _compiled(forward, x, backend, fullgraph)
            from quantguard.testing import capture_events

            with capture_events() as events:
                quantguard.enable(log="stderr", sample_rate=1.0, gfx="gfx950")
                try:
                    before = _calls()
                    forward(x)
                    eager_calls = _calls() - before
                    compiled, breaks_on, status_on = _compiled(forward, x, backend, fullgraph)
                    compiled_calls, difference = None, None
                    if compiled is not None:
                        before = _calls()
                        out = compiled(x)
                        torch.cuda.synchronize()
                        compiled_calls = _calls() - before
                        difference = float((out.float() - reference.float()).abs().max())
                finally:
                    quantguard.disable()
            violations = sorted({f"{e['check']}@{e['target'].rsplit('.', 1)[-1]}" for e in events.violations()})
            print(
                f"{backend} | {fullgraph} | {breaks_off} | {breaks_on} | {status_off}/{status_on} | "
                f"{eager_calls} | {compiled_calls} | {difference} | {violations or 'none'}"
            )


if __name__ == "__main__":
    main()
