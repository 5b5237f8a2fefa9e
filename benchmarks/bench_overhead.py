"""Per-call cost of a guarded call, side by side in one run: unpatched, bare wrapt, quantguard.

The guarded function is a no-op with ``gemm_a8w8_blockscale``'s signature,
guarded by AITER's own contract for it (key, plan checks: scale shapes,
dtypes, layouts, FP8 variant, ASM policy) so the cost measured is
quantguard's, not a kernel's.  After the first call of a signature the plan
verdict is cached: a call costs the metadata signature plus one dict lookup.

    python benchmarks/bench_overhead.py            # figures in benchmarks/README.md

Prints ns/call (best of several repeats) and the added cost of each wrapper
as a ratio to bare wrapt's added cost.  No assertion: read the numbers.
The custom-op row is an entry point (AITER's ``wrapper_custom`` around
``torch.ops``), which quantguard guards at the op's dispatch; the metrics row
times the unsampled guarded call with Prometheus metrics off and on.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import timeit
from pathlib import Path
from typing import Any

import torch
import wrapt

import quantguard
from quantguard.contracts import aiter as aiter_contracts

MODULE = textwrap.dedent("""
    def gemm_a8w8_blockscale(XQ, WQ, x_scale, w_scale, dtype=None, isBpreshuffled=False):
        return None
""")


def _operands() -> tuple:
    fp8 = torch.float8_e4m3fnuz
    x = torch.randn(32, 512).to(fp8)
    w = torch.randn(256, 512).to(fp8)
    return x, w, torch.rand(32, 4), torch.rand(2, 4)


def _time(call, args, kwargs, number: int, repeat: int) -> float:
    timings = timeit.repeat(lambda: call(*args, **kwargs), number=number, repeat=repeat)
    return min(timings) / number * 1e9


def _pass_through(wrapped, instance, args, kwargs):
    return wrapped(*args, **kwargs)


def _bench_module(key: tuple[str, ...] | None) -> tuple[str, Any, Any]:
    """The no-op kernel module on sys.path, and its contract registered: (directory, module, contract)."""
    directory = tempfile.mkdtemp(prefix="qg-bench-")
    Path(directory, "qg_bench_kernels.py").write_text(MODULE)
    sys.path.insert(0, directory)
    import qg_bench_kernels as kernels

    template = next(c for c in aiter_contracts.CONTRACTS if c.target.endswith("gemm_op_a8w8.gemm_a8w8_blockscale"))
    contract = dataclasses.replace(
        template, target="qg_bench_kernels.gemm_a8w8_blockscale", key=key if key is not None else template.key
    )
    quantguard.register(contract)
    return directory, kernels, contract


def _unload(directory: str, contract: Any) -> None:
    quantguard.engine.lifecycle.unregister(contract.target)
    sys.path.remove(directory)
    del sys.modules["qg_bench_kernels"]


def measure(number: int, repeat: int, sample_rate: float, key: tuple[str, ...] | None) -> dict[str, float]:
    directory, kernels, contract = _bench_module(key)
    original = kernels.gemm_a8w8_blockscale
    bare = wrapt.FunctionWrapper(original, _pass_through)
    quantguard.enable(
        targets="qg_bench_kernels.*",
        log=str(Path(directory, "events.jsonl")),
        gfx="gfx942",
        sample_rate=sample_rate,
        sample_first=0 if sample_rate == 0 else 3,
        summary_at_exit=False,
    )
    guarded = kernels.gemm_a8w8_blockscale
    args, kwargs = _operands(), {"dtype": torch.bfloat16}
    guarded(*args, **kwargs)  # first call of the signature: plan checks run once
    results = {"plain": [], "wrapt": [], "quantguard": []}
    for _ in range(3):  # interleave so drift hits every variant alike
        results["plain"].append(_time(original, args, kwargs, number, repeat))
        results["wrapt"].append(_time(bare, args, kwargs, number, repeat))
        results["quantguard"].append(_time(guarded, args, kwargs, number, repeat))
    quantguard.disable()
    _unload(directory, contract)
    return {name: min(values) for name, values in results.items()}


def measure_metrics(number: int, repeat: int) -> dict[str, float] | None:
    """The unsampled fast path with Prometheus metrics off and on, interleaved in one enabled runtime.

    Reconfiguring between rounds switches only the metrics (the guards stay), so
    the two columns differ by what metrics add to a call: nothing is expected.
    ``None`` when prometheus-client is not installed.
    """
    if importlib.util.find_spec("prometheus_client") is None:
        return None
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    directory, kernels, contract = _bench_module(None)
    options = {
        "targets": "qg_bench_kernels.*",
        "log": str(Path(directory, "events.jsonl")),
        "gfx": "gfx942",
        "sample_rate": 0.0,
        "sample_first": 0,
        "summary_at_exit": False,
    }
    quantguard.enable(**options)
    guarded = kernels.gemm_a8w8_blockscale
    args, kwargs = _operands(), {"dtype": torch.bfloat16}
    guarded(*args, **kwargs)
    results: dict[str, list[float]] = {"off": [], "on": []}
    for _ in range(3):
        for mode, metrics_port in (("off", 0), ("on", port)):
            quantguard.enable(**options, metrics_port=metrics_port)
            results[mode].append(_time(guarded, args, kwargs, number, repeat))
    quantguard.disable()
    _unload(directory, contract)
    return {mode: min(values) for mode, values in results.items()}


def _metrics_in_multiprocess_mode(number: int, repeat: int) -> dict[str, float]:
    """:func:`measure_metrics` in a child process whose prometheus-client runs in multiprocess mode.

    prometheus-client picks its file-backed values when first imported, so the
    mode needs a fresh process with ``PROMETHEUS_MULTIPROC_DIR`` set.
    """
    with tempfile.TemporaryDirectory() as directory:
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": directory}
        argv = [sys.executable, __file__, "--metrics-only", "--number", str(number), "--repeat", str(repeat)]
        done = subprocess.run(argv, env=env, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


OP_MODULE = textwrap.dedent("""
    import torch

    _lib = torch.library.Library("qgbench", "FRAGMENT")
    if not hasattr(torch.ops.qgbench, "gemm_a8w8_blockscale"):
        _lib.define("gemm_a8w8_blockscale(Tensor XQ, Tensor WQ, Tensor x_scale, Tensor w_scale, "
                    "ScalarType dtype=bfloat16, bool isBpreshuffled=False) -> Tensor")
        _lib.impl("gemm_a8w8_blockscale", lambda XQ, WQ, x_scale, w_scale, dtype=None, isBpreshuffled=False: XQ,
                  "CPU")

    def _custom(loadName):
        def wrapper_custom(*args, **kwargs):  # AITER's torch_compile_guard wrapper, in shape
            return getattr(torch.ops.qgbench, loadName)(*args, **kwargs)
        return wrapper_custom

    gemm_a8w8_blockscale = _custom("gemm_a8w8_blockscale")
""")


def measure_custom_op(number: int, repeat: int) -> dict[str, float]:
    """An AITER custom-op entry point: quantguard guards the op at its dispatch (BackendSelect)."""
    directory = tempfile.mkdtemp(prefix="qg-bench-op-")
    Path(directory, "qg_bench_ops.py").write_text(OP_MODULE)
    sys.path.insert(0, directory)
    import qg_bench_ops as ops

    original = ops.gemm_a8w8_blockscale
    bare = wrapt.FunctionWrapper(original, _pass_through)
    template = next(c for c in aiter_contracts.CONTRACTS if c.target.endswith("gemm_op_a8w8.gemm_a8w8_blockscale"))
    contract = dataclasses.replace(
        template, target="qg_bench_ops.gemm_a8w8_blockscale", op="qgbench::gemm_a8w8_blockscale"
    )
    quantguard.register(contract)
    args, kwargs = _operands(), {"dtype": torch.bfloat16}
    results: dict[str, list[float]] = {"plain": [], "wrapt": [], "quantguard": []}
    for _ in range(3):
        results["plain"].append(_time(original, args, kwargs, number, repeat))
        results["wrapt"].append(_time(bare, args, kwargs, number, repeat))
        quantguard.enable(
            targets="qg_bench_ops.*",
            log=str(Path(directory, "events.jsonl")),
            gfx="gfx942",
            sample_rate=0.0,
            sample_first=0,
            summary_at_exit=False,
        )
        original(*args, **kwargs)  # first call of the signature: plan checks run once
        results["quantguard"].append(_time(original, args, kwargs, number, repeat))  # the same function object
        quantguard.disable()
    quantguard.engine.lifecycle.unregister(contract.target)
    sys.path.remove(directory)
    del sys.modules["qg_bench_ops"]
    return {name: min(values) for name, values in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--number", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--metrics-only", action="store_true", help=argparse.SUPPRESS)  # the multiprocess child
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.metrics_only:
        print(json.dumps(measure_metrics(args.number, args.repeat)))
        return
    full_key = ("XQ", "WQ", "x_scale+", "w_scale", "dtype=", "isBpreshuffled=")
    variants = [
        ("metadata checks, no sampling (sample_rate=0)", 0.0, None),
        ("metadata checks + default sampling (1%)", 0.01, None),
        ("no sampling, full metadata key (weights by shape/dtype, not identity)", 0.0, full_key),
        ("decomposition: empty key (the generated __call__ alone, no metadata)", 0.0, ()),
        ("decomposition: x + x_scale metadata only (weights by identity, no kwargs)", 0.0, ("XQ", "x_scale+")),
    ]
    print(
        f"python {sys.version.split()[0]}, torch {torch.__version__}, wrapt {wrapt.__version__}, "
        f"{args.number} calls x {args.repeat} repeats, best of 3 interleaved rounds\n"
    )
    print(
        f"{'variant':<72} {'plain ns':>9} {'wrapt ns':>9} {'guard ns':>9} {'wrapt +ns':>10} {'guard +ns':>10} "
        f"{'ratio':>6}"
    )
    for label, rate, key in variants:
        r = measure(args.number, args.repeat, rate, key)
        wrapt_added, guard_added = r["wrapt"] - r["plain"], r["quantguard"] - r["plain"]
        print(
            f"{label:<72} {r['plain']:9.0f} {r['wrapt']:9.0f} {r['quantguard']:9.0f} {wrapt_added:10.0f} "
            f"{guard_added:10.0f} {guard_added / wrapt_added:6.2f}"
        )
    r = measure_custom_op(args.number // 5, args.repeat)
    wrapt_added, guard_added = r["wrapt"] - r["plain"], r["quantguard"] - r["plain"]
    print(
        f"{'custom-op entry point, guarded at its dispatch, no sampling':<72} {r['plain']:9.0f} {r['wrapt']:9.0f} "
        f"{r['quantguard']:9.0f} {wrapt_added:10.0f} {guard_added:10.0f} {guard_added / wrapt_added:6.2f}"
    )
    metrics = measure_metrics(args.number, args.repeat)
    if metrics is not None:
        print(
            f"{'no sampling, Prometheus metrics off | on (QUANTGUARD_METRICS_PORT)':<72} {metrics['off']:9.0f} "
            f"{metrics['on']:9.0f}   on/off {metrics['on'] / metrics['off']:5.3f}  (guarded ns/call; goal <= 1.05)"
        )
        shared = _metrics_in_multiprocess_mode(args.number, args.repeat)
        print(
            f"{'no sampling, metrics off | on, PROMETHEUS_MULTIPROC_DIR (writer thread)':<72} {shared['off']:9.0f} "
            f"{shared['on']:9.0f}   on/off {shared['on'] / shared['off']:5.3f}  (guarded ns/call; goal <= 1.05)"
        )
    print("\nratio = quantguard's added cost / bare wrapt.FunctionWrapper's added cost (goal: <= 1.3)")
    print(
        "custom-op row: 'plain' is AITER's wrapper_custom -> torch.ops dispatch -> a Python kernel; quantguard "
        "leaves the wrapper alone and adds a BackendSelect kernel that redispatches"
    )
    metadata_reads(args.number)


def metadata_reads(number: int) -> None:
    """What the smallest correct per-call key costs by itself: the activation's and its scale's metadata."""
    x, x_scale = _operands()[0], _operands()[2]
    names = {"x": x, "xs": x_scale, "hot": set()}
    base = min(timeit.repeat("pass", globals=names, number=number, repeat=5)) / number * 1e9
    print(f"\n{'metadata read (no call around it)':<72} {'ns':>9}")
    for statement in (
        "x.shape",
        "x.dtype",
        "xs.stride()",
        "(x.shape, x.dtype, xs.shape, xs.dtype, xs.stride()) in hot",
    ):
        cost = min(timeit.repeat(statement, globals=names, number=number, repeat=5)) / number * 1e9 - base
        print(f"{statement:<72} {cost:9.0f}")


if __name__ == "__main__":
    main()
