"""Guard your own kernel: a contract says what it promises; quantguard's generic checks do the rest.

A contract names the function, its parameters, which generic checks apply
and how to read a call as a scaled GEMM (a ``GemmView``). From then on the
kernel gets what AITER's kernels get: scale shape/dtype/layout checks once per
signature, and a shadow comparison against a precision-matched reference on
sampled calls (cosine, norm ratio, SQNR).

    python examples/custom_contract.py
"""

from __future__ import annotations

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # so `my_kernels` imports from here

import quantguard  # noqa: E402
from quantguard.contracts import Contract, identity, strided, tensor, value  # noqa: E402
from quantguard.contracts.views import GemmView  # noqa: E402
from quantguard.testing import capture_events  # noqa: E402


def as_gemm(call) -> GemmView:
    """How a call of ``fp8_gemm`` reads as ``y = (x * x_scale) @ (w * w_scale)^T``."""
    x, w = call["x"], call["w"]
    return GemmView(
        call.target,
        x,
        w,
        call["x_scale"],
        call["w_scale"],
        out=call.result,
        scheme="per_token",
        fp8_read_as=torch.float8_e4m3fn,
        m=int(x.shape[0]),
        n=int(w.shape[0]),
        k=int(x.shape[1]),
        out_dtype=call["out_dtype"],
    )


CONTRACT = Contract(
    target="my_kernels.gemm.fp8_gemm",
    kind="gemm",
    backend="triton",
    params=("x", "w", "x_scale", "w_scale", "out_dtype"),  # drift detection: renamed parameters are reported
    # the signature verdicts are cached by: weights by identity, x_scale with its strides (docs/contracts.md)
    key=(tensor("x"), identity("w"), strided("x_scale"), identity("w_scale"), value("out_dtype")),
    checks=("scale_tensors", "scale_values", "gemm_numerics"),  # generic checks, by id (docs/checks.md)
    interpret=as_gemm,
    description="per-token FP8 GEMM of my_kernels",
)


def run(buggy: bool) -> list[str]:
    import my_kernels.gemm as gemm

    gemm.BUGGY = buggy
    torch.manual_seed(0)
    w = torch.randn(256, 512) * 0.05
    w_scale = w.abs().amax(1, keepdim=True) / 448
    w8 = (w / w_scale).to(torch.float8_e4m3fn)
    with capture_events() as events:
        quantguard.register(CONTRACT)
        quantguard.enable(targets="my_kernels.*", log=os.devnull, sample_rate=1.0)
        for _ in range(4):
            x = torch.randn(16, 512)
            x_scale = x.abs().amax(1, keepdim=True) / 448
            gemm.fp8_gemm((x / x_scale).to(torch.float8_e4m3fn), w8, x_scale, w_scale)
        summary = quantguard.disable()
    shadow = summary["shadow"][CONTRACT.target]
    print(
        f"{'buggy' if buggy else 'clean'} kernel: {shadow['samples']} calls compared with the reference, "
        f"{shadow['failed']} failed, min cosine {shadow['min_cosine']:.4f}"
    )
    for event in events.violations()[:1]:
        print(f"  {event['check']}: {event['message'][:150]}")
    return sorted({e["check"] for e in events.violations()})


if __name__ == "__main__":
    assert run(buggy=False) == []
    assert "numerics" in run(buggy=True)
