"""Every fault changes behaviour the way its incident did, and only where it is injected.

Each scenario runs once clean and once with the fault; ``observe`` returns
what the incident was about and the test checks both outcomes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import sim_refs as ref
import torch

from quantguard.sim import faults

M, N, K = 24, 256, 512


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _x(rows=M, cols=K, seed=0):
    return (torch.randn(rows, cols, generator=_gen(seed)) * 2).bfloat16()


def _block_weight(fp8, rows=N, cols=K):
    w = torch.randn(rows, cols, generator=_gen(1)) * 0.05
    scale = w.view(rows // 128, 128, cols // 128, 128).abs().amax((1, 3)) / ref.FP8_MAX[fp8]
    q = (w / ref.expand_blocks(scale, rows, cols, 128, 128).float()).to(fp8)
    return q, scale, ref.dequant_fp8(q, fp8) * ref.expand_blocks(scale, rows, cols, 128, 128)


def _block_activations(aiter, transpose_scale):
    xq, xs = aiter.per_group_quant_hip(_x(), quant_dtype=aiter.dtypes.fp8, transpose_scale=transpose_scale)
    grid = xs.flatten().view(-1, M).T if transpose_scale else xs
    return xq, xs, ref.dequant_fp8(xq, aiter.dtypes.fp8) * ref.expand_blocks(grid, M, K, 1, 128)


def _rel_err(out, expected):
    return float((out.double() - expected).norm() / expected.norm())


# --------------------------------------------------------------------------- scenarios


def _shuffle_scale_layout(aiter):
    _, scale = aiter.per_group_quant_hip(_x(6, 384), quant_dtype=aiter.dtypes.fp8, transpose_scale=True)
    _, plain = aiter.per_group_quant_hip(_x(6, 384), quant_dtype=aiter.dtypes.fp8)
    if torch.equal(scale.flatten(), plain.T.flatten()):
        return "(G, M)"
    return "(M, G)" if torch.equal(scale, plain) else "other"


def _asm_gemm_cosines(aiter):
    from aiter.ops.shuffle import shuffle_weight

    fp8 = aiter.dtypes.fp8
    xq, xs, xd = _block_activations(aiter, transpose_scale=False)
    xq_t, xs_t, xd_t = _block_activations(aiter, transpose_scale=True)
    wq, ws, wd = _block_weight(fp8)
    shuffled = shuffle_weight(wq)
    out = torch.empty(M, N, dtype=torch.bfloat16)
    xq_tok, xs_tok = aiter.per_token_quant_hip(_x(), quant_dtype=fp8)
    w_tok = torch.randn(N, K, generator=_gen(2)) * 0.05
    ws_tok = w_tok.abs().amax(1, keepdim=True) / ref.FP8_MAX[fp8]
    wq_tok = (w_tok / ws_tok).to(fp8)
    token_ref = (ref.dequant_fp8(xq_tok, fp8) * xs_tok.double()) @ (ref.dequant_fp8(wq_tok, fp8) * ws_tok.double()).T
    a, a_s = aiter.per_1x32_mx_quant_hip(_x(), quant_dtype=aiter.dtypes.fp4x2, shuffle=True)
    b, b_s = aiter.per_1x32_mx_quant_hip(w_tok.bfloat16(), quant_dtype=aiter.dtypes.fp4x2, shuffle=True)
    mx_out = torch.empty(32, N, dtype=torch.bfloat16)
    return {
        "gemm_a8w8_ASM": ref.cosine(
            aiter.gemm_a8w8_ASM(
                xq_tok, shuffle_weight(wq_tok, layout=(32, 16)), xs_tok, ws_tok.T.contiguous(), torch.zeros(1, N)
            ),
            token_ref,
        ),
        "flatmm_a8w8_blockscale_ASM": ref.cosine(
            aiter.flatmm_a8w8_blockscale_ASM(
                xq, shuffle_weight(wq, layout=(16, 32)), xs.t().contiguous(), ws.t().contiguous()
            ),
            xd @ wd.T,
        ),
        "gfx950_a8w8_blockscale_ASM": ref.cosine(
            aiter.gfx950_a8w8_blockscale_ASM(xq, shuffled, xs, ws, out), xd @ wd.T
        ),
        "gemm_a8w8_blockscale_bpreshuffle_asm": ref.cosine(
            aiter.gemm_a8w8_blockscale_bpreshuffle_asm(xq_t, shuffled, out, xs_t, ws), xd_t @ wd.T
        ),
        "gemm_a4w4_asm": ref.cosine(aiter.gemm_a4w4_asm(a, shuffle_weight(b), a_s, b_s, mx_out)[:M], token_ref),
    }


_ASM_ENTRY_POINTS = (
    "gemm_a8w8_ASM",
    "flatmm_a8w8_blockscale_ASM",
    "gfx950_a8w8_blockscale_ASM",
    "gemm_a8w8_blockscale_bpreshuffle_asm",
    "gemm_a4w4_asm",
)


def _asm_gemm_verdicts(aiter):
    verdict = {True: "matches", False: "degraded"}
    return {
        name: "garbage" if abs(cos) < 0.1 else verdict[cos > 0.95] for name, cos in _asm_gemm_cosines(aiter).items()
    }


def _partial_transpose_written(aiter):
    out = torch.full((4, 3), -7.0)
    aiter.partial_transpose(out, torch.arange(12.0).view(4, 3), torch.tensor([4], dtype=torch.int32))
    return not bool((out == -7).all())


def _normalized_output_ratio(aiter):
    import atom.model_ops.linear as linear

    weight, scale, dequantized = _block_weight(torch.float8_e4m3fn)
    weight = torch.where(weight.view(torch.uint8) == 0x80, 0, weight.view(torch.uint8)).view(torch.float8_e4m3fn)
    layer = linear.LinearBase(K, N, quant_type=aiter.QuantType.per_1x128, params_dtype=aiter.dtypes.fp8)
    layer.weight_loader(layer.weight, weight)
    layer.weight_loader(layer.weight_scale, scale)
    layer.process_weights_after_loading()
    x = _x()
    return round(float(layer(x).double().norm() / (x.double() @ dequantized.T).norm()), 1)


def _ck_build_failure(aiter):
    from aiter.ops.shuffle import shuffle_weight

    fp8 = aiter.dtypes.fp8
    xq, xs = aiter.per_token_quant_hip(_x(), quant_dtype=fp8)
    padded = shuffle_weight(torch.zeros(N, K + 32, dtype=torch.uint8).view(fp8))
    outcome = {}
    for module, call in {
        "ck": lambda: aiter.gemm_a8w8(xq, torch.zeros(N, K, dtype=fp8), xs, torch.ones(N, 1)),
        "cktile": lambda: aiter.gemm_a8w8_bpreshuffle(xq, padded, xs, torch.ones(N, 1)),
    }.items():
        try:
            call()
        except SystemExit:
            outcome[module] = "SystemExit"
        except RuntimeError:
            outcome[module] = "RuntimeError"
    return outcome


def _dense_weight_magnification(aiter):
    import atom.model_ops.linear as linear

    weight, scale, dequantized = _block_weight(torch.float8_e4m3fn)
    layer = linear.LinearBase(K, N, source_quant_dtype=aiter.dtypes.fp8)
    layer.weight_loader(layer.weight, weight)
    layer.weight_loader(layer.weight_scale, scale)
    layer.process_weights_after_loading()
    ratio = float(layer.weight.double().norm() / dequantized.norm())
    return "x1" if ratio < 1.01 else ("x1000+" if ratio > 1000 else f"x{ratio:.0f}")


def _loaded_mxfp4_scale_bytes(aiter):
    import atom.model_ops.linear as linear

    from quantguard.sim.workload._checkpoint import _quantize

    weight, scale = _quantize(torch.randn(N, K, generator=_gen(3)) * 0.05, "mxfp4")
    layer = linear.LinearBase(K, N, quant_type=aiter.QuantType.per_1x32, params_dtype=aiter.dtypes.fp4x2)
    layer.weight_loader(layer.weight_scale, scale)
    return (
        "bytes"
        if torch.equal(layer.weight_scale.view(torch.uint8), scale.view(torch.uint8))
        else ("zeros" if (layer.weight_scale.view(torch.uint8) == 0).all() else "other")
    )


def _blockscale_errors(aiter):
    from aiter.ops.shuffle import shuffle_weight
    from aiter.ops.triton.gemm.basic.gemm_a8w8_blockscale import (
        gemm_a8w8_blockscale as triton_blockscale,
    )
    from aiter.ops.triton.gemm.basic.gemm_a8w8_blockscale import (
        gemm_a8w8_blockscale_preshuffle as triton_preshuffle,
    )

    xq, xs, xd = _block_activations(aiter, transpose_scale=False)
    xq_t, xs_t, xd_t = _block_activations(aiter, transpose_scale=True)
    wq, ws, wd = _block_weight(aiter.dtypes.fp8)
    shuffled = shuffle_weight(wq)
    out = torch.empty(M, N, dtype=torch.bfloat16)
    wide = lambda err: "wrong" if err > 0.1 else "right"  # noqa: E731
    return {
        "ck": {
            wide(_rel_err(aiter.gemm_a8w8_blockscale(xq, wq, xs, ws), xd @ wd.T)),
            wide(_rel_err(aiter.gemm_a8w8_blockscale_bpreshuffle(xq_t, shuffled, xs_t, ws), xd_t @ wd.T)),
        },
        "triton": {
            wide(_rel_err(triton_blockscale(xq, wq, xs, ws), xd @ wd.T)),
            wide(_rel_err(triton_preshuffle(xq_t, shuffled.view(N // 16, -1), xs_t, ws), xd_t @ wd.T)),
        },
        "asm": {
            wide(_rel_err(aiter.gemm_a8w8_blockscale_bpreshuffle_asm(xq_t, shuffled, out, xs_t, ws), xd_t @ wd.T)),
            wide(_rel_err(aiter.gfx950_a8w8_blockscale_ASM(xq, shuffled, xs, ws, out), xd @ wd.T)),
            wide(
                _rel_err(
                    aiter.flatmm_a8w8_blockscale_ASM(
                        xq, shuffle_weight(wq, layout=(16, 32)), xs.t().contiguous(), ws.t().contiguous()
                    ),
                    xd @ wd.T,
                )
            ),
        },
    }


def _e8m0_producer_bytes(aiter):
    from aiter.ops.triton.quant import dynamic_mxfp4_quant

    block = torch.zeros(1, 32)
    block[0, 0] = 5.0  # RoundUp and Even give 2^0 (byte 127); Ceil gives 2^1
    _, triton_scale = dynamic_mxfp4_quant(block)
    _, hip_scale = aiter.per_1x32_mx_quant_hip(block.bfloat16(), quant_dtype=aiter.dtypes.fp4x2)
    return {"triton": int(triton_scale[0, 0]), "hip": int(hip_scale.view(torch.uint8)[0, 0])}


def _routed_weight_sum(aiter):
    weights = torch.empty(5, 2)
    ids = torch.empty(5, 2, dtype=torch.int32)
    aiter.biased_grouped_topk(torch.randn(5, 8, generator=_gen(4)), torch.zeros(8), weights, ids, 4, 2, True, 2.5)
    return round(float(weights.sum(1).mean()), 4)


def _per_tensor_output_ratio(aiter):
    from aiter.tuned_gemm import tgemm

    x = _x(8, 256).float()
    w = torch.randn(64, 256, generator=_gen(5)) * 0.05
    scale_a, scale_b = x.abs().max() / 240, w.abs().max() / 240
    fp8 = aiter.dtypes.fp8
    xq, wq = (x / scale_a).to(fp8), (w / scale_b).to(fp8)
    out = tgemm.mm(xq, wq, otype=torch.float32, scale_a=scale_a.reshape(1), scale_b=scale_b.reshape(1))
    expected = ref.dequant_fp8(xq, fp8) * scale_a.double() @ (ref.dequant_fp8(wq, fp8) * scale_b.double()).T
    ratio = float(out.double().norm() / expected.norm())
    direction = float(torch.nn.functional.cosine_similarity(out.double().flatten(), expected.flatten(), dim=0))
    magnitude = (
        "scale applied"
        if abs(ratio - 1) < 1e-3
        else ("scale dropped" if abs(ratio * float(scale_b) - 1) < 1e-3 else f"ratio {ratio:.3g}")
    )
    return round(direction, 4), magnitude


def _moe_forward_in_ck_free(aiter):
    from atom.model_ops.moe import FusedMoE

    moe = FusedMoE(8, 2, 256, 256, 4, 2, quant_type=aiter.QuantType.per_1x128, params_dtype=aiter.dtypes.fp8)
    for param in moe.parameters():
        param.data.view(torch.uint8).zero_()
    moe.process_weights_after_loading()
    try:
        moe(_x(4, 256), torch.randn(4, 8))
    except RuntimeError as error:
        return "build failed" if "build" in str(error) else "other error"
    return "ran on Triton"


def _hash_routed_experts(aiter):
    """Which experts ATOM's select_experts returns when a hash-table routing function is given."""
    from atom.model_ops.moe import FusedMoE

    table = torch.tensor([[3, 5], [0, 7]], dtype=torch.int32)

    def hash_topk(hidden_states, gating_output, topk, renormalize):
        return torch.full(table.shape, 0.5), table

    logits = torch.zeros(2, 8)
    logits[:, 1] = logits[:, 6] = 5.0  # the logits prefer experts 1 and 6
    _, ids = FusedMoE.select_experts(
        torch.zeros(2, 16), logits, 2, True, True, 2, 4, hash_topk, "sigmoid", torch.zeros(8)
    )
    return "table" if torch.equal(ids, table) else sorted(ids[0].tolist())


def _swiglu_stage1(aiter):
    """What stage 1 of fused_moe(activation=Swiglu) makes of gate 1 and up 0 (gpt-oss Swiglu: sigmoid(1.702))."""
    from aiter.fused_moe import fused_moe
    from aiter.ops.shuffle import shuffle_weight

    w1 = torch.zeros(1, 64, 32, dtype=torch.bfloat16)
    w1[0, :32] = torch.eye(32)  # gate = x, up = 0
    w2 = torch.eye(32, dtype=torch.bfloat16).unsqueeze(0)
    out = fused_moe(
        torch.ones(1, 32),
        shuffle_weight(w1),
        shuffle_weight(w2),
        torch.ones(1, 1),
        torch.zeros(1, 1, dtype=torch.int32),
        activation=aiter.ActivationType.Swiglu,
        dtype=torch.float32,
    )
    return round(float(out[0, 0]), 4)


@dataclass(frozen=True)
class Scenario:
    settings: dict
    observe: Callable
    clean: object
    faulty: object
    unread: dict = field(default_factory=dict)  # "module.function" -> parameter the faulty one never reads


def _wo_a_low_block_error(aiter):
    """Relative error of wo_a's low-magnitude block after the load-time BF16 conversion."""
    import atom.models.deepseek_v4 as v4

    w = torch.randn(N, K, generator=_gen(4)) * 0.05
    w[128:256, 256:384] *= 2.0**-12  # one block far below the weight's amax
    scale = torch.exp2(torch.ceil(torch.log2(w.view(N // 128, 128, K // 128, 128).abs().amax((1, 3)) / 448)))
    expanded = ref.expand_blocks(scale, N, K, 128, 128).float()
    q = (w / expanded).to(torch.float8_e4m3fn)
    exact = (q.float() * expanded)[128:256, 256:384].double()
    error = _rel_err(v4._dequant_fp8_block_to_bf16(q, scale, block=128)[128:256, 256:384], exact)
    return "bf16 rounding" if error <= 2.0**-8 else "crushed"


SCENARIOS = {
    "wo_a_per_tensor_requant": Scenario({"atom": True}, _wo_a_low_block_error, "bf16 rounding", "crushed"),
    "triton_quant_ignores_shuffle_scale": Scenario(
        {"ck_free": True},
        _shuffle_scale_layout,
        "(G, M)",
        "(M, G)",
        {"aiter.ops.quant._fallback_dynamic_per_token_scaled_quant": "shuffle_scale"},
    ),
    "asm_gemm_garbage_gfx950": Scenario(
        {"arch": "gfx950", "ck_free": True, "release_build": True},
        _asm_gemm_verdicts,
        dict.fromkeys(_ASM_ENTRY_POINTS, "matches"),
        dict.fromkeys(_ASM_ENTRY_POINTS, "garbage"),
    ),
    "partial_transpose_noop": Scenario(
        {"ck_free": True},
        _partial_transpose_written,
        True,
        False,
        {"aiter.ops.quant._fallback_partial_transpose": "input"},
    ),
    "missing_e4m3fnuz_normalization": Scenario({"arch": "gfx942", "atom": True}, _normalized_output_ratio, 1.0, 0.5),
    "jit_build_systemexit": Scenario(
        {"ck_free": True},
        _ck_build_failure,
        {"ck": "RuntimeError", "cktile": "RuntimeError"},
        {"ck": "SystemExit", "cktile": "SystemExit"},
    ),
    "fp8_copy_drops_scale": Scenario(
        {"atom": True},
        _dense_weight_magnification,
        "x1",
        "x1000+",
        {"atom.model_ops.linear.load_fp8_into_dense": "block_scale"},
    ),
    "e8m0_copy_zero_fill": Scenario({"arch": "gfx950", "atom": True}, _loaded_mxfp4_scale_bytes, "bytes", "zeros"),
    "gemm_reads_scale_wrong_major": Scenario(
        {"arch": "gfx950", "release_build": True},
        _blockscale_errors,
        {"ck": {"right"}, "triton": {"right"}, "asm": {"right"}},
        {"ck": {"wrong"}, "triton": {"right"}, "asm": {"right"}},
    ),
    "e8m0_ceil_rounding": Scenario(
        # A release build: at HEAD the clean Triton producer does not read scaling_mode either.
        {"arch": "gfx950", "release_build": True},
        _e8m0_producer_bytes,
        {"triton": 127, "hip": 127},
        {"triton": 128, "hip": 127},
        {"aiter.ops.triton.quant.quant.dynamic_mxfp4_quant": "scaling_mode"},
    ),
    "moe_missing_routed_scaling": Scenario(
        {},
        _routed_weight_sum,
        2.5,
        1.0,
        {"aiter.ops.topk.biased_grouped_topk": "routed_scaling_factor"},
    ),
    "hipblaslt_drops_scale_b": Scenario(
        {},
        _per_tensor_output_ratio,
        (1.0, "scale applied"),
        (1.0, "scale dropped"),
        {"aiter.tuned_gemm.gemm_a16w16": "scale_b"},
    ),
    "atom_ignores_ck_free": Scenario(
        {"ck_free": True, "atom": True},
        _moe_forward_in_ck_free,
        "ran on Triton",
        "build failed",
    ),
    "custom_routing_ignored": Scenario(
        {"atom": True},
        _hash_routed_experts,
        "table",
        [1, 6],
        {"atom.model_ops.moe._select_experts": "custom_routing_function"},
    ),
    # Swiglu of (gate 1, up 0): sigmoid(1.702) = 0.8458 (the "+1" keeps it); SiLU gives 1 * sigmoid(1) * 0 = 0.
    "moe_swiglu_runs_silu": Scenario({}, _swiglu_stage1, 0.8458, 0.0),
}


def test_every_fault_has_a_scenario():
    assert set(SCENARIOS) == set(faults.FAULTS)


def _resolve(path):
    import importlib

    module, _, name = path.rpartition(".")
    return ref.implementation(getattr(importlib.import_module(module), name))


@pytest.mark.parametrize("injected", [False, True], ids=["clean", "faulty"])
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_fault_reproduces_its_incident(install, monkeypatch, name, injected):
    scenario = SCENARIOS[name]
    settings = dict(scenario.settings)
    if settings.get("atom"):
        monkeypatch.setenv("ATOM_CK_FREE", "1" if settings.get("ck_free") else "0")
    install(faults=[name] if injected else (), **settings)
    import aiter

    assert scenario.observe(aiter) == (scenario.faulty if injected else scenario.clean)
    for path, parameter in scenario.unread.items():
        assert (parameter in ref.unread_parameters(_resolve(path))) is injected


# --------------------------------------------------------------------------- per-backend injection


@pytest.mark.parametrize("backend", ["ck", "triton", "asm"])
def test_wrong_major_is_injected_per_backend(install, backend):
    install("gfx950", faults=[f"gemm_reads_scale_wrong_major@{backend}"], release_build=True)
    import aiter

    observed = _blockscale_errors(aiter)
    assert observed == {b: ({"wrong"} if b == backend else {"right"}) for b in ("ck", "triton", "asm")}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (["e8m0_ceil_rounding@hip"], {"triton": 127, "hip": 128}),
        ({"e8m0_ceil_rounding": ("hip", "triton")}, {"triton": 128, "hip": 128}),
    ],
)
def test_ceil_rounding_is_injected_per_backend(install, spec, expected):
    install("gfx950", faults=spec)
    import aiter

    assert _e8m0_producer_bytes(aiter) == expected


def test_systemexit_is_injected_per_backend(install):
    install(ck_free=True, faults=["jit_build_systemexit@cktile"])
    import aiter

    assert _ck_build_failure(aiter) == {"ck": "RuntimeError", "cktile": "SystemExit"}


def test_missing_routed_scaling_shrinks_the_routed_output(install):
    outputs = []
    for spec in ((), ["moe_missing_routed_scaling"]):
        install(faults=spec)
        import aiter
        from aiter.fused_moe import fused_moe
        from aiter.ops.shuffle import shuffle_weight

        weights = torch.empty(6, 2)
        ids = torch.empty(6, 2, dtype=torch.int32)
        aiter.biased_grouped_topk(torch.randn(6, 8, generator=_gen(5)), torch.zeros(8), weights, ids, 4, 2, True, 2.5)
        w1 = shuffle_weight(torch.randn(8, 512, 256, generator=_gen(6)).bfloat16())
        w2 = shuffle_weight(torch.randn(8, 256, 256, generator=_gen(7)).bfloat16())
        outputs.append(fused_moe(_x(6, 256), w1, w2, weights, ids).double())
    torch.testing.assert_close(outputs[1] * 2.5, outputs[0], rtol=0.02, atol=0.02 * float(outputs[0].abs().max()))
