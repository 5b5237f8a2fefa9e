"""Quant producers: requested scale layouts and e8m0 rounding are verified by recomputation.

Clean AITER (simulated) producers are quiet for every layout kwarg; a producer
that ignores its kwarg — the simulator's faulty Triton fallback, or a broken
producer declared with AITER's own contract adapter — is caught and the
verdict names the layout actually written.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

import quantguard
import quantguard.sim as sim
from quantguard.contracts import aiter as aiter_contracts
from quantguard.testing import capture_events

M, K = 48, 512


def _x(rows: int = M, cols: int = K, seed: int = 0) -> torch.Tensor:
    return (torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed)) * 3).to(torch.bfloat16)


def _enable(tmp_path, **options):
    quantguard.enable(log=str(tmp_path / "log.jsonl"), sample_rate=1.0, **options)


CLEAN_CALLS = {
    "per_token_scaled_grouped_shuffled": lambda a: a.dynamic_per_token_scaled_quant(
        torch.empty(M, K, dtype=a.dtypes.fp8), _x().view(-1, 128), torch.empty(M, K // 128), shuffle_scale=True
    ),
    "per_token_scaled_grouped": lambda a: a.dynamic_per_token_scaled_quant(
        torch.empty(M, K, dtype=a.dtypes.fp8), _x().view(-1, 128), torch.empty(M, K // 128)
    ),
    "per_token_scaled": lambda a: a.dynamic_per_token_scaled_quant(
        torch.empty(M, K, dtype=a.dtypes.fp8), _x(), torch.empty(M, 1)
    ),
    "per_group_transpose": lambda a: a.per_group_quant_hip(_x(), quant_dtype=a.dtypes.fp8, transpose_scale=True),
    "per_group_row_major": lambda a: a.per_group_quant_hip(_x(), quant_dtype=a.dtypes.fp8),
    "per_group_e8m0_transpose": lambda a: a.per_group_quant_hip(
        _x(), quant_dtype=a.dtypes.fp8, transpose_scale=True, scale_type=a.dtypes.fp8_e8m0
    ),
    "per_group_int8": lambda a: a.per_group_quant_hip(_x(), quant_dtype=a.dtypes.i8, group_size=64),
    "per_token_int8": lambda a: a.per_token_quant_hip(_x(), quant_dtype=a.dtypes.i8),
    "per_tensor": lambda a: a.per_tensor_quant_hip(_x(), quant_dtype=a.dtypes.fp8),
    "mx_fp4_shuffle": lambda a: a.per_1x32_mx_quant_hip(_x(), quant_dtype=a.dtypes.fp4x2, shuffle=True),
    "mx_fp4": lambda a: a.per_1x32_mx_quant_hip(_x(), quant_dtype=a.dtypes.fp4x2),
    "per_group_scaled_e8m0_mx": lambda a: a.dynamic_per_group_scaled_quant(
        torch.empty(M, K // 2, dtype=a.dtypes.fp4x2),
        _x(),
        torch.empty(256, 16, dtype=torch.uint8).view(a.dtypes.fp8_e8m0),
        32,
        shuffle_scale=True,
    ),
    "pertoken_torch_reference": lambda a: a.pertoken_quant(_x(), quant_dtype=a.dtypes.fp8),
    "triton_per_token": lambda a: __import__("aiter.ops.triton.quant", fromlist=["_"]).dynamic_per_token_quant_fp8_i8(
        torch.empty(M, K, dtype=a.dtypes.fp8), _x(), torch.empty(M, 1)
    ),
    "triton_mxfp4": lambda a: __import__("aiter.ops.triton.quant", fromlist=["_"]).dynamic_mxfp4_quant(_x()),
    "triton_flatten_transpose": lambda a: __import__(
        "aiter.ops.triton.quant", fromlist=["_"]
    ).fused_flatten_fp8_group_quant(_x().view(M, 4, 128), 128, transpose_scale=True),
}


_FP4_ONLY = ("mx_fp4", "per_group_scaled_e8m0", "triton_mxfp4")  # fp4 exists on gfx950 only


@pytest.mark.parametrize(
    "arch, name",
    [
        (arch, name)
        for arch in sim.ARCHS
        for name in sorted(CLEAN_CALLS)
        if arch == "gfx950" or not name.startswith(_FP4_ONLY)
    ],
)
def test_clean_producers_are_quiet(tmp_path, arch, name):
    sim.install(arch)
    import aiter

    with capture_events() as events:
        _enable(tmp_path)
        CLEAN_CALLS[name](aiter)
    assert not events.violations(), [e["message"] for e in events.violations()]
    assert all(e["passed"] for e in events.named("shadow"))


def test_faulty_triton_fallback_is_caught_naming_the_layout(tmp_path):
    sim.install("gfx942", ck_free=True, faults=("triton_quant_ignores_shuffle_scale",))
    import aiter

    with capture_events() as events:
        _enable(tmp_path)
        aiter.per_group_quant_hip(_x(), quant_dtype=aiter.dtypes.fp8, transpose_scale=True)
    messages = {e["target"]: e["message"] for e in events.violations(check="kwarg_ignored")}
    assert (
        messages["aiter.ops.quant.per_group_quant_hip"]
        == "transpose_scale=True requested; scales were written row-major (M, G)"
    )
    assert (
        messages["aiter.ops.quant.dynamic_per_token_scaled_quant"]
        == "shuffle_scale=True requested; scales were written row-major (M, G)"
    )
    static = events.violations(check="ignored_parameter")
    assert any("_fallback_dynamic_per_token_scaled_quant accepts shuffle_scale" in e["message"] for e in static)


# A producer that ignores its layout kwarg, declared with AITER's own adapter: the check is generic.
BROKEN_PRODUCERS = """
import aiter

def per_group_quant_hip(x, scale=None, quant_dtype=None, group_size=128, transpose_scale=False, num_rows=None,
                        num_rows_factor=1, scale_type=None):
    kwargs = {} if scale_type is None else {"scale_type": scale_type}
    return aiter.per_group_quant_hip(x, scale, quant_dtype, group_size, False, num_rows, num_rows_factor, **kwargs)

def per_1x32_mx_quant_hip(x, scale=None, quant_dtype=None, shuffle=False, num_rows=None, num_rows_factor=1,
                          scale_type=None):
    y, s = aiter.per_1x32_mx_quant_hip(x, quant_dtype=quant_dtype, shuffle=False)
    if not shuffle:
        return y, s
    padded = s.new_zeros(((x.shape[0] + 255) // 256 * 256, (s.shape[1] + 7) // 8 * 8))
    padded[: s.shape[0], : s.shape[1]] = s
    return y, padded
"""


@pytest.mark.parametrize(
    "name, call, written",
    [
        (
            "per_group_quant_hip",
            lambda m, a: m.per_group_quant_hip(_x(), quant_dtype=a.dtypes.fp8, transpose_scale=True),
            "row-major (M, G)",
        ),
        (
            "per_1x32_mx_quant_hip",
            lambda m, a: m.per_1x32_mx_quant_hip(_x(cols=480), quant_dtype=a.dtypes.fp4x2, shuffle=True),
            "row-major rows of the padded buffer",
        ),  # 15 groups padded to 16 per row
    ],
)
def test_broken_producer_declared_with_aiter_adapter_is_caught(tmp_path, make_module, name, call, written):
    sim.install("gfx950")
    import aiter

    module = make_module("qgt_broken_quant", BROKEN_PRODUCERS)
    template = next(c for c in aiter_contracts.CONTRACTS if c.target.endswith("." + name))
    quantguard.register(dataclasses.replace(template, target=f"qgt_broken_quant.{name}"))
    with capture_events() as events:
        _enable(tmp_path, targets="qgt_broken_quant.*")
        call(module, aiter)
    [violation] = [e for e in events.violations(check="kwarg_ignored") if e["count"] == 1]
    assert violation["message"].endswith(f"scales were written {written}")
    assert violation["details"]["written_layout"] in ("row_major", "padded")


@pytest.mark.parametrize(
    "fault, backend, call, expected, observed",
    [
        (
            "e8m0_ceil_rounding",
            "triton",
            lambda a: __import__("aiter.ops.triton.quant", fromlist=["_"]).dynamic_mxfp4_quant(_x()),
            "Even",
            "Ceil",
        ),
        (
            "e8m0_ceil_rounding",
            "hip",
            lambda a: a.per_1x32_mx_quant_hip(_x(), quant_dtype=a.dtypes.fp4x2),
            "RoundUp",
            "Ceil",
        ),
    ],
)
def test_rounding_mode_differs_from_the_declared_one(tmp_path, fault, backend, call, expected, observed):
    sim.install("gfx950", faults=(f"{fault}@{backend}",))
    import aiter

    with capture_events() as events:
        _enable(tmp_path)
        call(aiter)
    messages = [e["message"] for e in events.violations(check="e8m0_rounding")]
    assert any(m.startswith(f"expected {expected}") and m.endswith(f"scales match {observed}") for m in messages), (
        messages
    )


@pytest.mark.parametrize(
    "model_mode, call, flagged",
    [
        ("even", lambda a: a.per_1x32_mx_quant_hip(_x(), quant_dtype=a.dtypes.fp4x2), True),  # HIP rounds RoundUp
        ("up", lambda a: a.per_1x32_mx_quant_hip(_x(), quant_dtype=a.dtypes.fp4x2), False),
        ("even", lambda a: __import__("aiter.ops.triton.quant", fromlist=["_"]).dynamic_mxfp4_quant(_x()), False),
        ("up", lambda a: __import__("aiter.ops.triton.quant", fromlist=["_"]).dynamic_mxfp4_quant(_x()), True),
    ],
)
def test_model_declared_rounding_flags_other_producers(tmp_path, model_mode, call, flagged):
    sim.install("gfx950")
    import aiter

    with capture_events() as events:
        _enable(tmp_path, e8m0_rounding=model_mode)
        call(aiter)
    hits = [e for e in events.violations(check="e8m0_rounding") if "QUANTGUARD_E8M0_ROUNDING" in e["message"]]
    assert bool(hits) is flagged


def test_scale_values_that_match_no_layout(tmp_path, make_module):
    sim.install("gfx942")
    import aiter

    module = make_module(
        "qgt_wrong_scale",
        """
        import aiter
        def per_token_quant_hip(x, scale=None, quant_dtype=None, num_rows=None, num_rows_factor=1):
            y, s = aiter.per_token_quant_hip(x, quant_dtype=quant_dtype)
            return y, s * 1.5
    """,
    )
    template = next(c for c in aiter_contracts.CONTRACTS if c.target.endswith(".per_token_quant_hip"))
    quantguard.register(dataclasses.replace(template, target="qgt_wrong_scale.per_token_quant_hip"))
    with capture_events() as events:
        _enable(tmp_path, targets="qgt_wrong_scale.*")
        module.per_token_quant_hip(_x(), quant_dtype=aiter.dtypes.fp8)
    assert events.violations(check="scale_values")
    numerics = events.violations(check="numerics")
    assert numerics and "norm ratio" in numerics[0]["message"]
