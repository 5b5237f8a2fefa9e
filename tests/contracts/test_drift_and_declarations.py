"""Contracts as data: drift detection against real signatures, declarations, and the simulator's AITER."""

from __future__ import annotations

import pytest

import quantguard
import quantguard.sim as sim
from quantguard import Contract
from quantguard.contracts import builtin_contracts
from quantguard.contracts.aiter import CONTRACTS as AITER
from quantguard.contracts.aiter import is_asm_name
from quantguard.contracts.drift import compare_signature
from quantguard.testing import capture_events


def test_declared_params_match_the_simulated_aiter_everywhere():
    """The simulator follows aiter_signatures.json; every contract's params must match it (no drift)."""
    sim.install("gfx950", atom=True)
    with capture_events() as events:
        quantguard.enable(log="/dev/null")
    assert not events.named("target_mismatch"), [
        (e["target"], e["differences"]) for e in events.named("target_mismatch")
    ]
    assert not [e for e in events.named("target_missing") if e["level"] == "warning"]


def test_drift_disables_only_dependent_checks(make_module, tmp_path):
    make_module(
        "qgt_drift",
        """
        def per_group_quant_hip(x, scale=None, quant_dtype=None, group_size=128, transpose=False,
                                num_rows=None, num_rows_factor=1, scale_type=None):
            return x, scale
    """,
    )
    template = next(c for c in AITER if c.target.endswith(".per_group_quant_hip"))
    import dataclasses

    quantguard.register(dataclasses.replace(template, target="qgt_drift.per_group_quant_hip"))
    with capture_events() as events:
        quantguard.enable(targets="qgt_drift.*", log=str(tmp_path / "l.jsonl"))
    [mismatch] = events.named("target_mismatch")
    assert "parameter 'transpose_scale' is missing" in mismatch["differences"]
    assert "unexpected parameter 'transpose'" in mismatch["differences"]
    assert set(mismatch["disabled_checks"]) == {"kwarg_honored", "provenance_record"}
    [patched] = events.named("patched")
    assert "quant_numerics" in patched["checks"] and "kwarg_honored" not in patched["checks"]


def test_changed_default_is_a_difference():
    def dynamic_per_group_scaled_quant(
        out, input, scales, group_size=32, shuffle_scale=False, num_rows=None, num_rows_factor=1
    ):
        return out

    template = next(c for c in AITER if c.target.endswith(".dynamic_per_group_scaled_quant"))
    differences, disabled = compare_signature(template, dynamic_per_group_scaled_quant)
    assert differences == ["default of 'shuffle_scale' is False (contract relies on True)"]
    assert disabled == {"kwarg_honored", "provenance_record"}


@pytest.mark.parametrize(
    "name, asm",
    [
        ("gemm_a8w8_ASM", True),
        ("gemm_a4w4_asm", True),
        ("gfx950_a8w8_blockscale_ASM", True),
        ("fmoe_g1u1_asm", True),
        ("gemm_a8w8_blockscale", False),
        ("gemm_a4w4", False),
        ("aiter.fused_moe_bf16_asm.asm_moe", True),
        ("aiter.ops.gemm_op_common.asm_weight_reader", False),
    ],
)
def test_asm_naming_rule(name, asm):
    assert is_asm_name(name) is asm


def test_every_builtin_contract_is_well_formed():
    from quantguard.checks import registered_checks

    known = registered_checks()
    targets = [c.target for c in builtin_contracts()]
    assert len(targets) == len(set(targets))
    for contract in builtin_contracts():
        assert isinstance(contract, Contract)
        assert set(contract.checks) <= set(known), contract.target
        assert set(contract.honored) <= set(contract.params or contract.honored), contract.target
