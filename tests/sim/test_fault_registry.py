"""Parsing fault requests: names, per-backend scoping and errors that list what is accepted."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from quantguard.sim import faults


def test_every_fault_is_documented_with_valid_backends():
    for fault in faults.FAULTS.values():
        assert fault.incident and fault.symptom
        assert set(fault.backends) <= set(faults.BACKENDS)
        assert set(fault.default_backends) <= set(fault.backends)


def test_name_selects_the_default_backends():
    parsed = faults.parse(["gemm_reads_scale_wrong_major", "e8m0_ceil_rounding"])
    assert parsed["gemm_reads_scale_wrong_major"] == {"ck"}
    assert parsed["e8m0_ceil_rounding"] == {"triton"}
    assert parsed.active("gemm_reads_scale_wrong_major", "ck")
    assert not parsed.active("gemm_reads_scale_wrong_major", "triton")


def test_at_syntax_and_mappings_scope_backends():
    parsed = faults.parse(["gemm_reads_scale_wrong_major@triton", "gemm_reads_scale_wrong_major@asm"])
    assert parsed["gemm_reads_scale_wrong_major"] == {"triton", "asm"}
    mapped = faults.parse({"e8m0_ceil_rounding": ("hip", "triton"), "jit_build_systemexit": None})
    assert mapped["e8m0_ceil_rounding"] == {"hip", "triton"}
    assert mapped["jit_build_systemexit"] == {"ck", "cktile"}
    assert faults.parse(mapped) is mapped


def test_unknown_fault_lists_the_accepted_names():
    with pytest.raises(ValueError, match="moe_missing_routed_scaling"):
        faults.parse(["no_such_fault"])


def test_unknown_backend_lists_the_accepted_backends():
    with pytest.raises(ValueError, match="hipblaslt"):
        faults.parse(["gemm_reads_scale_wrong_major@cuda"])


def test_backend_outside_the_fault_lists_where_it_applies():
    with pytest.raises(ValueError, match="applies to: ck, triton, asm"):
        faults.parse(["gemm_reads_scale_wrong_major@hip"])
    with pytest.raises(ValueError, match="empty backend list"):
        faults.parse({"e8m0_ceil_rounding": ()})


def test_a_single_string_is_not_a_fault_list():
    with pytest.raises(TypeError):
        faults.parse("e8m0_ceil_rounding")


def test_docs_fault_table_matches_the_registry():
    docs = Path(__file__).resolve().parents[2] / "docs" / "sim.md"
    rows = {}
    for line in docs.read_text().splitlines():
        match = re.match(r"^\| `(\w+)` \| .* \| ([\w, ]+) \(([\w, ]+)\) \|", line)
        if match:
            rows[match[1]] = (match[2].split(", "), match[3].split(", "))
    assert rows == {name: (list(fault.backends), list(fault.default_backends)) for name, fault in faults.FAULTS.items()}
