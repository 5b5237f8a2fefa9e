"""Graph checks on a GPU: replay time of captured decode steps with quantguard off and on, side by side.

Two steps of FP8 GEMMs (``torch._scaled_mm``, row-wise scales, bf16 out):
the 4-GEMM step of one transformer layer (QKV 6144x4096, O 4096x4096, up
22016x4096, down 4096x11008) and a 60-layer-like step (60 such layers with
their own weights, 240 captured GEMMs), at M = 1, 8, 32.  Each is captured
twice, once with quantguard disabled and once enabled at default settings
(1% sampling: one snapshot per call site per 100 replays), and the two graphs
are replayed in interleaved rounds; the best round of each is kept (GPU time
from CUDA events around a round of replays, and wall time per replay).
A third graph, captured without quantguard but with one no-op Triton kernel
after each GEMM, shows the floor of any per-call-site graph node.  Also
reported: graph checks judged per call site per 100 replays and the snapshot
memory.  Goals: replay time <= 1.01x, >= 1 check per site per 100
replays, snapshot memory <= 64 MiB.

    python benchmarks/bench_graphs_gpu.py [--rounds 5] [--layers 60]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch
import triton
import triton.language as tl

import quantguard


@triton.jit
def _noop(pointer):
    """The cheapest kernel a graph node can hold: the floor of any per-call-site node."""
    tl.store(pointer, tl.load(pointer) + 1)


LAYER = [(6144, 4096), (4096, 4096), (22016, 4096), (4096, 11008)]  # (N, K)


def _layer_weights(layers: int):
    weights = []
    for _ in range(layers):
        for n, k in LAYER:
            w = torch.randn(n, k, device="cuda") * 0.05
            scale_b = (w.abs().amax(1, keepdim=True) / 448).t().contiguous().float()
            weights.append(((w / scale_b.t()).to(torch.float8_e4m3fn).t(), scale_b))
    return weights


def _inputs(m: int):
    inputs = {}
    for _, k in LAYER:
        x = torch.randn(m, k, device="cuda")
        scale_a = (x.abs().amax(1, keepdim=True) / 448).float()
        inputs[k] = ((x / scale_a).to(torch.float8_e4m3fn), scale_a)
    return inputs


def _step(weights, inputs, noop=None):
    out = None
    for b, scale_b in weights:
        a, scale_a = inputs[b.shape[0]]
        out = torch._scaled_mm(a, b, scale_a=scale_a, scale_b=scale_b, out_dtype=torch.bfloat16)
        if noop is not None:
            _noop[(1,)](noop)
    return out


def _capture(weights, inputs, noop=None):
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            _step(weights, inputs, noop)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        _step(weights, inputs, noop)
    torch.cuda.synchronize()
    return graph


def _round(graph, replays: int) -> tuple[float, float]:
    """(GPU us per replay, wall us per replay) over ``replays`` back-to-back replays."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    wall = time.perf_counter()
    start.record()
    for _ in range(replays):
        graph.replay()
    end.record()
    torch.cuda.synchronize()
    wall = time.perf_counter() - wall
    return start.elapsed_time(end) * 1e3 / replays, wall * 1e6 / replays


def measure(layers: int, m: int, rounds: int, replays: int, log: str) -> dict[str, float]:
    weights, inputs = _layer_weights(layers), _inputs(m)
    graph_off = _capture(weights, inputs)
    graph_noop = _capture(weights, inputs, torch.zeros(1, device="cuda", dtype=torch.int32))
    runtime = quantguard.enable(log=log, summary_at_exit=False)
    graph_on = _capture(weights, inputs)
    monitor = runtime.graphs
    best = {name: (float("inf"), float("inf")) for name in ("off", "noop", "on")}
    total_on = 0
    for _ in range(rounds):
        for name, graph in (("off", graph_off), ("noop", graph_noop), ("on", graph_on)):
            gpu, wall = _round(graph, replays)
            total_on += replays if name == "on" else 0
            best[name] = (min(best[name][0], gpu), min(best[name][1], wall))
    runtime.executor.flush(30.0)
    stats = monitor.summary()
    snapshot_bytes = sum(int(chunk[1]) for chunk in monitor._chunks)
    reserved = sum(int(chunk[0].numel()) for chunk in monitor._chunks)
    quantguard.disable()
    sites = max(1, stats["monitored"])
    del graph_on, graph_off, graph_noop, weights
    torch.cuda.empty_cache()
    return {
        "gpu_off": best["off"][0],
        "gpu_on": best["on"][0],
        "gpu_noop": best["noop"][0],
        "wall_off": best["off"][1],
        "wall_on": best["on"][1],
        "sites": stats["monitored"],
        "unmonitored": stats["unmonitored"],
        "checks_per_site_per_100": stats["checks"] / sites / (total_on / 100),
        "snapshot_mib": snapshot_bytes / 2**20,
        "reserved_mib": reserved / 2**20,
        "drains_skipped": stats["drains_skipped"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--layers", type=int, default=60)
    parser.add_argument("--rows", type=int, nargs="*", default=[1, 8, 32])
    args = parser.parse_args()
    log = os.path.join(tempfile.mkdtemp(prefix="qg-graph-bench-"), "events.jsonl")
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}; best of {args.rounds} interleaved rounds\n")
    print(
        f"{'step':>16} {'M':>3} {'off us':>9} {'on us':>9} {'ratio':>7} {'no-op node':>10} {'ratio':>7} "
        f"{'wall off':>9} {'wall on':>9} {'ratio':>7} {'sites':>6} {'checks/site/100':>16} {'snap MiB':>9} "
        f"{'reserved':>9} {'drains skipped':>15}"
    )
    for layers, replays in ((1, 1000), (args.layers, 100)):
        for m in args.rows:
            r = measure(layers, m, args.rounds, replays, log)
            name = "4-GEMM layer" if layers == 1 else f"{layers} layers"
            print(
                f"{name:>16} {m:>3} {r['gpu_off']:9.1f} {r['gpu_on']:9.1f} {r['gpu_on'] / r['gpu_off']:7.3f} "
                f"{r['gpu_noop']:10.1f} {r['gpu_noop'] / r['gpu_off']:7.3f} "
                f"{r['wall_off']:9.1f} {r['wall_on']:9.1f} {r['wall_on'] / r['wall_off']:7.3f} "
                f"{r['sites']:>6} {r['checks_per_site_per_100']:16.2f} {r['snapshot_mib']:9.2f} "
                f"{r['reserved_mib']:9.1f} {r['drains_skipped']:15}",
                flush=True,
            )


if __name__ == "__main__":
    main()
