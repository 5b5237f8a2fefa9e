"""Calls through the real AITER/ATOM Python layer, with CPU kernels plugged into its stubs.

Clean calls must be observed and quiet; malformed calls must get exactly the simulator's
verdict (same ``(target, check)`` findings, the expected one among them); no call may end in a
``quantguard.internal_error`` or ``target_mismatch``.  The scenarios live in
``real_scenarios.py`` and run in the workers (``conftest.py``).
"""

from __future__ import annotations

import pytest
from real_harness import ARCHS, Reply, Worker, brief
from real_scenarios import SCENARIOS

_G8 = "aiter.ops.gemm_op_a8w8."
_Q = "aiter.ops.quant."
_TG = "aiter.ops.triton.gemm.basic."
_TRITON_NO_FNUZ = (
    "Triton's CPU interpreter cannot represent e4m3fnuz (fp8e4b8), gfx942's FP8: "
    "AITER's Triton kernels run on the CPU for gfx950 only"
)

_BLOCKSCALE = _G8 + "gemm_a8w8_blockscale"
_BPRESHUFFLE = _G8 + "gemm_a8w8_blockscale_bpreshuffle"
_TRITON_BLOCKSCALE = _TG + "gemm_a8w8_blockscale.gemm_a8w8_blockscale"

#: Clean scenario -> guarded targets the call must have gone through.
CLEAN = {
    "clean.gemm_a8w8": (_Q + "per_token_quant_hip", _G8 + "gemm_a8w8"),
    "clean.gemm_a8w8_CK": (_Q + "per_token_quant_hip", _G8 + "gemm_a8w8_CK"),
    "clean.gemm_a8w8_bpreshuffle": (_G8 + "gemm_a8w8_bpreshuffle",),
    "clean.gemm_a8w8_blockscale": (_Q + "per_group_quant_hip", _BLOCKSCALE),
    "clean.blockscale_bpreshuffle_transposed_bytes": (_BPRESHUFFLE,),
    "clean.blockscale_bpreshuffle_strided_view": (_BPRESHUFFLE,),
    "clean.dynamic_per_token_scaled_quant": (_Q + "dynamic_per_token_scaled_quant",),
    "clean.triton_gemm_a8w8": (_TG + "gemm_a8w8.gemm_a8w8",),
    "clean.triton_blockscale": (_TRITON_BLOCKSCALE,),
    "clean.triton_flatten_group_quant_blockscale": (
        "aiter.ops.triton.quant.fused_fp8_quant.fused_flatten_fp8_group_quant",
        _TRITON_BLOCKSCALE,
    ),
    "compiled.quant_then_blockscale": (_Q + "per_group_quant_hip", _BLOCKSCALE),
}
#: Malformed scenario -> (consumer target, the check it must fail, the archs where the call is wrong).
MALFORMED = {
    "malformed.blockscale_x_scale_m1": (_BLOCKSCALE, "scale_shape", ARCHS),
    "malformed.blockscale_bf16_x_scale": (_BLOCKSCALE, "scale_dtype", ARCHS),
    "malformed.transposed_scale_into_row_major_reader": (_BLOCKSCALE, "scale_layout", ARCHS),
    "malformed.row_major_scale_into_bpreshuffle": (_BPRESHUFFLE, "scale_layout", ARCHS),
    "malformed.transposed_scale_into_triton_blockscale": (_TRITON_BLOCKSCALE, "scale_layout", ARCHS),
    "malformed.e4m3fn_weight": (_G8 + "gemm_a8w8_CK", "fp8_variant", ("gfx942",)),  # gfx950's own FP8
    "compiled.blockscale_x_scale_m1": (_BLOCKSCALE, "scale_shape", ARCHS),
    "compiled.transposed_scale_into_row_major_reader": (_BLOCKSCALE, "scale_layout", ARCHS),
}
#: ATOM scenario -> guarded targets its forward (and weight post-processing) must reach.
ATOM = {
    "atom.linear_fp8_blockscale": (_Q + "per_group_quant_hip", _BLOCKSCALE),
    "atom.linear_fp8_blockscale_preshuffle": (_Q + "per_group_quant_hip", _BPRESHUFFLE),
}


def test_tables_name_known_scenarios() -> None:
    assert set(CLEAN) | set(MALFORMED) | set(ATOM) <= set(SCENARIOS)


def _assert_no_problem(reply: Reply) -> None:
    assert not reply.problems(), brief(reply.problems())


def _assert_observed(reply: Reply, targets: tuple[str, ...]) -> None:
    missed = [target for target in targets if not reply.value["calls"].get(target)]
    assert not missed, f"quantguard did not see the calls to {missed}; it saw {reply.value['calls']}"


@pytest.mark.parametrize("gfx", ARCHS)
@pytest.mark.parametrize("name", sorted(CLEAN))
def test_clean_call_is_observed_and_quiet(real: Worker, gfx: str, name: str) -> None:
    if "triton" in name and gfx == "gfx942":
        pytest.skip(_TRITON_NO_FNUZ)
    reply = real.run(name)
    _assert_no_problem(reply)
    assert not reply.violations(), brief(reply.violations())
    assert reply.value.get("finite", True), reply.value
    _assert_observed(reply, CLEAN[name])


@pytest.mark.parametrize("gfx", ARCHS)
@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_call_gets_the_simulators_verdict(real: Worker, sim: Worker, gfx: str, name: str) -> None:
    if "triton" in name and gfx == "gfx942":
        pytest.skip(_TRITON_NO_FNUZ)
    consumer, check, wrong_on = MALFORMED[name]
    reply, simulated = real.run(name), sim.run(name)
    _assert_no_problem(reply)
    _assert_observed(reply, (consumer,))
    checks = {event["check"] for event in reply.violations(target=consumer)}
    if gfx in wrong_on:
        assert check in checks, brief(reply.violations())
    else:
        assert not checks, brief(reply.violations())
    assert reply.findings() == simulated.findings(), {
        "real": brief(reply.violations()),
        "simulator": brief(simulated.violations()),
    }


@pytest.mark.parametrize("gfx", ARCHS)
@pytest.mark.parametrize("name", sorted(ATOM))
def test_atom_linear_layer_is_observed_and_quiet(real: Worker, gfx: str, name: str) -> None:
    """ATOM's real ReplicatedLinear (per_1x128 FP8) loads an e4m3fn checkpoint and runs forward."""
    reply = real.run(name)
    _assert_no_problem(reply)
    assert not reply.violations(), brief(reply.violations())
    assert reply.value["cosine"] > 0.999, reply.value
    normalizer = ("atom.model_ops.utils.normalize_e4m3fn_to_e4m3fnuz",) if gfx == "gfx942" else ()
    _assert_observed(reply, ATOM[name] + normalizer)
