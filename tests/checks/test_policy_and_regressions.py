"""CK-free policy (blocked ASM, backend selection) and the regression checklist (jit_exit, noop, weights, ...)."""

from __future__ import annotations

import pytest
import torch

import quantguard
import quantguard.sim as sim
from quantguard.checks.ignored_parameters import unread_parameters
from quantguard.checks.weights import scan_tensors
from quantguard.testing import capture_events

M, N, K = 32, 256, 512


def _enable(tmp_path, **options):
    quantguard.enable(log=str(tmp_path / "log.jsonl"), sample_rate=1.0, **options)


def _blockscale_operands(a, fp8):
    from aiter.ops.shuffle import shuffle_weight

    x = torch.randn(M, K, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    xq, xs = a.per_group_quant_hip(x, quant_dtype=fp8)
    w = torch.randn(N, K, generator=torch.Generator().manual_seed(1)) * 0.05
    ws = w.view(N // 128, 128, K // 128, 128).abs().amax((1, 3)) / torch.finfo(fp8).max
    wq = (w / ws.repeat_interleave(128, 0).repeat_interleave(128, 1)).to(fp8)
    return xq, xs, shuffle_weight(wq), ws, wq


def _a8w8_asm_operands(a):
    from aiter.ops.shuffle import shuffle_weight

    fp8 = a.dtypes.fp8
    xq, xs = a.per_token_quant_hip(torch.randn(M, K).to(torch.bfloat16), quant_dtype=fp8)
    w = torch.randn(N, K) * 0.05
    ws = w.abs().amax(1, keepdim=True) / torch.finfo(fp8).max
    return xq, shuffle_weight((w / ws).to(fp8), layout=(32, 16)), xs, ws, torch.zeros(N)


def test_asm_is_blocked_on_gfx950_ck_free_naming_entry_and_kernel(tmp_path):
    sim.install("gfx950", ck_free=True, faults=("asm_gemm_garbage_gfx950",))
    import aiter

    xq, xs, shuffled, ws, _ = _blockscale_operands(aiter, aiter.dtypes.fp8)
    with capture_events() as events:
        _enable(tmp_path)
        with pytest.raises(quantguard.QuantGuardBlocked) as info:
            aiter.gemm_a8w8_blockscale(xq, shuffled, xs, ws, isBpreshuffled=True)
    assert info.value.target == "aiter.ops.gemm_op_a8w8.gfx950_a8w8_blockscale_ASM"
    assert info.value.entry_point == "aiter.ops.gemm_op_a8w8.gemm_a8w8_blockscale"
    assert "gemm_a8w8_blockscale_preshuffle" in str(info.value)
    [blocked] = events.named("blocked")
    assert blocked["action"] == "raise" and blocked["entry_point"] == info.value.entry_point


@pytest.mark.parametrize("arch, ck_free", [("gfx950", False), ("gfx942", True), ("gfx942", False)])
def test_asm_runs_where_it_is_safe(tmp_path, arch, ck_free):
    sim.install(arch, ck_free=ck_free)
    import aiter

    with capture_events() as events:
        _enable(tmp_path)
        aiter.gemm_a8w8_ASM(*_a8w8_asm_operands(aiter))
    assert not events.named("blocked") and not events.violations()


def test_reroute_returns_the_triton_result(tmp_path):
    sim.install("gfx950", ck_free=True, faults=("asm_gemm_garbage_gfx950",))
    import aiter
    from aiter.ops.triton.gemm.basic.gemm_a8w8 import gemm_a8w8 as triton_gemm

    operands = _a8w8_asm_operands(aiter)
    from quantguard.numerics.layouts import unshuffle_weight

    expected = triton_gemm(
        operands[0],
        unshuffle_weight(operands[1], (32, 16)),
        operands[2],
        operands[3],
        operands[4],
        dtype=torch.bfloat16,
    )
    with capture_events() as events:
        _enable(tmp_path, on_block="reroute")
        result = aiter.gemm_a8w8_ASM(*operands)
    assert torch.equal(result, expected)
    [blocked] = events.named("blocked")
    assert blocked["action"] == "reroute" and blocked["rerouted_to"].endswith("gemm_a8w8.gemm_a8w8")
    assert not events.violations(check="numerics")


def test_log_only_lets_garbage_through_and_numerics_sees_it(tmp_path):
    sim.install("gfx950", ck_free=True, faults=("asm_gemm_garbage_gfx950",))
    import aiter

    with capture_events() as events:
        _enable(tmp_path, on_block="log")
        aiter.gemm_a8w8_ASM(*_a8w8_asm_operands(aiter))
    assert events.named("blocked")[0]["action"] == "log"
    [numerics] = [e for e in events.violations(check="numerics") if e["details"]["reference"] == "matched"]
    assert numerics["details"]["cosine"] < 0.1


def test_ck_kernel_in_ck_free_build_is_a_backend_selection_violation(tmp_path):
    sim.install("gfx942", ck_free=True)
    import aiter

    xq, xs, shuffled, ws, _ = _blockscale_operands(aiter, aiter.dtypes.fp8)
    with capture_events() as events:
        _enable(tmp_path)
        with pytest.raises(RuntimeError):
            aiter.gemm_a8w8_blockscale_bpreshuffle(xq, shuffled, xs.t().contiguous().view(xs.shape), ws)
    assert events.violations(check="backend_selection")


@pytest.mark.parametrize("preshuffled, ck_violation", [(False, True), (True, False)])
def test_blockscale_dispatching_to_asm_is_not_called_ck(tmp_path, preshuffled, ck_violation):
    """gemm_a8w8_blockscale(isBpreshuffled=True) on gfx950 runs the ASM kernel: a block, not a CK call."""
    sim.install("gfx950", ck_free=True)
    import aiter

    xq, xs, shuffled, ws, plain = _blockscale_operands(aiter, aiter.dtypes.fp8)
    with capture_events() as events:
        _enable(tmp_path, on_block="log")
        try:
            aiter.gemm_a8w8_blockscale(xq, shuffled if preshuffled else plain, xs, ws, isBpreshuffled=preshuffled)
        except RuntimeError:
            assert ck_violation  # the CK module cannot be built in a CK-free install
    assert bool(events.violations(check="backend_selection")) is ck_violation
    assert bool(events.named("blocked")) is preshuffled


def test_jit_systemexit_becomes_runtime_error(tmp_path):
    sim.install("gfx942", ck_free=True, faults=("jit_build_systemexit",))
    import aiter

    xq, xs, shuffled, ws, _ = _blockscale_operands(aiter, aiter.dtypes.fp8)
    with capture_events() as events:
        _enable(tmp_path)
        with pytest.raises(RuntimeError, match="SystemExit"):
            aiter.gemm_a8w8_blockscale_bpreshuffle(xq, shuffled, xs.t().contiguous().view(xs.shape), ws)
    assert events.violations(check="jit_exit")


def test_jit_failure_without_the_fault_stays_a_plain_runtime_error(tmp_path):
    sim.install("gfx942", ck_free=True)
    import aiter

    xq, xs, shuffled, ws, _ = _blockscale_operands(aiter, aiter.dtypes.fp8)
    with capture_events() as events:
        _enable(tmp_path)
        with pytest.raises(RuntimeError, match="build"):
            aiter.gemm_a8w8_blockscale_bpreshuffle(xq, shuffled, xs.t().contiguous().view(xs.shape), ws)
    assert not events.violations(check="jit_exit")


@pytest.mark.parametrize("faults, noop", [((), False), (("partial_transpose_noop",), True)])
def test_partial_transpose_must_transpose(tmp_path, faults, noop):
    sim.install("gfx942", ck_free=True, faults=faults)
    import aiter

    source = torch.randn(12, 4)
    out = torch.zeros(12, 4)
    with capture_events() as events:
        _enable(tmp_path)
        aiter.partial_transpose(out, source, torch.tensor([7], dtype=torch.int32))
    found = events.violations(check="noop_transform")
    assert bool(found) is noop
    if noop:
        assert "was a no-op" in found[0]["message"]


@pytest.mark.parametrize("faults, flagged", [((), False), (("moe_missing_routed_scaling",), True)])
def test_routing_must_apply_routed_scaling_factor(tmp_path, faults, flagged):
    sim.install("gfx942", faults=faults)
    import aiter

    tokens, experts = 16, 16
    logits = torch.randn(tokens, experts, generator=torch.Generator().manual_seed(3))
    weights = torch.empty(tokens, 4)
    ids = torch.empty(tokens, 4, dtype=torch.int32)
    with capture_events() as events:
        _enable(tmp_path)
        aiter.biased_grouped_topk(logits, torch.zeros(experts), weights, ids, 4, 2, True, routed_scaling_factor=2.5)
    found = [e for e in events.violations(check="kwarg_ignored")]
    assert bool(found) is flagged
    if flagged:
        assert found[0]["message"].startswith("routed_scaling_factor=2.5 requested; top-k weights carry 1x")


def test_normalization_that_does_not_normalize_is_caught(tmp_path, make_module):
    sim.install("gfx942", atom=True)
    module = make_module(
        "qgt_norm",
        """
        import torch
        def normalize_e4m3fn_to_e4m3fnuz(weight, weight_scale, input_scale=None):
            return weight.view(torch.float8_e4m3fnuz), weight_scale, input_scale  # forgot the 2x and 0x80
    """,
    )
    import dataclasses

    from quantguard.contracts.atom import CONTRACTS

    template = next(c for c in CONTRACTS if c.target.endswith("normalize_e4m3fn_to_e4m3fnuz"))
    quantguard.register(dataclasses.replace(template, target="qgt_norm.normalize_e4m3fn_to_e4m3fnuz"))
    weight = torch.tensor([0x80, 0x38, 0x40, 0x00], dtype=torch.uint8).view(torch.float8_e4m3fn).reshape(2, 2)
    with capture_events() as events:
        _enable(tmp_path, targets="qgt_norm.*")
        module.normalize_e4m3fn_to_e4m3fnuz(weight, torch.tensor([0.5]))
    messages = [e["message"] for e in events.violations(check="fp8_variant")]
    assert any("weight bytes differ" in m for m in messages) and any(
        "weight_scale was not exactly doubled" in m for m in messages
    )


def test_real_normalization_is_quiet(tmp_path):
    sim.install("gfx942", atom=True)
    from atom.model_ops.utils import normalize_e4m3fn_to_e4m3fnuz

    weight = torch.tensor([0x80, 0x38, 0x40, 0x00], dtype=torch.uint8).view(torch.float8_e4m3fn).reshape(2, 2)
    with capture_events() as events:
        _enable(tmp_path)
        normalize_e4m3fn_to_e4m3fnuz(weight.clone(), torch.tensor([0.5]))
    assert not events.violations()


# -- static: parameters accepted but never read ------------------------------------------------


def _reads_all(x, scale, shuffle_scale=False):
    return x * scale if shuffle_scale else x / scale


def _ignores(x, scale, shuffle_scale=False):
    return x * scale


def _forwards(*args, **kwargs):
    return _reads_all(*args, **kwargs)


def _captured(x, shuffle_scale=False):
    return lambda: x if shuffle_scale else -x


def _introspects(x, shuffle_scale=False):
    return locals()


@pytest.mark.parametrize(
    "function, unread",
    [
        (_reads_all, []),
        (_ignores, ["shuffle_scale"]),
        (_forwards, []),
        (_captured, []),
        (_introspects, []),
    ],
)
def test_unread_parameters(function, unread):
    assert unread_parameters(function) == unread


# -- weight-load scan --------------------------------------------------------------------------


def _scan(**tensors):
    return {finding.check for finding in scan_tensors(tensors.items())}


def test_weight_scan_catches_loading_bugs():
    fp8 = torch.randn(64, 64).clamp(-3, 3).to(torch.float8_e4m3fn)
    assert _scan(
        **{"dense.weight": (fp8.to(torch.float32) * 100).clamp(-448, 448).to(torch.float8_e4m3fn).to(torch.bfloat16)}
    ) == {"weight_magnitude"}
    assert _scan(**{"mx.weight_scale": torch.zeros(64, 2, dtype=torch.uint8)}) == {"scale_values"}
    assert _scan(**{"mx.weight_scale": torch.full((64, 2), 3, dtype=torch.uint8)}) == {"scale_values"}
    assert _scan(**{"lin.weight": torch.zeros(8, 8)}) == {"unloaded_parameter"}
    assert _scan(**{"lin.weight": torch.tensor([[float("nan"), 1.0]])}) == {"nonfinite"}
    assert _scan(**{"q.weight": fp8, "q.weight_scale": torch.full((1,), 1e3)}) == {"weight_magnitude"}


def test_weight_scan_is_quiet_on_healthy_weights():
    fp8 = (torch.randn(64, 64) * 50).clamp(-448, 448).to(torch.float8_e4m3fn)
    assert (
        _scan(
            **{
                "dense.weight": (torch.randn(64, 64) * 0.02).to(torch.bfloat16),
                "q.weight": fp8,
                "q.weight_scale": torch.full((1,), 1e-3),
                "mx.weight_scale": torch.randint(110, 130, (64, 2), dtype=torch.uint8),
                "norm.weight": torch.ones(64),
            }
        )
        == set()
    )


def test_scan_weights_reports_violations_when_enabled(tmp_path):
    model = torch.nn.Linear(8, 8)
    with torch.no_grad():
        model.weight.zero_()
    with capture_events() as events:
        _enable(tmp_path)
        findings = quantguard.scan_weights(model)
    assert [f.check for f in findings] == ["unloaded_parameter"]
    assert events.violations(target="quantguard.scan_weights")


@pytest.mark.parametrize("arch, ck_free, blocked", [("gfx950", True, True), ("gfx942", True, False)])
def test_asm_looking_functions_no_contract_names_are_reported_and_covered(tmp_path, arch, ck_free, blocked):
    sim.install(arch, ck_free=ck_free)
    with capture_events() as events:
        _enable(tmp_path)
    [uncovered] = events.named("uncovered_kernels")
    assert "aiter.ops.gemm_op_a8w8.gemm_a8w8_asm" in uncovered["kernels"] and uncovered["policy"] is blocked
    import aiter.ops.gemm_op_a8w8 as module

    operands = _a8w8_asm_operands(__import__("aiter"))
    out = torch.empty(M, N, dtype=torch.bfloat16)
    if blocked:
        with pytest.raises(quantguard.QuantGuardBlocked, match="gemm_a8w8_asm"):
            module.gemm_a8w8_asm(operands[0], operands[1], operands[2], operands[3], out, "", operands[4])
    else:
        module.gemm_a8w8_asm(operands[0], operands[1], operands[2], operands[3], out, "", operands[4])


@pytest.mark.parametrize("poison, flagged", [("padding", False), ("valid", True)])
def test_swizzled_scale_padding_is_not_read_as_nan(tmp_path, poison, flagged):
    """gemm_afp4wfp4_preshuffle gets MX-swizzled buffers whose padding AITER leaves uninitialized."""
    sim.install("gfx950")
    import aiter
    from aiter.ops.shuffle import shuffle_weight
    from aiter.utility.fp4_utils import e8m0_shuffle

    from quantguard.numerics.layouts import mx_swizzle_index

    rows, n, k = 200, 256, 512
    x = torch.randn(rows, k, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    w = torch.randn(n, k, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
    xq, xs = aiter.per_1x32_mx_quant_hip(x, quant_dtype=aiter.dtypes.fp4x2, shuffle=True)
    wq, ws = aiter.per_1x32_mx_quant_hip(w, quant_dtype=aiter.dtypes.fp4x2, shuffle=False)
    raw = xs.view(torch.uint8)
    valid = torch.zeros(raw.numel(), dtype=torch.bool)
    valid[mx_swizzle_index(rows, k // 32).reshape(-1)] = True
    raw.view(-1)[(~valid if poison == "padding" else valid).nonzero()[0]] = 0xFF
    ws_bytes = e8m0_shuffle(ws).view(torch.uint8)
    with capture_events() as events:
        _enable(tmp_path)
        from aiter.ops.triton.gemm.basic.gemm_afp4wfp4 import gemm_afp4wfp4_preshuffle  # the guarded one

        gemm_afp4wfp4_preshuffle(
            xq.view(torch.uint8),
            shuffle_weight(wq).view(torch.uint8).view(n // 16, -1),
            raw.view(raw.shape[0] // 32, -1),
            ws_bytes.view(ws_bytes.shape[0] // 32, -1),
        )
    nan_events = [e for e in events.violations(check="scale_values") if "NaN" in e["message"]]
    assert bool(nan_events) is flagged


def _flatmm_operands(aiter):
    """flatmm's own layout: weight shuffled (16, 32), x_scale (K/128, M), w_scale (K/128, N/128)."""
    from aiter.ops.shuffle import shuffle_weight

    xq, xs, _, ws, wq = _blockscale_operands(aiter, aiter.dtypes.fp8)
    return xq, shuffle_weight(wq, layout=(16, 32)), xs.t().contiguous(), ws.t().contiguous()


@pytest.mark.parametrize("scales, flagged", [("kernel layout", False), ("row-major (M, G)", True)])
def test_flatmm_scales_follow_the_kernels_flat_layout(tmp_path, scales, flagged):
    sim.install("gfx942")
    import aiter

    xq, weight, xs_t, ws_t = _flatmm_operands(aiter)
    if scales != "kernel layout":
        xs_t = xs_t.t().contiguous()  # the (M, G) tensor other blockscale GEMMs take
    with capture_events() as events:
        _enable(tmp_path)
        aiter.flatmm_a8w8_blockscale_ASM(xq, weight, xs_t, ws_t)
    assert bool(events.violations()) is flagged, [e["message"] for e in events.violations()]


def test_flatmm_reroute_matches_the_kernel(tmp_path):
    sim.install("gfx950", ck_free=True)
    import aiter

    operands = _flatmm_operands(aiter)
    expected = aiter.flatmm_a8w8_blockscale_ASM(*operands)
    with capture_events() as events:
        _enable(tmp_path, on_block="reroute")
        result = aiter.flatmm_a8w8_blockscale_ASM(*operands)
    assert events.named("blocked")[0]["action"] == "reroute"
    assert torch.allclose(result.float(), expected.float(), rtol=1e-2, atol=1e-2)
    assert not events.violations(check="numerics")
