"""Entry points wrapped like AITER's: ``torch.ops.aiter.*`` custom ops behind opaque wrappers.

The simulator is installed many times in one process while torch op
registrations are forever, so these tests also check that every install
runs its own functions through the same ops, and that ``torch.compile``
traces the ops (fake implementations) with no graph break.
"""

from __future__ import annotations

import inspect

import pytest
import sim_refs as ref
import torch

import quantguard.sim as sim
from quantguard.sim import _custom_ops

M, N, K = 32, 256, 512

#: Entry points AITER e4048607 wraps with torch_compile_guard / compile_ops -> their op.
OPAQUE = {
    "aiter.ops.gemm_op_a8w8.gemm_a8w8": "gemm_a8w8",
    "aiter.ops.gemm_op_a8w8.gemm_a8w8_bpreshuffle": "gemm_a8w8_bpreshuffle",
    "aiter.ops.gemm_op_a8w8.gemm_a8w8_blockscale": "gemm_a8w8_blockscale",
    "aiter.ops.gemm_op_a8w8.gemm_a8w8_blockscale_bpreshuffle": "gemm_a8w8_blockscale_bpreshuffle",
    "aiter.ops.gemm_op_a4w4.gemm_a4w4": "gemm_a4w4",
    "aiter.ops.quant.per_token_quant_hip": "per_token_quant_hip",
    "aiter.ops.quant.per_group_quant_hip": "per_group_quant_hip",
    "aiter.ops.quant.dynamic_per_token_scaled_quant": "dynamic_per_token_scaled_quant",
    "aiter.ops.quant.dynamic_per_group_scaled_quant": "dynamic_per_group_scaled_quant",
    "aiter.ops.quant.dynamic_per_tensor_quant": "dynamic_per_tensor_quant",
    "aiter.ops.quant.static_per_tensor_quant": "static_per_tensor_quant",
    "aiter.ops.quant.partial_transpose": "partial_transpose",
    "aiter.ops.gemm_op_a8w8.gemm_a8w8_ck": "gemm_a8w8_ck",
    "aiter.ops.gemm_op_a8w8.gemm_a8w8_bpreshuffle_ck": "gemm_a8w8_bpreshuffle_ck",
    "aiter.ops.gemm_op_a8w8.gemm_a8w8_bpreshuffle_cktile": "gemm_a8w8_bpreshuffle_cktile",
    "aiter.ops.gemm_op_a8w8.gemm_a8w8_blockscale_ck": "gemm_a8w8_blockscale_ck",
    "aiter.ops.gemm_op_a8w8.gemm_a8w8_blockscale_cktile": "gemm_a8w8_blockscale_cktile",
    "aiter.ops.gemm_op_a8w8.gemm_a8w8_blockscale_bpreshuffle_ck": "gemm_a8w8_blockscale_bpreshuffle_ck",
    "aiter.ops.gemm_op_a8w8._gemm_a8w8_asm": "_gemm_a8w8_asm",
    "aiter.ops.gemm_op_a8w8._flatmm_a8w8_blockscale_asm": "_flatmm_a8w8_blockscale_asm",
    "aiter.ops.gemm_op_a8w8._gemm_a8w8_blockscale_bpreshuffle_asm": "_gemm_a8w8_blockscale_bpreshuffle_asm",
    "aiter.ops.gemm_op_a4w4.gemm_a4w4_blockscale": "gemm_a4w4_blockscale",
    "aiter.ops.gemm_op_a4w4._gemm_a4w4_asm": "_gemm_a4w4_asm",
    "aiter.ops.topk.biased_grouped_topk_hip": "biased_grouped_topk_hip",
    "aiter.ops.topk.grouped_topk": "grouped_topk",
    "aiter.ops.topk.topk_gating_fwd": "topk_gating_fwd",
    "aiter.fused_moe.ck_moe_stage1": "ck_moe_stage1",
    "aiter.fused_moe.ck_moe_stage2": "ck_moe_stage2",
    "aiter.tuned_gemm.gemm_a16w16": "gemm_a16w16",
}

#: Entry points AITER leaves undecorated stay plain Python functions.
PLAIN = (
    "aiter.ops.gemm_op_a8w8.gemm_a8w8_ASM",
    "aiter.ops.gemm_op_a8w8.gemm_a8w8_CK",
    "aiter.ops.gemm_op_a8w8.gemm_a8w8_asm",
    "aiter.ops.gemm_op_a8w8.flatmm_a8w8_blockscale_ASM",
    "aiter.ops.gemm_op_a8w8.gfx950_a8w8_blockscale_ASM",
    "aiter.ops.gemm_op_a8w8.gemm_a8w8_blockscale_bpreshuffle_asm",
    "aiter.ops.gemm_op_a4w4.gemm_a4w4_asm",
    "aiter.ops.quant.per_1x32_mx_quant_hip",
    "aiter.ops.quant.per_tensor_quant_hip",
    "aiter.ops.quant._fallback_dynamic_per_token_scaled_quant",
    "aiter.ops.quant._fallback_partial_transpose",
    "aiter.ops.topk.biased_grouped_topk",
    "aiter.ops.topk.topk_gating",
    "aiter.ops.triton.quant.quant.dynamic_mxfp4_quant",
    "aiter.ops.triton.gemm.basic.gemm_a8w8_blockscale.gemm_a8w8_blockscale",
    "aiter.ops.triton.gemm.basic.gemm_a8w8.gemm_a8w8",
    "aiter.fused_moe.fused_moe",
)


def _resolve(path):
    import importlib

    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _import_all():
    import aiter
    import aiter.fused_moe  # noqa: F401
    import aiter.tuned_gemm  # noqa: F401

    return aiter


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _fp8_weight(aiter, rows=N, cols=K):
    w = torch.randn(rows, cols, generator=_gen(1)) * 0.05
    scale = w.view(rows // 128, 128, cols // 128, 128).abs().amax((1, 3)) / 240.0
    q = (w / scale.repeat_interleave(128, 0).repeat_interleave(128, 1)).to(aiter.dtypes.fp8)
    return q, scale


# --------------------------------------------------------------------------- the op path


@pytest.mark.parametrize("path", sorted(OPAQUE))
def test_entry_point_is_an_opaque_wrapper_over_its_op(install, path):
    install("gfx950")
    _import_all()
    wrapper = _resolve(path)
    assert str(inspect.signature(wrapper)) == "(*args, **kwargs)"
    assert not hasattr(wrapper, "__wrapped__") and wrapper.__name__ == "wrapper_custom"
    assert ref.op_name(wrapper) == OPAQUE[path]
    op = getattr(torch.ops.aiter, OPAQUE[path]).default
    declared = inspect.signature(ref.implementation(wrapper))
    names = [a.name for a in op._schema.arguments]
    assert names == list(declared.parameters)
    defined = torch._C.parse_schema(f"aiter::{OPAQUE[path]}{_custom_ops.registered_ops()[OPAQUE[path]]}")
    assert str(op._schema) == str(defined)


@pytest.mark.parametrize("path", PLAIN)
def test_entry_points_aiter_leaves_undecorated_stay_plain(install, path):
    install("gfx950")
    _import_all()
    function = _resolve(path)
    assert ref.op_name(function) is None
    assert "args" not in inspect.signature(function).parameters


def test_mutable_schema_and_cpu_cuda_kernels(install):
    """``mutates_args="unknown"``: every tensor argument is declared mutated, as AITER's ops are."""
    install()
    import aiter  # noqa: F401

    schema = torch.ops.aiter.gemm_a8w8.default._schema
    assert str(schema).startswith("aiter::gemm_a8w8(Tensor(a0!) XQ, Tensor(a1!) WQ")
    assert str(schema).endswith("-> Tensor")
    for key in ("CPU", "CUDA"):
        assert torch._C._dispatch_has_kernel_for_dispatch_key("aiter::gemm_a8w8", key)


def test_non_tensor_first_parameter_gets_a_dummy_and_scalar_returns_a_pair(install):
    """The two schema rewrites of AITER's torch_compile_guard, on a function of its own."""
    install()
    from aiter.jit.utils.torch_guard import torch_compile_guard

    def quantguard_sim_test_scaled_sum(factor, x):
        return float(x.sum()) * factor

    # Real annotation objects: this module's ``from __future__ import annotations`` would make
    # them strings, which AITER's checks (``annotation is torch.Tensor``, ``in [int, bool, float]``) miss.
    quantguard_sim_test_scaled_sum.__annotations__ = {"factor": float, "x": torch.Tensor, "return": float}

    wrapper = torch_compile_guard()(quantguard_sim_test_scaled_sum)
    schema = str(torch.ops.aiter.quantguard_sim_test_scaled_sum.default._schema)
    assert schema == (
        "aiter::quantguard_sim_test_scaled_sum(Tensor dummy, float factor, Tensor(a1!) x) -> (Tensor, float)"
    )
    assert wrapper(2.0, torch.ones(3)) == 6.0


def _eager_calls(aiter):
    """(entry point, arguments) pairs that reach the CK, HIP and ASM ops on gfx950."""
    from aiter.ops.shuffle import shuffle_weight

    x = torch.randn(M, K, generator=_gen(0)).bfloat16()
    wq, ws = _fp8_weight(aiter)
    xq, xs = aiter.per_group_quant_hip(x, quant_dtype=aiter.dtypes.fp8)
    xq_t, xs_t = aiter.per_group_quant_hip(x, quant_dtype=aiter.dtypes.fp8, transpose_scale=True)
    tq, ts = aiter.per_token_quant_hip(x, quant_dtype=aiter.dtypes.fp8)
    ws_tok = torch.rand(N, 1, generator=_gen(2)) / 100
    a, a_s = aiter.per_1x32_mx_quant_hip(x, quant_dtype=aiter.dtypes.fp4x2, shuffle=True)
    b, b_s = aiter.per_1x32_mx_quant_hip(
        torch.randn(N, K, generator=_gen(3)).bfloat16(), quant_dtype=aiter.dtypes.fp4x2, shuffle=True
    )
    return {
        "per_token_quant_hip": (aiter.per_token_quant_hip, (x,), {"quant_dtype": aiter.dtypes.fp8}),
        "per_group_quant_hip": (
            aiter.per_group_quant_hip,
            (x,),
            {"quant_dtype": aiter.dtypes.fp8, "transpose_scale": True},
        ),
        "gemm_a8w8": (aiter.gemm_a8w8, (tq, wq, ts, ws_tok), {}),
        "gemm_a8w8_bpreshuffle": (aiter.gemm_a8w8_bpreshuffle, (tq, shuffle_weight(wq), ts, ws_tok), {}),
        "gemm_a8w8_blockscale": (aiter.gemm_a8w8_blockscale, (xq, wq, xs, ws), {}),
        "gemm_a8w8_blockscale_bpreshuffle": (
            aiter.gemm_a8w8_blockscale_bpreshuffle,
            (xq_t, shuffle_weight(wq), xs_t, ws),
            {"dtype": torch.float16},
        ),
        "gemm_a4w4": (aiter.gemm_a4w4, (a, shuffle_weight(b), a_s, b_s), {}),
    }


@pytest.mark.parametrize(
    "name",
    [
        "per_token_quant_hip",
        "per_group_quant_hip",
        "gemm_a8w8",
        "gemm_a8w8_bpreshuffle",
        "gemm_a8w8_blockscale",
        "gemm_a8w8_blockscale_bpreshuffle",
        "gemm_a4w4",
    ],
)
def test_eager_op_results_are_the_implementation_results(install, name):
    install("gfx950")
    import aiter

    entry_point, args, kwargs = _eager_calls(aiter)[name]
    through_op = entry_point(*args, **kwargs)
    direct = ref.implementation(entry_point)(*args, **kwargs)
    for got, expected in zip(*(r if isinstance(r, tuple) else (r,) for r in (through_op, direct))):
        assert torch.equal(got.view(torch.uint8), expected.view(torch.uint8))


def test_in_place_kernels_write_their_outputs_through_the_op(install):
    install()
    import aiter

    x = torch.randn(6, 128, generator=_gen(5))
    out, scale = torch.empty(6, 128, dtype=aiter.dtypes.fp8), torch.empty(1)
    torch.ops.aiter.dynamic_per_tensor_quant(out, x, scale)
    assert float(scale) == pytest.approx(float(x.abs().max()) / 240.0)
    transposed = torch.full((4, 3), -1.0)
    torch.ops.aiter.partial_transpose(transposed, torch.arange(12.0).view(4, 3), torch.tensor([4], dtype=torch.int32))
    assert torch.equal(transposed.flatten(), torch.arange(12.0).view(4, 3).T.flatten())


def test_errors_keep_their_type_through_the_dispatcher(install):
    install(ck_free=True, faults=["jit_build_systemexit@ck"])
    import aiter

    xq = torch.zeros(4, K, dtype=aiter.dtypes.fp8)
    with pytest.raises(SystemExit):
        aiter.gemm_a8w8(xq, torch.zeros(N, K, dtype=aiter.dtypes.fp8), torch.ones(4, 1), torch.ones(N, 1))


# --------------------------------------------------------------------------- installs come and go, ops stay


def test_each_install_runs_its_own_functions_through_the_same_op(install):
    """Faults are bound at import; the op must follow the install, not the first import."""
    scales = {}
    for faults in ((), ("hipblaslt_drops_scale_b",), ()):
        install(faults=faults)
        from aiter.tuned_gemm import tgemm

        x, w = torch.ones(2, 32).to(torch.float8_e4m3fnuz), torch.ones(16, 32).to(torch.float8_e4m3fnuz)
        out = tgemm.mm(x, w, otype=torch.float32, scale_a=torch.ones(1), scale_b=torch.full((1,), 4.0))
        scales.setdefault(faults, []).append(float(out[0, 0]))
    assert scales == {(): [128.0, 128.0], ("hipblaslt_drops_scale_b",): [32.0]}


def test_uninstall_leaves_ops_that_refuse_to_run(install):
    install()
    import aiter

    wrapper = aiter.per_token_quant_hip
    sim.uninstall()
    assert hasattr(torch.ops.aiter, "per_token_quant_hip")
    with pytest.raises(RuntimeError, match="simulator, which is not installed"):
        wrapper(torch.ones(2, 64))
    install()
    y, _ = wrapper(torch.ones(2, 64), quant_dtype=torch.float8_e4m3fnuz)
    assert y.dtype == torch.float8_e4m3fnuz


def test_a_changed_schema_fails_loudly(install):
    install()
    from aiter.jit.utils.torch_guard import torch_compile_guard

    def gemm_a8w8(XQ: torch.Tensor, WQ: torch.Tensor) -> torch.Tensor:
        return XQ

    with pytest.raises(RuntimeError, match="cannot be redefined"):
        torch_compile_guard()(gemm_a8w8)


@pytest.mark.parametrize("arch", sim.ARCHS)
def test_reinstalls_keep_every_schema(arch):
    """Every install of any arch infers exactly the schemas the ops were defined with."""
    try:
        for release_build in (False, True):
            sim.install(arch, release_build=release_build, atom=True)
            _import_all()
    finally:
        sim.uninstall()
    assert set(OPAQUE.values()) <= set(_custom_ops.registered_ops())


# --------------------------------------------------------------------------- torch.compile


@pytest.mark.parametrize("backend", ["eager", "aot_eager"])
def test_compiled_quant_and_gemm_chain_has_no_graph_break(install, backend):
    """``fullgraph=True`` (ATOM's --level 1): dynamo traces the ops through their fakes."""
    install("gfx950")
    import aiter

    torch._dynamo.reset()
    wq, ws = _fp8_weight(aiter)

    def layer(x):
        xq, xs = aiter.per_group_quant_hip(x, quant_dtype=aiter.dtypes.fp8, group_size=128)
        tq, ts = aiter.per_token_quant_hip(x, quant_dtype=aiter.dtypes.fp8)
        return aiter.gemm_a8w8_blockscale(xq, wq, xs, ws) + aiter.gemm_a8w8(tq, wq, ts, torch.ones(N, 1) / 100)

    x = torch.randn(M, K, generator=_gen(6)).bfloat16()
    compiled = torch.compile(layer, fullgraph=True, backend=backend)
    assert torch.equal(compiled(x), layer(x))
    torch._dynamo.reset()


def test_compiled_in_place_kernel(install):
    install()
    import aiter

    torch._dynamo.reset()

    def quantize(x):
        out = torch.empty(x.shape, dtype=aiter.dtypes.fp8)
        scale = torch.empty(1)
        aiter.dynamic_per_tensor_quant(out, x, scale)
        return out.view(torch.uint8), scale

    x = torch.randn(8, 64, generator=_gen(7))
    got = torch.compile(quantize, fullgraph=True, backend="aot_eager")(x)
    expected = quantize(x)
    assert all(torch.equal(a, b) for a, b in zip(got, expected))
    torch._dynamo.reset()
