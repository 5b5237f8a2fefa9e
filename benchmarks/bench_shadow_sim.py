"""Shadow cost on CPU with the simulated AITER: FP8 per-token GEMMs (``aiter.gemm_a8w8_CK``), off vs on.

The simulator's kernels are plain torch on the CPU, so a "kernel" costs what
its fp32 matmul costs and the reference is synchronous (no side stream):
this measures quantguard's Python and reference work against a CPU GEMM,
side by side in one run.  Variants: quantguard off, a bare
``wrapt.FunctionWrapper`` pass-through, quantguard at 1% and at 100%
sampling.  Best of the interleaved repeats.

    python benchmarks/bench_shadow_sim.py [--calls 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch
import wrapt

import quantguard
import quantguard.sim as sim

SHAPES = [(1024, 1024), (2048, 512)]
ROWS = [1, 16, 256]


def _operands(aiter, m: int, n: int, k: int):
    fp8 = aiter.dtypes.fp8
    x = torch.randn(m, k).to(torch.bfloat16)
    xq, xs = aiter.per_token_quant_hip(x, quant_dtype=fp8)
    w = torch.randn(n, k) * 0.05
    ws = w.abs().amax(1, keepdim=True) / torch.finfo(fp8).max
    return xq, (w / ws).to(fp8), xs, ws


def _pass_through(wrapped, instance, args, kwargs):
    return wrapped(*args, **kwargs)


def _loop(module, operands, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        module.gemm_a8w8_CK(*operands)
    return (time.perf_counter() - start) / calls * 1e6


def _measure(module, operands, calls: int, variant, log: str) -> float:
    original = module.gemm_a8w8_CK
    if variant == "wrapt":
        module.gemm_a8w8_CK = wrapt.FunctionWrapper(original, _pass_through)
    elif variant is not None:
        quantguard.enable(sample_rate=variant, log=log, summary_at_exit=False, seed=0)
    try:
        _loop(module, operands, 5)
        return _loop(module, operands, calls)
    finally:
        if variant == "wrapt":
            module.gemm_a8w8_CK = original
        elif variant is not None:
            quantguard.disable()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    sim.install("gfx942")
    import aiter

    log = os.path.join(tempfile.mkdtemp(prefix="qg-sim-bench-"), "events.jsonl")
    print(
        f"simulated AITER on CPU (1 thread), torch {torch.__version__}, {args.calls} calls per loop, "
        f"best of {args.repeats} interleaved repeats\n"
    )
    print(
        f"{'N x K':>11} {'M':>5} {'off us':>8} {'wrapt us':>9} {'1% us':>8} {'100% us':>8} {'wrapt ratio':>12} "
        f"{'1% ratio':>9} {'100% ratio':>11}"
    )
    for n, k in SHAPES:
        for m in ROWS:
            operands = _operands(aiter, m, n, k)
            best = {None: float("inf"), "wrapt": float("inf"), 0.01: float("inf"), 1.0: float("inf")}
            for _ in range(args.repeats):
                for variant in best:
                    best[variant] = min(best[variant], _measure(aiter, operands, args.calls, variant, log))
            off = best[None]
            print(
                f"{n:>5} x {k:<5} {m:>5} {off:8.1f} {best['wrapt']:9.1f} {best[0.01]:8.1f} {best[1.0]:8.1f} "
                f"{best['wrapt'] / off:12.3f} {best[0.01] / off:9.3f} {best[1.0] / off:11.2f}",
                flush=True,
            )
    sim.uninstall()


if __name__ == "__main__":
    main()
