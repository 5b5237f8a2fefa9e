"""Named scenarios the worker runs against whichever ``aiter`` it imported (real tree or simulator).

A scenario calls AITER/ATOM through their public names, exactly as a user would, and returns
plain data: how many calls each guarded target saw (``calls``), what the kernel raised if it
rejected a malformed call (``raised``), and scenario-specific facts.  The quantguard events it
caused travel back separately.  The tests hold the expectations; this module only acts.
Nothing here imports ``aiter`` at module level: the test process imports this file to list the
scenarios.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

__all__ = ["SCENARIOS", "Scenario", "M", "N", "K"]

M, N, K = 16, 256, 256
_TG = "aiter.ops.triton.gemm.basic."


class Scenario:
    """One named action; :meth:`run` adds the guarded calls it made to its result."""

    __slots__ = ("name", "function")

    def __init__(self, name: str, function: Callable[..., dict[str, Any]]) -> None:
        self.name = name
        self.function = function

    def run(self, context: Any, **params: Any) -> dict[str, Any]:
        before = _call_counts(context)
        result = self.function(context, **params)
        after = _call_counts(context)
        result["calls"] = {
            target: count - before.get(target, 0) for target, count in after.items() if count != before.get(target, 0)
        }
        return result


SCENARIOS: dict[str, Scenario] = {}


def scenario(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(function: Callable[..., Any]) -> Callable[..., Any]:
        SCENARIOS[name] = Scenario(name, function)
        return function

    return register


def _call_counts(context: Any) -> dict[str, int]:
    runtime = context.runtime
    return dict(runtime.call_counts()) if runtime is not None else {}


# -- operands ----------------------------------------------------------------------------------


def _torch() -> Any:
    import torch

    return torch


def _gen(seed: int) -> Any:
    return _torch().Generator().manual_seed(seed)


def _x() -> Any:
    torch = _torch()
    return (torch.randn(M, K, generator=_gen(0)) * 2).to(torch.bfloat16)


def _block_weight(fp8: Any, n: int = N, k: int = K) -> tuple[Any, Any]:
    """A (n, k) fp8 weight and its (n/128, k/128) fp32 block scales."""
    torch = _torch()
    w = torch.randn(n, k, generator=_gen(1)) * 0.05
    scale = w.view(n // 128, 128, k // 128, 128).abs().amax((1, 3)) / torch.finfo(fp8).max
    expanded = scale.repeat_interleave(128, 0).repeat_interleave(128, 1)
    return (w / expanded).to(fp8), scale


def _row_weight(fp8: Any) -> tuple[Any, Any]:
    """A (N, K) fp8 weight and its (N, 1) fp32 per-channel scales."""
    torch = _torch()
    w = torch.randn(N, K, generator=_gen(2)) * 0.05
    scale = w.abs().amax(1, keepdim=True) / torch.finfo(fp8).max
    return (w / scale).to(fp8), scale


def _shuffle(w: Any) -> Any:
    from aiter.ops.shuffle import shuffle_weight

    return shuffle_weight(w, layout=(16, 16))


def _per_token(a: Any) -> tuple[Any, Any, Any, Any]:
    xq, xs = a.per_token_quant_hip(_x(), quant_dtype=a.dtypes.fp8)
    wq, ws = _row_weight(a.dtypes.fp8)
    return xq, xs, wq, ws


def _blocks(a: Any, transpose: bool = False) -> tuple[Any, Any, Any, Any]:
    xq, xs = a.per_group_quant_hip(_x(), quant_dtype=a.dtypes.fp8, group_size=128, transpose_scale=transpose)
    wq, ws = _block_weight(a.dtypes.fp8)
    return xq, xs, wq, ws


def _triton(path: str) -> Any:
    module, _, function = (_TG + path).rpartition(".")
    return getattr(importlib.import_module(module), function)


def _outcome(call: Callable[[], Any]) -> dict[str, Any]:
    """Run a call the kernel may reject (a malformed one); the guard reports before the kernel runs."""
    try:
        out = call()
    except Exception as exc:
        return {"raised": f"{type(exc).__name__}: {exc}"[:500]}
    return {"raised": None, "out_shape": list(out.shape) if hasattr(out, "shape") else None}


def _finite_output(out: Any) -> dict[str, Any]:
    return {"raised": None, "out_shape": list(out.shape), "finite": bool(out.float().isfinite().all())}


# -- clean calls: each must be quiet -----------------------------------------------------------


@scenario("clean.gemm_a8w8")
def clean_gemm_a8w8(context: Any) -> dict[str, Any]:
    a = context.aiter
    xq, xs, wq, ws = _per_token(a)
    return _finite_output(a.gemm_a8w8(xq, wq, xs, ws))


@scenario("clean.gemm_a8w8_CK")
def clean_gemm_a8w8_ck(context: Any) -> dict[str, Any]:
    a = context.aiter
    xq, xs, wq, ws = _per_token(a)
    return _finite_output(a.gemm_a8w8_CK(xq, wq, xs, ws))


@scenario("clean.gemm_a8w8_bpreshuffle")
def clean_gemm_a8w8_bpreshuffle(context: Any) -> dict[str, Any]:
    a = context.aiter
    xq, xs, wq, ws = _per_token(a)
    return _finite_output(a.gemm_a8w8_bpreshuffle(xq, _shuffle(wq), xs, ws))


@scenario("clean.gemm_a8w8_blockscale")
def clean_gemm_a8w8_blockscale(context: Any) -> dict[str, Any]:
    a = context.aiter
    xq, xs, wq, ws = _blocks(a)
    return _finite_output(a.gemm_a8w8_blockscale(xq, wq, xs, ws))


@scenario("clean.blockscale_bpreshuffle_transposed_bytes")
def clean_blockscale_bpreshuffle_transposed(context: Any) -> dict[str, Any]:
    a = context.aiter
    xq, xs, wq, ws = _blocks(a, transpose=True)
    return _finite_output(a.gemm_a8w8_blockscale_bpreshuffle(xq, _shuffle(wq), xs, ws))


@scenario("clean.blockscale_bpreshuffle_strided_view")
def clean_blockscale_bpreshuffle_view(context: Any) -> dict[str, Any]:
    a = context.aiter
    xq, xs, wq, ws = _blocks(a)
    return _finite_output(a.gemm_a8w8_blockscale_bpreshuffle(xq, _shuffle(wq), xs.t().contiguous().t(), ws))


@scenario("clean.dynamic_per_token_scaled_quant")
def clean_dynamic_per_token_scaled_quant(context: Any) -> dict[str, Any]:
    a = context.aiter
    torch = _torch()
    x = _x()
    out = torch.empty(M, K, dtype=a.dtypes.fp8)
    scales = torch.empty(M, 1, dtype=torch.float32)
    a.dynamic_per_token_scaled_quant(out, x, scales)
    return {"raised": None, "scale_min": float(scales.min())}


@scenario("clean.triton_gemm_a8w8")
def clean_triton_gemm_a8w8(context: Any) -> dict[str, Any]:
    a = context.aiter
    xq, xs, wq, ws = _per_token(a)
    return _finite_output(_triton("gemm_a8w8.gemm_a8w8")(xq, wq, xs, ws))


@scenario("clean.triton_blockscale")
def clean_triton_blockscale(context: Any) -> dict[str, Any]:
    a = context.aiter
    xq, xs, wq, ws = _blocks(a)
    return _finite_output(_triton("gemm_a8w8_blockscale.gemm_a8w8_blockscale")(xq, wq, xs, ws))


@scenario("clean.triton_flatten_group_quant_blockscale")
def clean_triton_flatten_group_quant(context: Any) -> dict[str, Any]:
    """Triton producer feeding the Triton consumer (both real kernels under the interpreter)."""
    a = context.aiter
    quant = importlib.import_module("aiter.ops.triton.quant")
    xq, xs = quant.fused_flatten_fp8_group_quant(_x().unsqueeze(1), group_size=128, dtype_quant=a.dtypes.fp8)
    wq, ws = _block_weight(a.dtypes.fp8)
    return _finite_output(_triton("gemm_a8w8_blockscale.gemm_a8w8_blockscale")(xq, wq, xs, ws))


# -- malformed calls: each must get the simulator's verdict ----------------------------------


@scenario("malformed.blockscale_x_scale_m1")
def malformed_blockscale_x_scale_m1(context: Any) -> dict[str, Any]:
    """A per-token (M, 1) x_scale handed to the blockscale GEMM, which reads (M, K/128)."""
    a = context.aiter
    torch = _torch()
    xq, _, wq, ws = _blocks(a)
    return _outcome(lambda: a.gemm_a8w8_blockscale(xq, wq, torch.ones(M, 1), ws))


@scenario("malformed.blockscale_bf16_x_scale")
def malformed_blockscale_bf16_x_scale(context: Any) -> dict[str, Any]:
    a = context.aiter
    xq, xs, wq, ws = _blocks(a)
    return _outcome(lambda: a.gemm_a8w8_blockscale(xq, wq, xs.to(_torch().bfloat16), ws))


@scenario("malformed.transposed_scale_into_row_major_reader")
def malformed_transposed_into_row_major(context: Any) -> dict[str, Any]:
    """per_group_quant_hip(transpose_scale=True) writes (G, M) bytes; gemm_a8w8_blockscale reads (M, G)."""
    a = context.aiter
    xq, xs, wq, ws = _blocks(a, transpose=True)
    return _outcome(lambda: a.gemm_a8w8_blockscale(xq, wq, xs, ws))


@scenario("malformed.row_major_scale_into_bpreshuffle")
def malformed_row_major_into_bpreshuffle(context: Any) -> dict[str, Any]:
    """per_group_quant_hip() writes (M, G) bytes; gemm_a8w8_blockscale_bpreshuffle reads (G, M)."""
    a = context.aiter
    xq, xs, wq, ws = _blocks(a, transpose=False)
    return _outcome(lambda: a.gemm_a8w8_blockscale_bpreshuffle(xq, _shuffle(wq), xs, ws))


@scenario("malformed.transposed_scale_into_triton_blockscale")
def malformed_transposed_into_triton(context: Any) -> dict[str, Any]:
    """The same (G, M) bytes handed to AITER's real Triton blockscale GEMM (a row-major reader too)."""
    a = context.aiter
    xq, xs, wq, ws = _blocks(a, transpose=True)
    return _outcome(lambda: _triton("gemm_a8w8_blockscale.gemm_a8w8_blockscale")(xq, wq, xs, ws))


@scenario("malformed.e4m3fn_weight")
def malformed_e4m3fn_weight(context: Any) -> dict[str, Any]:
    """An e4m3fn weight: right on gfx950, read as e4m3fnuz (2x off) by gfx942 kernels."""
    a = context.aiter
    xq, xs, _, ws = _per_token(a)
    wq, _ = _row_weight(_torch().float8_e4m3fn)
    return _outcome(lambda: a.gemm_a8w8_CK(xq, wq, xs, ws))


# -- torch.compile: calls that reach torch.ops.aiter.* without the Python wrapper ----------------


@scenario("compiled.quant_then_blockscale")
def compiled_quant_then_blockscale(context: Any) -> dict[str, Any]:
    """A clean quant -> blockscale GEMM step compiled whole (``fullgraph=True``, eager backend)."""
    a = context.aiter
    torch = _torch()
    wq, ws = _block_weight(a.dtypes.fp8)
    quant, gemm, fp8 = a.per_group_quant_hip, a.gemm_a8w8_blockscale, a.dtypes.fp8

    def step(x: Any) -> Any:
        xq, xs = quant(x, quant_dtype=fp8, group_size=128)
        return gemm(xq, wq, xs, ws)

    return _finite_output(torch.compile(step, backend="eager", fullgraph=True)(_x()))


@scenario("compiled.transposed_scale_into_row_major_reader")
def compiled_transposed_into_row_major(context: Any) -> dict[str, Any]:
    """The (G, M)-bytes producer feeding the row-major blockscale reader, inside one compiled graph."""
    a = context.aiter
    torch = _torch()
    wq, ws = _block_weight(a.dtypes.fp8)
    quant, gemm, fp8 = a.per_group_quant_hip, a.gemm_a8w8_blockscale, a.dtypes.fp8

    def step(x: Any) -> Any:
        xq, xs = quant(x, quant_dtype=fp8, group_size=128, transpose_scale=True)
        return gemm(xq, wq, xs, ws)

    return _outcome(lambda: torch.compile(step, backend="eager", fullgraph=True)(_x()))


@scenario("compiled.blockscale_x_scale_m1")
def compiled_blockscale_x_scale_m1(context: Any) -> dict[str, Any]:
    """The malformed blockscale call from torch.compile'd code (eager backend: the graph calls the op)."""
    a = context.aiter
    torch = _torch()
    xq, _, wq, ws = _blocks(a)
    gemm = a.gemm_a8w8_blockscale

    def step(xq: Any, x_scale: Any) -> Any:
        return gemm(xq, wq, x_scale, ws)

    compiled = torch.compile(step, backend="eager", fullgraph=True)
    return _outcome(lambda: compiled(xq, torch.ones(M, 1)))


# -- ATOM's real linear layer --------------------------------------------------------------------


def _atom_linear(context: Any, preshuffle: bool) -> dict[str, Any]:
    """An FP8 blockscale (per_1x128) ReplicatedLinear: load an e4m3fn checkpoint, post-process, forward.

    ``ATOM_FP8_BLOCKSCALE_WEIGHT_PRESHUFFLE`` picks the GEMM: the preshuffled weight with a
    transposed x_scale (``gemm_a8w8_blockscale_bpreshuffle``) or ``gemm_a8w8_blockscale``.
    """
    saved = {name: os.environ.get(name) for name in ("ATOM_FP8_BLOCKSCALE_WEIGHT_PRESHUFFLE", "ATOM_USE_TRITON_GEMM")}
    os.environ.update(ATOM_FP8_BLOCKSCALE_WEIGHT_PRESHUFFLE="1" if preshuffle else "0", ATOM_USE_TRITON_GEMM="0")
    try:
        return _run_atom_linear(context)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _run_atom_linear(context: Any) -> dict[str, Any]:
    from types import SimpleNamespace

    from atom.model_ops.linear import ReplicatedLinear
    from atom.quant_spec import LayerQuantConfig

    torch = _torch()
    a = context.aiter
    parallel_state = importlib.import_module("aiter.dist.parallel_state")  # `aiter.dist` is torch.distributed
    if parallel_state._TP is None:  # a one-rank tensor-parallel group, without torch.distributed
        parallel_state._TP = SimpleNamespace(rank_in_group=0, world_size=1)
    layer_config = LayerQuantConfig(quant_type=a.QuantType.per_1x128, quant_dtype=a.dtypes.fp8)
    quant_config = SimpleNamespace(
        get_layer_quant_config=lambda prefix, use_online_quant=False: layer_config, online_quant=False
    )
    layer = ReplicatedLinear(K, N, bias=False, quant_config=quant_config, prefix="model.layers.0.mlp.down_proj")
    weight, scale = _block_weight(torch.float8_e4m3fn)  # checkpoints hold e4m3fn, whatever the arch
    layer.weight_loader(layer.weight, weight)
    layer.weight_loader(layer.weight_scale, scale)
    layer.process_weights_after_loading()
    x = _x()
    out = layer(x)
    reference = x.float() @ (weight.float() * scale.repeat_interleave(128, 0).repeat_interleave(128, 1)).T
    cosine = torch.nn.functional.cosine_similarity(out.float().flatten(), reference.flatten(), dim=0)
    return {
        "raised": None,
        "out_shape": list(out.shape),
        "cosine": float(cosine),
        "weight_dtype": str(layer.weight.dtype),
    }


@scenario("atom.linear_fp8_blockscale")
def atom_linear_blockscale(context: Any) -> dict[str, Any]:
    return _atom_linear(context, preshuffle=False)


@scenario("atom.linear_fp8_blockscale_preshuffle")
def atom_linear_blockscale_preshuffle(context: Any) -> dict[str, Any]:
    return _atom_linear(context, preshuffle=True)


# -- scale truth beyond the chain: AITER's real Triton quant -> GEMM with scale mistakes ----------
#
# The activation comes from the real ``fused_flatten_fp8_group_quant`` (or the fused RMSNorm
# producer ``fused_reduce_rms_fp8_group_quant``), the GEMM is the real Triton
# ``gemm_a8w8_blockscale``; weights are registered with quantguard through ``scan_weights`` the
# way a loaded model's are.  ``m`` sweeps partial tiles; ``outliers`` puts a few channels far above
# the rest (a clean run must stay quiet with them).

_FLATTEN = "aiter.ops.triton.quant.fused_fp8_quant.fused_flatten_fp8_group_quant"
#: Where the scale-fault scenarios put their tensors: the CPU (Triton's interpreter) or a GPU
#: running AITER's Triton kernels for real (``real_scale_faults_gpu.py``).
DEVICE = os.environ.get("QUANTGUARD_SCENARIO_DEVICE", "cpu")


def _activation(m: int, seed: int, outliers: bool) -> Any:
    torch = _torch()
    x = torch.randn(m, K, generator=_gen(seed)) * 2
    if outliers:
        x[:, 5] *= 40.0
        x[:, 130] *= 25.0
    return x.to(torch.bfloat16).to(DEVICE)


def _produce(a: Any, x: Any, fused: bool = False) -> tuple[Any, Any]:
    quant = importlib.import_module("aiter.ops.triton.quant")
    if fused:  # RMSNorm + per-group fp8 quant in one kernel: ((q, scales), ...)
        weight = _torch().ones(x.shape[-1], dtype=x.dtype, device=x.device)
        (q, scales), *_ = quant.fused_reduce_rms_fp8_group_quant(
            x, weight, 1e-6, group_size=128, dtype_quant=a.dtypes.fp8
        )
        return q, scales
    return quant.fused_flatten_fp8_group_quant(x.unsqueeze(1), group_size=128, dtype_quant=a.dtypes.fp8)


class _Layer:
    """A loaded linear layer as quantguard's weight scan sees one: ``weight`` with ``weight_scale``."""

    @staticmethod
    def make(a: Any, seed: int, n: int = N) -> Any:
        torch = _torch()
        layer = torch.nn.Module()
        w = torch.randn(n, K, generator=_gen(seed)) * 0.05
        scale = w.view(n // 128, 128, K // 128, 128).abs().amax((1, 3)) / torch.finfo(a.dtypes.fp8).max
        expanded = scale.repeat_interleave(128, 0).repeat_interleave(128, 1)
        layer.weight = torch.nn.Parameter((w / expanded).to(a.dtypes.fp8).to(DEVICE), requires_grad=False)
        layer.weight_scale = torch.nn.Parameter(scale.to(DEVICE), requires_grad=False)
        return layer


def _model(a: Any, layers: int = 1) -> Any:
    import quantguard

    torch = _torch()
    model = torch.nn.Module()
    for index in range(layers):
        model.add_module(f"proj{index}", _Layer.make(a, 10 + index))
    quantguard.scan_weights(model)
    return model


def _gemm(xq: Any, w: Any, xs: Any, ws: Any) -> dict[str, Any]:
    return _finite_output(_triton("gemm_a8w8_blockscale.gemm_a8w8_blockscale")(xq, w, xs, ws))


@scenario("scales.clean")
def scales_clean(context: Any, m: int = M, outliers: bool = False, fused: bool = False) -> dict[str, Any]:
    a = context.aiter
    layer = _model(a).proj0
    xq, xs = _produce(a, _activation(m, 0, outliers), fused)
    return _gemm(xq, layer.weight, xs, layer.weight_scale)


@scenario("scales.x_scale_of_another_activation")
def scales_x_of_another(context: Any, m: int = M, fused: bool = False) -> dict[str, Any]:
    a = context.aiter
    layer = _model(a).proj0
    xq, _ = _produce(a, _activation(m, 0, False), fused)
    _, other = _produce(a, _activation(m, 1, False), fused)
    return _gemm(xq, layer.weight, other, layer.weight_scale)


@scenario("scales.x_scale_of_ones")
def scales_x_of_ones(context: Any, m: int = M, fused: bool = False) -> dict[str, Any]:
    a = context.aiter
    layer = _model(a).proj0
    xq, xs = _produce(a, _activation(m, 0, False), fused)
    return _gemm(xq, layer.weight, _torch().ones_like(xs), layer.weight_scale)


@scenario("scales.w_scale_of_ones")
def scales_w_of_ones(context: Any, m: int = M) -> dict[str, Any]:
    a = context.aiter
    layer = _model(a).proj0
    xq, xs = _produce(a, _activation(m, 0, False))
    return _gemm(xq, layer.weight, xs, _torch().ones_like(layer.weight_scale))


@scenario("scales.w_scale_of_another_layer")
def scales_w_of_another_layer(context: Any, m: int = M) -> dict[str, Any]:
    a = context.aiter
    model = _model(a, layers=2)
    xq, xs = _produce(a, _activation(m, 0, False))
    return _gemm(xq, model.proj0.weight, xs, model.proj1.weight_scale)


@scenario("scales.w_scale_stale_after_requantization")
def scales_w_stale(context: Any, m: int = M) -> dict[str, Any]:
    """The weight is requantized in place (bytes rewritten for a 4x larger scale); its scale is not."""
    a = context.aiter
    torch = _torch()
    layer = _model(a).proj0
    with torch.no_grad():
        layer.weight.copy_((layer.weight.float() / 4).to(a.dtypes.fp8))
    xq, xs = _produce(a, _activation(m, 0, False))
    return _gemm(xq, layer.weight, xs, layer.weight_scale)


_TILE_FAULTS = "qg_real_tile_faults"


def _faulty_gemm_module(a: Any) -> Any:
    """A Triton-blockscale-shaped GEMM whose bug is confined to one part of the tensor (test-only).

    It runs AITER's real Triton kernel, then damages only the last partial M tile (``rows``), only
    the last output columns (``columns``), or ignores the last K group's x_scale (``k_group``).  It
    is guarded by a copy of the Triton blockscale contract, so quantguard judges it like the real one.
    """
    import dataclasses
    import sys
    import types

    import quantguard
    from quantguard.contracts.aiter import CONTRACTS

    module = sys.modules.get(_TILE_FAULTS)
    if module is not None:
        return module
    torch = _torch()
    real = _triton("gemm_a8w8_blockscale.gemm_a8w8_blockscale")
    module = types.ModuleType(_TILE_FAULTS)
    module.fault = "rows"

    def gemm_a8w8_blockscale(
        x,
        w,
        x_scale,
        w_scale,
        dtype=torch.bfloat16,
        y=None,
        config=None,
        skip_reduce=False,
        kernel_type=None,
        backend=None,
    ):
        if module.fault == "k_group":
            x_scale = x_scale.clone()
            x_scale[:, -1] = 1.0
        out = real(x, w, x_scale, w_scale, dtype=dtype)
        m, n = out.shape
        if module.fault == "rows":
            out[(m - 1) // 32 * 32 :] *= 1.5
        elif module.fault == "columns":
            out[:, n - 16 :] *= 1.5
        return out

    module.gemm_a8w8_blockscale = gemm_a8w8_blockscale
    sys.modules[_TILE_FAULTS] = module
    template = next(c for c in CONTRACTS if c.target == _TG + "gemm_a8w8_blockscale.gemm_a8w8_blockscale")
    quantguard.register(dataclasses.replace(template, target=f"{_TILE_FAULTS}.gemm_a8w8_blockscale"))
    return module


@scenario("scales.fault_confined_to_one_tile")
def scales_tile_fault(context: Any, m: int = 300, fault: str = "rows", calls: int = 2) -> dict[str, Any]:
    a = context.aiter
    module = _faulty_gemm_module(a)
    module.fault = fault
    layer = _model(a).proj0
    out: dict[str, Any] = {}
    for seed in range(calls):  # a few sampled calls: the compared rows and columns move between them
        xq, xs = _produce(a, _activation(m, seed, False))
        out = _finite_output(module.gemm_a8w8_blockscale(xq, layer.weight, xs, layer.weight_scale))
    return out


# -- load-time requantizations (requant_precision) --------------------------------------------


@scenario("atom.requantizations")
def atom_requantizations(context: Any, low: float = 1.0) -> dict[str, Any]:
    """ATOM's real wo_a BF16 conversion (DeepSeek-V4) and its in-place max-scale requantization.

    ``low`` scales one 128x128 block of the wo_a weight and the last shard's scale: 1.0 is a
    clean load; 2**-16 puts them far below the rest, where a single scale cannot hold them.
    """
    torch = _torch()
    import atom.model_ops.utils as utils
    import atom.models.deepseek_v4 as v4

    w = torch.randn(256, 256, generator=_gen(7)) * 0.05
    w[128:, 128:] *= low
    blocks = w.view(2, 128, 2, 128).abs().amax((1, 3)) / 448
    scale = torch.exp2(torch.ceil(torch.log2(blocks)))  # UE8M0, as V4's wo_a.scale
    q = (w / scale.repeat_interleave(128, 0).repeat_interleave(128, 1)).to(torch.float8_e4m3fn)
    dense = v4._dequant_fp8_block_to_bf16(q, scale, block=128)
    fp8 = importlib.import_module("aiter").dtypes.fp8  # the arch's FP8, as ATOM's per-tensor linears hold it
    limit = torch.finfo(fp8).max
    shards = (torch.randn(256, 256, generator=_gen(8)) * limit / 4).clamp(-limit, limit).to(fp8)
    max_scale, _ = utils.requantize_with_max_scale(shards, torch.tensor([1e-3, 2e-3 * low]), [128, 128])
    return {"dense_dtype": str(dense.dtype), "max_scale": float(max_scale)}
