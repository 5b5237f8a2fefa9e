"""A per-token FP8 GEMM and its contract's view, shared by the subprocess workers of the shadow tests
(graph checks, light eager samples, the fused reference end to end).

``Faults.output_factor`` scales every 8th output column (a kernel gone wrong);
``Faults.drop_w_scale`` ignores w_scale (the dropped-scale incident);
``BIAS`` gives a layer a bias (a layout the snapshot kernel does not cover).
Workers put ``tests/`` on ``sys.path`` to import it.
"""

from __future__ import annotations

import torch

from quantguard.contracts.base import Contract
from quantguard.contracts.views import GemmView


class Faults:
    output_factor = 1.0
    drop_w_scale = False


BIAS: dict = {}


def product(x, w, x_scale, w_scale):
    """The GEMM's output, with the injected fault."""
    used = torch.ones_like(w_scale) if Faults.drop_w_scale else w_scale
    out = ((x.float() * x_scale) @ (w.float() * used).t()).to(torch.bfloat16)
    out[:, 3::8] *= Faults.output_factor
    return out


def view(call):
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
        bias=BIAS.get(id(w)),
    )


def contract(target: str) -> Contract:
    """The contract a worker registers for its own module-level GEMM wrapper (``target``)."""
    return Contract(
        target=target,
        kind="gemm",
        backend="test",
        checks=("gemm_numerics",),
        interpret=view,
        params=("x", "w", "x_scale", "w_scale"),
    )


def layers(shapes: list[tuple[int, int]], rows: int = 8) -> list[tuple[torch.Tensor, ...]]:
    """(x, w, x_scale, w_scale) per (N, K), quantized per token / per channel to e4m3fn."""
    torch.manual_seed(0)
    made = []
    for n, k in shapes:
        w = torch.randn(n, k) * 0.05
        w_scale = w.abs().amax(1, keepdim=True) / 448
        x = torch.randn(rows, k)
        x_scale = x.abs().amax(1, keepdim=True) / 448
        made.append(((x / x_scale).to(torch.float8_e4m3fn), (w / w_scale).to(torch.float8_e4m3fn), x_scale, w_scale))
    return made


def reset() -> None:
    Faults.output_factor = 1.0
    Faults.drop_w_scale = False
    BIAS.clear()
