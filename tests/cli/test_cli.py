"""The command line: info, demo (the README's main job), and usage errors."""

from __future__ import annotations

import re

import pytest

from quantguard.cli.main import main


def test_info_lists_contracts_and_platform_sources(capsys):
    assert main(["info", "--sim", "--gfx", "gfx950", "--ck-free", "--wide"]) == 0  # one line per row
    out = capsys.readouterr().out
    assert re.search(r"arch +gfx950  \(from aiter.jit.utils.chip_info.get_gfx_runtime\(\)\)", out)
    assert re.search(r"fp8 dtype +float8_e4m3fn  \(from aiter.utility.dtypes.fp8\)", out)
    assert re.search(r"CK-free +True  \(from aiter.jit.core.CK_3RDPARTY_DIR=", out)
    assert re.search(r"ASM blocked +True", out)
    assert re.search(
        r"patched +hip +aiter.ops.quant.per_group_quant_hip +at torch.ops.aiter.per_group_quant_hip "
        r"\(BackendSelect\), parameters from op schema",
        out,
    )
    assert re.search(r"patched +asm +aiter.ops.gemm_op_a8w8.gemm_a8w8_ASM +aliases=", out)
    assert "mismatched" not in out


def test_demo_detects_every_fault_and_keeps_clean_runs_quiet(capsys, tmp_path):
    assert main(["demo", "--tokens", "4", "--log-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    from quantguard.sim.scenarios import SCENARIOS

    assert f"{len(SCENARIOS)}/{len(SCENARIOS)} faults detected; clean runs: quiet" in out
    assert "(identical with quantguard on/off)" in out
    assert len(list(tmp_path.glob("*.jsonl"))) == len(SCENARIOS) + 2  # every scenario and both clean runs


def test_demo_reports_a_miss_with_a_nonzero_exit(capsys, monkeypatch):
    from quantguard.cli import demo_cmd

    real = demo_cmd._run_once

    def silenced(scenario, tokens, log, enabled=True):
        return real(scenario, tokens, log, enabled=False)  # quantguard never on: nothing can be detected

    monkeypatch.setattr(demo_cmd, "_run_once", silenced)
    assert main(["demo", "--tokens", "2", "--only", "moe_missing_routed_scaling"]) == 1
    assert "missed: moe_missing_routed_scaling" in capsys.readouterr().out


def test_demo_counts_a_fault_caught_by_other_checks_than_expected_as_missed(capsys, monkeypatch):
    """A violation from some check is not a detection: the scenario's expected checks must fire."""
    import dataclasses

    from quantguard.sim import scenarios

    original = scenarios.scenario("moe_missing_routed_scaling")
    stricter = dataclasses.replace(original, expected=(*original.expected, "fp8_variant"))
    monkeypatch.setattr(scenarios, "SCENARIOS", (stricter,))
    assert main(["demo", "--tokens", "2"]) == 1
    out = capsys.readouterr().out
    assert "missed: moe_missing_routed_scaling (fp8_variant silent)" in out


@pytest.mark.parametrize("argv", [[], ["run"], ["nonsense"]])
def test_usage_errors(argv, capsys):
    if argv == ["nonsense"]:
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
    else:
        assert main(argv) == 2
