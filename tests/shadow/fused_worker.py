"""The fused reference against the torch reference on a CPU, under Triton's interpreter.

Run as a subprocess with ``TRITON_INTERPRET=1`` by ``test_fused_reference.py``;
prints one JSON line per case: the two statistics vectors, and what the eager
check reports through the fused path for a clean and a faulty kernel.
"""

from __future__ import annotations

import json
import sys

import torch
from fake_gemm import Faults, contract, product
from fake_gemm import layers as make_layers

from quantguard.contracts.views import GemmView
from quantguard.numerics.metrics import comparison_tensors, slice_tensors
from quantguard.shadow.fused import fused_operands, fused_stats
from quantguard.shadow.references import (
    Selection,
    dequantize_w_columns,
    dequantize_x_rows,
    matched_reference,
    output_columns,
    select_columns,
    select_rows,
)

M, N, K = 48, 256, 512


def _operands(case: str):
    torch.manual_seed(0)
    fp8 = torch.float8_e4m3fnuz if case == "fnuz" else torch.float8_e4m3fn
    if case == "int8":
        x = torch.randint(-127, 128, (M, K), dtype=torch.int8)
        w = torch.randint(-127, 128, (N, K), dtype=torch.int8)
    elif case == "mx":
        x = torch.randint(0, 256, (M, K // 2), dtype=torch.uint8)
        w = torch.randint(0, 256, (N, K // 2), dtype=torch.uint8)
    else:
        x = (torch.randn(M, K) * 3).to(fp8)
        w = (torch.randn(N, K) * 3).to(fp8)
    options = dict(scheme="per_token", x_scale_layout="logical", fp8_read_as=None if case in ("int8", "mx") else fp8)
    if case in ("block", "block_transposed"):
        x_scale = torch.rand(M, K // 128) + 0.5
        if case == "block_transposed":
            x_scale = x_scale.t().contiguous().t()  # column-major storage, read by its strides
            options.update(x_scale_strided_ok=True)
        w_scale = torch.rand(N // 128, K // 128) + 0.5
        options.update(scheme="block")
    elif case == "per_tensor":
        x_scale, w_scale = torch.tensor([0.25]), torch.tensor([0.5])
        options.update(scheme="per_tensor")
    elif case == "mx":
        x_scale = torch.randint(120, 130, (M, K // 32), dtype=torch.uint8)  # e8m0 bytes: 2**-7 .. 2**2
        w_scale = torch.randint(120, 130, (N, K // 32), dtype=torch.uint8)
        options.update(scheme="mx", x_scale_layout="row_major", w_scale_layout="row_major")
    else:
        x_scale, w_scale = torch.rand(M, 1) + 0.5, torch.rand(N, 1) + 0.5
    return GemmView("k", x, w, x_scale, w_scale, m=M, n=N, k=K, **options)


def main(case: str) -> dict:
    view = _operands(case)
    full_rows, full_columns = Selection.everything(M), select_columns(N, True, 0.0, None)
    out = matched_reference(
        view,
        dequantize_x_rows(view, view.x, view.x_scale, full_rows),
        dequantize_w_columns(view, full_columns),
        full_columns,
        torch.bfloat16,
    )
    out[M - 1, 7::16] *= 1.25  # a fault confined to the last row: the selection always includes it
    rows, columns = select_rows(M, False, 0.4, 0, 16), select_columns(N, False, 0.6, None, 0)
    reference = matched_reference(
        view,
        dequantize_x_rows(view, rows.take(view.x), view.x_scale, rows),
        dequantize_w_columns(view, columns),
        columns,
        torch.bfloat16,
    )
    compared = output_columns(rows.take(out), columns)
    torch_stats = torch.cat(
        [comparison_tensors(compared, reference)["stats"], slice_tensors(compared, reference)["slices"]]
    )
    described = fused_operands(view, out, torch.float32)
    reason = described if isinstance(described, str) else None
    fused = fused_stats(view, out, rows, columns)
    return {
        "case": case,
        "reason": reason,
        "torch": torch_stats.tolist(),
        "fused": fused.tolist() if fused is not None else None,
    }


def gemm(x, w, x_scale, w_scale):
    return product(x, w, x_scale, w_scale)


def engine(fault: str) -> dict:
    """The eager check end to end through the fused path: a sampled call, judged by GemmNumerics."""
    import quantguard
    from quantguard.testing import capture_events

    quantguard.register(contract(f"{__name__}.gemm"))
    ((x, w, x_scale, w_scale),) = make_layers([(N, K)], rows=M)
    Faults.drop_w_scale = fault == "dropped_scale"  # the dropped-scale incident: w_scale ignored
    with capture_events() as events:
        quantguard.enable(log="/dev/null", sample_rate=1.0, summary_at_exit=False)
        sys.modules[__name__].gemm(x, w, x_scale, w_scale)
        quantguard.disable()
    shadows = [e for e in events.named("shadow") if e.get("reference") == "matched"]
    return {
        "kernels": [e.get("reference_kernels") for e in shadows],
        "passed": [e["passed"] for e in shadows],
        "violations": [e["message"] for e in events.violations()],
        "internal_errors": [e["error"] for e in events.named("internal_error")],
    }


if __name__ == "__main__":
    if sys.argv[1] == "engine":
        print(json.dumps(engine(sys.argv[2])))
    else:  # every case named, one process (imports and the interpreter's set-up dominate)
        print(json.dumps({case: main(case) for case in sys.argv[1:]}))
