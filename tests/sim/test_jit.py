"""JIT builds and CK-free behaviour: what builds, what fails, and what a wrapper can see."""

from __future__ import annotations

import inspect

import pytest
import torch


def _block_case(aiter, transpose_scale=False):
    """Activations (4, 256) quantized per 1x128, a (128, 256) FP8 weight and its block scales."""
    x = torch.randn(4, 256).bfloat16()
    xq, xs = aiter.per_group_quant_hip(x, quant_dtype=aiter.dtypes.fp8, transpose_scale=transpose_scale)
    return xq, torch.randn(128, 256).to(aiter.dtypes.fp8), xs, torch.ones(1, 2)


def _ck_calls(aiter):
    from aiter.ops.shuffle import shuffle_weight

    xq, wq, xs, ws = _block_case(aiter)
    _, _, xs_t, _ = _block_case(aiter, transpose_scale=True)
    ones = torch.ones(4, 1)
    return {
        "module_gemm_a8w8_blockscale": lambda: aiter.gemm_a8w8_blockscale(xq, wq, xs, ws),
        "module_gemm_a8w8_blockscale_bpreshuffle": lambda: aiter.gemm_a8w8_blockscale_bpreshuffle(
            xq, shuffle_weight(wq), xs_t, ws
        ),
        "module_gemm_a8w8": lambda: aiter.gemm_a8w8(xq, wq, ones, torch.ones(128, 1)),
        "module_gemm_a8w8_bpreshuffle": lambda: aiter.gemm_a8w8_bpreshuffle(
            xq, shuffle_weight(wq), ones, torch.ones(128, 1)
        ),
    }


@pytest.mark.parametrize(
    "module",
    [
        "module_gemm_a8w8_blockscale",
        "module_gemm_a8w8_blockscale_bpreshuffle",
        "module_gemm_a8w8",
        "module_gemm_a8w8_bpreshuffle",
    ],
)
def test_ck_free_build_of_a_ck_module_fails_and_the_builder_wrapper_sees_it(install, arch, monkeypatch, module):
    install(arch, ck_free=True)
    import aiter
    import aiter.jit.core as core

    builds = []
    original = core.build_module
    monkeypatch.setattr(
        core, "build_module", lambda md_name, *a, **k: builds.append(md_name) or original(md_name, *a, **k)
    )
    with pytest.raises(RuntimeError, match=rf"build \[{module}\] under .* failed") as failure:
        _ck_calls(aiter)[module]()
    assert builds[-1] == module
    assert isinstance(failure.value.__cause__, RuntimeError | FileNotFoundError)


def test_first_call_builds_once_when_ck_is_present(install, monkeypatch):
    install()
    import aiter
    import aiter.jit.core as core

    builds = []
    original = core.build_module
    monkeypatch.setattr(
        core, "build_module", lambda md_name, *a, **k: builds.append(md_name) or original(md_name, *a, **k)
    )
    call = _ck_calls(aiter)["module_gemm_a8w8_blockscale"]
    call()
    call()
    assert builds.count("module_gemm_a8w8_blockscale") == 1
    built = core.get_module("module_gemm_a8w8_blockscale")
    assert "-DAITER_CK_FREE=1" not in built.flags


def test_hip_asm_and_triton_modules_build_without_ck(install):
    install("gfx950", ck_free=True)
    import aiter
    import aiter.jit.core as core
    from aiter.ops.shuffle import shuffle_weight
    from aiter.ops.triton.gemm.basic.gemm_a8w8_blockscale import gemm_a8w8_blockscale

    xq, wq, xs, ws = _block_case(aiter)
    gemm_a8w8_blockscale(xq, wq, xs, ws)
    _, _, xs_t, _ = _block_case(aiter, transpose_scale=True)
    out = torch.empty(4, 128, dtype=torch.bfloat16)
    aiter.gemm_a8w8_blockscale_bpreshuffle_asm(xq, shuffle_weight(wq), out, xs_t, ws)
    aiter.static_per_tensor_quant(torch.empty(4, 8, dtype=aiter.dtypes.fp8), torch.ones(4, 8), torch.ones(1))
    aiter.biased_grouped_topk(
        torch.randn(2, 8), torch.zeros(8), torch.empty(2, 2), torch.empty(2, 2, dtype=torch.int32), 4, 2, True
    )
    assert "-DAITER_CK_FREE=1" in core.get_module("module_quant").flags
    assert core.get_module("module_gemm_a8w8_blockscale_bpreshuffle_asm")


@pytest.mark.parametrize("ck_free", [False, True])
def test_ck_free_quant_routes_through_module_global_fallbacks(install, monkeypatch, ck_free):
    install(ck_free=ck_free)
    import aiter
    import aiter.ops.quant as quant

    seen = []
    for name in ("_fallback_dynamic_per_token_scaled_quant", "_fallback_partial_transpose"):
        original = getattr(quant, name)
        monkeypatch.setattr(quant, name, lambda *a, _o=original, _n=name: seen.append(_n) or _o(*a))
    aiter.per_group_quant_hip(torch.randn(4, 256), quant_dtype=aiter.dtypes.fp8, transpose_scale=True)
    aiter.partial_transpose(torch.empty(4, 2), torch.randn(4, 2), torch.tensor([4], dtype=torch.int32))
    expected = ["_fallback_dynamic_per_token_scaled_quant", "_fallback_partial_transpose"] if ck_free else []
    assert seen == expected


def test_compile_ops_kernels_are_opaque_custom_ops(install):
    """As in AITER: the attribute is ``wrapper_custom(*args, **kwargs)``; the op schema keeps the names."""
    install()
    import aiter

    wrapped = aiter.dynamic_per_group_scaled_quant
    assert str(inspect.signature(wrapped)) == "(*args, **kwargs)"
    assert not hasattr(wrapped, "__wrapped__")
    assert wrapped.__code__.co_freevars and "loadName" in wrapped.__code__.co_freevars
    schema = torch.ops.aiter.dynamic_per_group_scaled_quant.default._schema
    assert [a.name for a in schema.arguments][:3] == ["out", "input", "scales"]
