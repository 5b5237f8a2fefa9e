"""Where a sampled (100%) ``torch._scaled_mm`` call spends its time: cProfile of 300 calls."""

from __future__ import annotations

import cProfile
import pstats
import sys

import torch

import quantguard

m, n, k = 16, 4096, 4096
a = (torch.randn(m, k, device="cuda") * 4).to(torch.float8_e4m3fn)
b = (torch.randn(n, k, device="cuda") * 4).to(torch.float8_e4m3fn).t()
sa, sb = torch.rand(m, 1, device="cuda") / 100, torch.rand(1, n, device="cuda") / 100
quantguard.enable(sample_rate=1.0, log="/dev/null", summary_at_exit=False)
for _ in range(20):
    torch._scaled_mm(a, b, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16)
torch.cuda.synchronize()
profile = cProfile.Profile()
profile.enable()
for _ in range(300):
    torch._scaled_mm(a, b, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16)
torch.cuda.synchronize()
profile.disable()
quantguard.disable()
stats = pstats.Stats(profile, stream=sys.stdout)
stats.sort_stats("cumulative").print_stats(35)
stats.sort_stats("tottime").print_stats(25)
