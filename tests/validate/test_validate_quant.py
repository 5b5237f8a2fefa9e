"""``quantguard validate quant`` on the simulator: verdicts per chain, exit codes, report sections."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

import quantguard
from quantguard.numerics.formats import FP4_E2M1, FP8_E4M3FNUZ
from quantguard.validate import quant
from quantguard.validate.quant.chains import CHAINS, SCHEMES, Quantized
from quantguard.validate.quant.layouts import analyse_layout

#: Fewer, smaller shapes than the built-in "small" set; M=48 covers swizzled MXFP4 activations.
SHAPES = ("--shapes", "1,256,512", "48,384,1024")


def _run(tmp_path, *arguments: str) -> tuple[int, dict, str]:
    parser = argparse.ArgumentParser(prog="quantguard validate quant")
    quant.add_arguments(parser)
    report, data = tmp_path / "quant.md", tmp_path / "quant.json"
    code = quant.run(parser.parse_args(["--sim", *SHAPES, "-o", str(report), "--json", str(data), *arguments]))
    assert not quantguard.is_enabled()
    return code, json.loads(data.read_text()), report.read_text()


def _verdicts(data: dict) -> dict[str, set[str]]:
    """chain name -> statuses over its shapes."""
    verdicts: dict[str, set[str]] = {}
    for case in data["cases"]:
        name = f"{case['scheme']}/{case['backend']}" + (f" ({case['variant']})" if case["variant"] else "")
        verdicts.setdefault(name, set()).add(case["status"])
    return verdicts


@pytest.mark.parametrize(
    "arguments",
    [(), ("--gfx", "gfx950"), ("--gfx", "gfx950", "--ck-free"), ("--ck-free",)],
    ids=["gfx942", "gfx950", "gfx950-ckfree", "gfx942-ckfree"],
)
def test_clean_builds_pass_every_chain(tmp_path, arguments):
    code, data, report = _run(tmp_path, *arguments)
    verdicts = _verdicts(data)
    assert code == 0, report
    assert all(statuses <= {"PASS", "SKIP"} for statuses in verdicts.values()), verdicts
    ran = {name for name, statuses in verdicts.items() if "PASS" in statuses}
    assert {
        "fp8_per_token/triton",
        "fp8_blockscale/triton (preshuffle)",
        "fp8_per_tensor/hipblaslt",
        "int8/triton",
        "int4/torch (W4A16)",
    } <= ran
    if "--ck-free" not in arguments:
        assert {"fp8_per_token/ck", "fp8_blockscale/cktile", "fp8_per_token/cktile (bpreshuffle)"} <= ran
    if "gfx950" in arguments:
        assert {"mxfp4/asm", "mxfp4/triton", "fp4/triton", "fp8_blockscale/asm (gfx950)"} <= ran
    if "--ck-free" in arguments:
        assert verdicts["fp8_blockscale/ck"] == {"SKIP"}  # CK modules cannot be built there
    for case in data["cases"]:
        if case["status"] == "PASS" and case["scale_layout"]:
            assert case["scale_layout"]["ok"] and case["vs_matched"]["cosine"] >= 0.9999


def test_asm_garbage_on_gfx950_ck_free_fails_the_asm_rows(tmp_path):
    code, data, report = _run(tmp_path, "--gfx", "gfx950", "--ck-free", "--fault", "asm_gemm_garbage_gfx950")
    assert code == 1
    asm_cases = [case for case in data["cases"] if case["backend"] == "asm" and case["status"] != "SKIP"]
    assert asm_cases and all(case["status"] == "FAIL" and case["vs_fp32"]["cosine"] < 0.1 for case in asm_cases)
    assert all(case["blocked"] for case in asm_cases)  # quantguard's policy names the kernel too
    others = [case for case in data["cases"] if case["backend"] != "asm"]
    assert {case["status"] for case in others} <= {"PASS", "SKIP"}
    assert "**fp8_blockscale/asm (bpreshuffle)** (FAIL)" in report


# fault arguments -> (chain that must fail, words in its reasons, chains that must still pass)
FAULTS = {
    "triton_quant_ignores_shuffle_scale": (
        ("--ck-free", "--fault", "triton_quant_ignores_shuffle_scale"),
        "fp8_blockscale/triton (preshuffle)",
        "written row-major (M, G); GEMM reads column-major",
        {"fp8_blockscale/triton", "fp8_per_token/triton"},
    ),
    "gemm_reads_scale_wrong_major": (
        ("--fault", "gemm_reads_scale_wrong_major"),
        "fp8_blockscale/ck",
        "precision-matched reference",
        {"fp8_blockscale/triton", "fp8_per_token/ck"},
    ),
    "e8m0_ceil_rounding@hip": (
        ("--gfx", "gfx950", "--fault", "e8m0_ceil_rounding@hip"),
        "mxfp4/asm",
        "e8m0 rounding Ceil, declared RoundUp",
        {"fp4/triton", "fp8_blockscale/ck"},
    ),
    "e8m0_ceil_rounding@triton": (
        ("--gfx", "gfx950", "--fault", "e8m0_ceil_rounding@triton"),
        "fp4/triton",
        "e8m0 rounding Ceil, declared Even",
        {"mxfp4/asm", "fp4/asm"},
    ),
    "hipblaslt_drops_scale_b": (
        ("--fault", "hipblaslt_drops_scale_b"),
        "fp8_per_tensor/hipblaslt",
        "norm ratio",
        {"fp8_per_tensor/triton", "fp8_per_tensor/ck"},
    ),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_faults_fail_the_chains_they_break(tmp_path, fault):
    arguments, broken, words, healthy = FAULTS[fault]
    code, data, report = _run(tmp_path, *arguments)
    verdicts = _verdicts(data)
    assert code == 1
    assert "FAIL" in verdicts[broken], verdicts
    reasons = " ".join(r for case in data["cases"] if case["status"] == "FAIL" for r in case["reasons"])
    assert words in reasons
    assert all(verdicts[name] <= {"PASS", "SKIP"} for name in healthy), verdicts
    assert "## Failures" in report and broken in report.split("## Failures")[1]


def test_a_dropped_scale_keeps_cosine_and_fails_on_magnitude(tmp_path):
    _, data, _ = _run(
        tmp_path, "--fault", "hipblaslt_drops_scale_b", "--schemes", "fp8_per_tensor", "--backends", "hipblaslt"
    )
    [case, *_] = [case for case in data["cases"] if case["status"] == "FAIL"]
    assert case["vs_fp32"]["cosine"] > 0.999 and case["vs_fp32"]["norm_ratio"] > 100


def test_report_sections_and_console(tmp_path, capsys):
    _, _, report = _run(tmp_path, "--schemes", "fp8_blockscale,int4")
    for section in (
        "# quantguard validate quant: PASS",
        "## Backend comparison",
        "## Chains",
        "## Scale layouts",
        "## Failures",
        "## Every case",
    ):
        assert section in report
    assert "<br>" not in report  # one line per cell: several chains in a matrix cell are "; "-separated
    out = capsys.readouterr().out
    assert "cos fp32" in out and "fp8_blockscale" in out and "mxfp4" not in out
    assert max(len(line) for line in out.splitlines()) <= 100  # wrapped to the terminal's default width


def test_guards_can_be_turned_off(tmp_path):
    code, data, _ = _run(tmp_path, "--no-guards", "--schemes", "fp8_per_token")
    assert code == 0 and data["guards"] is False


@pytest.mark.parametrize(
    "arguments, message",
    [
        (("--schemes", "fp9"), "accepted values are"),
        (("--backends", "cuda"), "accepted values are"),
        (("--threshold", "fp8=2"), "between 0 and 1"),
        (("--threshold", "nope=0.9"), "keys are"),
        (("--fault", "no_such_fault"), "cannot install the simulator"),
    ],
)
def test_usage_errors_exit_2_with_a_clear_message(tmp_path, capsys, arguments, message):
    parser = argparse.ArgumentParser()
    quant.add_arguments(parser)
    assert quant.run(parser.parse_args(["--sim", *SHAPES, *arguments])) == 2
    assert message in capsys.readouterr().err


def test_simulator_options_without_sim_are_refused(capsys):
    parser = argparse.ArgumentParser()
    quant.add_arguments(parser)
    assert quant.run(parser.parse_args(["--fault", "asm_gemm_garbage_gfx950"])) == 2
    assert "add --sim" in capsys.readouterr().err


def test_bad_shape_is_an_argparse_error():
    parser = argparse.ArgumentParser()
    quant.add_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--shapes", "16,7168"])


def test_every_scheme_has_a_chain():
    assert {chain.scheme for chain in CHAINS} == set(SCHEMES)


def _groups(x, group):
    amax = x.float().abs().reshape(x.shape[0], -1, group).amax(-1)
    return amax / FP8_E4M3FNUZ.max


@pytest.mark.parametrize(
    "written, expected, ok",
    [
        ("row_major", "row_major", True),
        ("transposed", "transposed", True),
        ("row_major", "transposed", False),
        ("transposed", "row_major", False),
    ],
)
def test_layout_analysis_sees_through_strides(written, expected, ok):
    x = torch.randn(8, 512)
    scales = _groups(x, 128)
    buffer = scales.contiguous() if written == "row_major" else scales.t().contiguous().view(scales.shape)
    q = Quantized(x, buffer, 128, "fp32", FP8_E4M3FNUZ)
    verdict = analyse_layout(q, x, expected)
    assert verdict.ok is ok
    other = "transposed" if written == "row_major" else "row_major"
    assert written in verdict.written and other not in verdict.written  # strides are (G, 1) either way


def test_layout_analysis_names_the_e8m0_rounding():
    from quantguard.numerics.formats import e8m0_encode

    x = torch.randn(4, 64) * 3
    amax = x.abs().reshape(4, -1, 32).amax(-1)
    ceil = e8m0_encode(amax, "ceil", FP4_E2M1).to(torch.uint8)
    verdict = analyse_layout(Quantized(x, ceil, 32, "e8m0", FP4_E2M1, "up"), x, "row_major")
    assert not verdict.ok and "ceil" in verdict.rounding and "declared RoundUp" in verdict.summary
