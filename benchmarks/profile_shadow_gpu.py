"""What one sampled ``torch._scaled_mm`` call costs: host time, kernels launched, and a cProfile.

1. Host time per call of a loop of 300 calls (M = 16, 4096 x 4096; the GEMM
   is launch-bound there, so wall time is host time): quantguard off, on with
   nothing sampled, on with every call sampled — light (the default: one
   device snapshot, judged on the drainer) and thorough (``thorough_interval=0``:
   every data check).  The difference to "nothing sampled" is the host cost of
   a sampled call (goal: <= 50 us).
2. GPU kernels per call, counted with ``torch.profiler`` over 20 calls, minus
   nothing sampled: the sampled check's kernels (goal: <= 3).
3. A cProfile of 300 sampled calls (where the host time goes).

    python benchmarks/profile_shadow_gpu.py [--no-cprofile] [--profile-mode light|thorough]
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import pstats
import sys
import time

import torch

import quantguard

m, n, k = 16, 4096, 4096
a = (torch.randn(m, k, device="cuda") * 4).to(torch.float8_e4m3fn)
b = (torch.randn(n, k, device="cuda") * 4).to(torch.float8_e4m3fn).t()
sa, sb = torch.rand(m, 1, device="cuda") / 100, torch.rand(1, n, device="cuda") / 100


def call() -> None:
    torch._scaled_mm(a, b, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16)


def host_us(calls: int = 300) -> float:
    for _ in range(20):
        call()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        call()
    elapsed = time.perf_counter() - start
    torch.cuda.synchronize()
    return elapsed / calls * 1e6


def kernels_per_call(calls: int = 20) -> tuple[float, collections.Counter]:
    for _ in range(5):
        call()
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as profile:
        for _ in range(calls):
            call()
        torch.cuda.synchronize()
    names = collections.Counter(
        event.name for event in profile.events() if event.device_type == torch.autograd.DeviceType.CUDA
    )
    return sum(names.values()) / calls, names


MODES = {
    "off": None,
    "0%": {"sample_rate": 0.0},
    "light": {"sample_rate": 1.0},  # default: sampled calls light
    "thorough": {"sample_rate": 1.0, "thorough_interval": 0},
}  # every sampled call runs every check


def _enable(mode: str) -> None:
    options = MODES[mode]
    if options is not None:
        quantguard.enable(**options, sample_first=0, log="/dev/null", summary_at_exit=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-cprofile", action="store_true")
    parser.add_argument("--profile-mode", choices=("light", "thorough"), default="light")
    args = parser.parse_args()
    best: dict[str, float] = {}
    summaries = {}
    for _ in range(3):
        for mode in MODES:
            _enable(mode)
            best[mode] = min(best.get(mode, float("inf")), host_us())
            if MODES[mode] is not None:
                summaries[mode] = quantguard.disable()
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}; M={m}, N x K = {n} x {k}, best of 3")
    print(
        f"host us per call: off {best['off']:.1f}, on/nothing sampled {best['0%']:.1f}, "
        f"every call sampled: light {best['light']:.1f}, thorough {best['thorough']:.1f}"
    )
    print(
        f"a sampled call costs, over nothing sampled: light {best['light'] - best['0%']:.1f} us, "
        f"thorough {best['thorough'] - best['0%']:.1f} us"
    )
    print(f"light samples (last light run): {summaries['light'].get('eager_snapshots')}")
    counts = {}
    for mode in ("0%", "light", "thorough"):
        _enable(mode)
        counts[mode] = kernels_per_call()
        quantguard.disable()
    print(
        f"GPU kernels per call: nothing sampled {counts['0%'][0]:.1f}, light {counts['light'][0]:.1f}, "
        f"thorough {counts['thorough'][0]:.1f}"
    )
    for mode in ("light", "thorough"):
        extra = counts[mode][1] - counts["0%"][1]
        for name, count in sorted(extra.items(), key=lambda item: -item[1]):
            print(f"  {mode}: +{count / 20:.1f} per sampled call: {name[:100]}")
    if args.no_cprofile:
        return
    _enable(args.profile_mode)
    for _ in range(20):
        call()
    torch.cuda.synchronize()
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(300):
        call()
    torch.cuda.synchronize()
    profile.disable()
    quantguard.disable()
    stats = pstats.Stats(profile, stream=sys.stdout)
    stats.sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
