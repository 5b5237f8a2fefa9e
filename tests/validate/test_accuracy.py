"""``quantguard validate accuracy`` on the simulator: verdicts, exit codes and report sections."""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json

import pytest

from quantguard.validate import accuracy

# Small settings: three prompts, six greedy tokens each.
SMALL = ("--prompts", "3", "--max-new-tokens", "6")

# name -> (arguments, exit code, configuration -> passed)
CASES = {
    "tiny-llama clean gfx942 ck": (["--sim"], 0, {"fp8_per_token": True, "fp8_blockscale": True, "int4": True}),
    "named configurations in one run": (
        ["--sim", "--configs", "fp8-triton,fp8-hipblaslt,fp4-ck,ckfree,fp8-torch"],
        0,
        {"fp8-triton": True, "fp8-hipblaslt": True, "fp4-ck": True, "ckfree": True, "fp8-torch": True},
    ),
    "pure torch, no simulator": (
        ["--configs", "fp8-torch,fp8block-torch,fp4-torch"],
        0,
        {"fp8-torch": True, "fp8block-torch": True, "fp4-torch": True},
    ),
    "gemm_reads_scale_wrong_major on triton only": (
        ["--sim", "--configs", "fp8block-triton,fp8block-ck", "--fault", "gemm_reads_scale_wrong_major@triton"],
        1,
        {"fp8block-triton": False, "fp8block-ck": True},
    ),
    "asm_gemm_garbage_gfx950 CK-free asm": (
        ["--sim", "--ck-free", "--gfx", "gfx950", "--backend", "asm", "--fault", "asm_gemm_garbage_gfx950"],
        1,
        {"fp8_blockscale": False, "mxfp4": False, "int4": True},
    ),
    "CK-free build with the ck backend": (
        ["--sim", "--ck-free", "--configs", "fp8_per_token"],
        1,
        {"fp8_per_token": False},
    ),
    "sim clean gfx942": (["--model", "sim"], 0, {"fp8_per_token": True, "fp8_blockscale": True}),
    "sim fp8_copy_drops_scale": (
        ["--model", "sim", "--fault", "fp8_copy_drops_scale"],
        1,
        {"fp8_per_token": False, "fp8_blockscale": False},
    ),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="quantguard validate accuracy")
    accuracy.add_arguments(parser)
    return parser


def _run(tmp_path, *argv: str, output: bool = True):
    """Exit code, JSON report (or None) and markdown path of one run."""
    report = tmp_path / "report.md"
    arguments = [*argv, *SMALL, *(("-o", str(report)) if output else ())]
    code = accuracy.run(_parser().parse_args(arguments))
    data = json.loads((tmp_path / "report.json").read_text()) if report.exists() else None
    return code, data, report


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Each case runs once; several tests read its report."""
    results = {}

    def get(name: str):
        if name not in results:
            arguments = CASES[name][0]
            results[name] = _run(tmp_path_factory.mktemp("run"), *arguments)
        return results[name]

    return get


@pytest.mark.parametrize("name", list(CASES))
def test_verdicts_and_exit_codes(runs, name):
    _, expected_code, expected = CASES[name]
    code, data, _ = runs(name)
    assert code == expected_code
    assert {config["name"]: config["passed"] for config in data["configurations"]} == expected
    assert data["verdict"] == ("pass" if expected_code == 0 else "fail")


def test_report_has_every_section_and_heatmap_files(runs):
    code, data, report = runs("tiny-llama clean gfx942 ck")
    text = report.read_text()
    for section in (
        "| setting | value |",
        "**Verdict: PASS**",
        "## Summary",
        "## Per-layer cosine",
        "## Flagged layers",
        "## Generation",
        "## Configurations",
    ):
        assert section in text
    assert "| fp8_blockscale | ck | 0.99" in text
    assert "not run: mxfp4" in text and "gfx950" in text
    assert "No tokenizer: generations are token ids." in text and "on token ids (no tokenizer)" in text
    layers = [f"model.layers.{i}" for i in range(4)]
    assert data["heatmap"]["layers"] == layers
    assert data["heatmap"]["configurations"] == ["fp8_per_token", "fp8_blockscale", "int4"]
    assert all(len(row) == 3 and all(v > 0.99 for v in row) for row in data["heatmap"]["cosine"])
    with (report.parent / "report.layers.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 * 4 and {row["flagged"] for row in rows} == {"0"}
    fp8 = data["configurations"][0]
    assert fp8["kernels"] == "aiter.ops.quant.per_token_quant_hip -> aiter.ops.gemm_op_a8w8.gemm_a8w8_bpreshuffle"
    assert fp8["token_match"] == 1.0 and fp8["bleu"]["score"] == pytest.approx(100.0)
    assert fp8["bleu"]["on"] == "token ids" and fp8["texts"] == []
    assert fp8["logits_cosine"] > 0.999 and fp8["top1"] == 1.0 and abs(fp8["perplexity_delta"]) < 0.05
    assert fp8["kept_layers"] == {"lm_head": "skipped (--skip)"} and len(fp8["quantized_layers"]) == 28
    assert "torch W4A16" in data["configurations"][2]["kernels"]


def test_named_configurations_make_one_table(runs):
    _, data, report = runs("named configurations in one run")
    assert data["run"]["arch"] == "gfx950"  # fp4-ck asked for: the FP4 arch by default
    by_name = {config["name"]: config for config in data["configurations"]}
    assert by_name["fp8-hipblaslt"]["kernels"].endswith("aiter.tuned_gemm.tgemm.mm")
    assert by_name["fp8-hipblaslt"]["scheme"] == "fp8_per_tensor"
    assert "gemm_a4w4" in by_name["fp4-ck"]["kernels"]
    assert by_name["ckfree"]["ck_free"] and "triton" in by_name["ckfree"]["kernels"]
    assert by_name["fp8-triton"]["setting"].startswith("ATOM_USE_TRITON_GEMM=1")
    assert by_name["fp8-torch"]["kernels"].startswith("torch fp8_per_token (float8_e4m3fn)")
    # the per-token FP8 GEMMs on Triton and torch's reference agree closely
    assert by_name["fp8-triton"]["logits_cosine"] == pytest.approx(by_name["fp8-torch"]["logits_cosine"], abs=1e-4)
    table = report.read_text().split("## Summary")[1].split("## Per-layer cosine")[0]
    header = table.strip().splitlines()[0]
    for column in ("logits cosine", "top-1", "KL(ref‖quant)", "perplexity Δ", "BLEU", "layer cosine"):
        assert column in header
    assert [line.split(" | ")[0].strip("| ") for line in table.strip().splitlines()[2:]] == list(by_name)
    assert "| ckfree | triton CK-free |" in table


def test_pure_torch_mode_needs_no_aiter(runs):
    _, data, _ = runs("pure torch, no simulator")
    assert data["run"]["arch"] == "none (pure torch)" and "not used" in data["run"]["environment"]
    fp4 = data["configurations"][2]
    assert fp4["kernels"].startswith("torch mxfp4") and 0.99 < fp4["logits_cosine"] < 0.9999


def test_a_fault_drops_the_metrics_of_its_configuration_only(runs):
    _, data, report = runs("gemm_reads_scale_wrong_major on triton only")
    broken, clean = data["configurations"]
    assert clean["passed"] and not broken["passed"]
    assert broken["logits_cosine"] < clean["logits_cosine"] - 0.005
    assert broken["kl"] > 100 * clean["kl"] and broken["perplexity_delta"] > clean["perplexity_delta"]
    assert [layer["name"] for layer in broken["layers"] if layer["flagged"]] == [f"model.layers.{i}" for i in range(4)]
    assert any("cosine" in failure and "< 0.999" in failure for failure in broken["failures"])
    text = report.read_text()
    assert "- fp8block-triton: `model.layers.0`: cosine" in text and "✗" in text
    assert "fp8block-ck: `" not in text.split("## Flagged layers")[1].split("## Generation")[0]


def test_garbled_generation_fails_the_configuration(runs):
    _, data, report = runs("sim fp8_copy_drops_scale")
    for config in data["configurations"]:
        assert config["garbled"] == [0, 1, 2]
        assert config["token_match"] < 0.5 and config["bleu"]["score"] < 50
        assert any("generations garbled" in failure for failure in config["failures"])
        assert any("norm ratio" in problem for layer in config["layers"] for problem in layer["problems"])
    assert "garbled prompts: 0, 1, 2" in report.read_text()


def test_a_configuration_that_cannot_run_has_no_metrics(runs):
    _, data, report = runs("CK-free build with the ck backend")
    config = data["configurations"][0]
    assert config["error"].startswith("RuntimeError") and "build" in config["error"]
    assert config["layers"] == [] and config["overall_cosine"] is None
    assert config["logits_cosine"] is None and config["kl"] is None and config["perplexity_delta"] is None
    assert "not measured" in report.read_text()
    assert "| fp8_per_token | ck | n/a | n/a | n/a | n/a | n/a | n/a | FAIL |" in report.read_text()


def test_sim_workload_uses_its_own_thresholds(runs):
    _, data, _ = runs("sim clean gfx942")
    assert data["run"]["thresholds"] == {
        "fp8_per_token": "0.94 (model default)",
        "fp8_blockscale": "0.94 (model default)",
    }
    assert "fp8_per_token" in data["configurations"][0]["kernels"]


def test_checkpoint_with_tokenizer_reports_text(tmp_path, capsys):
    pytest.importorskip("transformers")
    from hf_models import save_checkpoint

    save_checkpoint(tmp_path / "ckpt", tokenizer=True)
    code, data, report = _run(tmp_path, "--model", str(tmp_path / "ckpt"), "--configs", "fp8-torch,fp4-torch")
    assert code in (0, 1) and data["configurations"][0]["texts"]
    assert len(data["run"]["reference_texts"]) == 3 and all(isinstance(t, str) for t in data["run"]["reference_texts"])
    assert data["configurations"][0]["bleu"]["on"] == "text (13a tokenizer)"
    text = report.read_text()
    assert "first prompt decoded to text" in text and "on decoded text, 13a tokenizer" in text


def test_command_line_thresholds_win(tmp_path):
    code, data, _ = _run(
        tmp_path,
        "--sim",
        "--configs",
        "fp8_per_token,fp8_blockscale",
        "--threshold",
        "fp8=0.99",
        "--threshold",
        "fp8_blockscale=0.9999999",
    )
    assert code == 1
    assert {c["name"]: (c["threshold"], c["passed"]) for c in data["configurations"]} == {
        "fp8_per_token": (0.99, True),
        "fp8_blockscale": (0.9999999, False),
    }
    assert data["run"]["thresholds"]["fp8_per_token"] == "0.99 (--threshold)"


def test_without_output_the_report_goes_to_stdout(tmp_path, capsys):
    code, data, _ = _run(tmp_path, "--sim", "--configs", "int4", output=False)
    assert code == 0 and data is None
    out = capsys.readouterr().out
    assert out.startswith("# quantguard validate accuracy: tiny-llama") and "## Per-layer cosine" in out


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--sim", "--gfx", "gfx942", "--configs", "mxfp4"], "gfx950"),
        (["--sim", "--gfx", "gfx942", "--configs", "fp4-ck"], "gfx950"),
        (["--sim", "--backend", "asm", "--configs", "fp8_per_token"], "INT8-only"),
        (["--sim", "--configs", "fp8,int4"], "unknown fp8; accepted: fp8_per_token"),
        (["--configs", "fp9-triton"], "fp8-triton, fp8-hipblaslt, fp8block-ck"),
        (["--configs", "fp8-torch", "--gfx", "gfx950"], "add --sim"),
        (["--configs", "fp8-torch", "--model", "org/not-cached"], "nothing is downloaded"),
        (["--configs", "fp8-torch", "--model", "sim"], "plain torch"),
        (["--sim", "--threshold", "fp9=0.9"], "KEY=VALUE"),
        (["--sim", "--threshold", "fp8=2"], "(0, 1]"),
        (["--sim", "--threshold", "fp8=high"], "not a number"),
        (["--sim", "--fault", "fp8_copy_drops_scale"], "atom"),
        (["--sim", "--fault", "no_such_fault"], "unknown fault"),
        (["--sim", "--model", "llama-7b"], "module:function"),
        (["--sim", "--model", "llama-7b"], "tiny-llama, sim, a local checkpoint directory"),
        (["--model", "sim", "--configs", "int4"], "no ATOM path"),
        (["--model", "sim", "--dtype", "fp16"], "BF16"),
        (["--gfx", "gfx950"], "add --sim"),
    ],
)
def test_usage_errors_exit_2(tmp_path, capsys, arguments, message):
    code, data, report = _run(tmp_path, *arguments)
    assert code == 2 and data is None and not report.exists()
    assert message in capsys.readouterr().err


@pytest.mark.skipif(importlib.util.find_spec("aiter") is not None, reason="a real AITER is installed")
def test_missing_aiter_without_sim_exits_2(tmp_path, capsys):
    code, _, _ = _run(tmp_path)
    assert code == 2 and "--sim" in capsys.readouterr().err


def test_bad_option_values_are_argparse_errors():
    with pytest.raises(SystemExit) as exit_info:
        _parser().parse_args(["--backend", "cuda"])
    assert exit_info.value.code == 2


def test_runs_as_quantguard_validate_accuracy(monkeypatch, tmp_path):
    from quantguard.cli import validate_cmd

    monkeypatch.setattr(validate_cmd, "VALIDATIONS", {"accuracy": validate_cmd.VALIDATIONS["accuracy"]})
    parser = argparse.ArgumentParser(prog="quantguard")
    validate_cmd.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["validate", "accuracy", "--sim", "--configs", "int4", *SMALL, "-o", str(tmp_path / "r.md")]
    )
    assert args.handler(args) == 0
    assert (tmp_path / "r.layers.csv").exists()


def test_parse_thresholds():
    assert accuracy.parse_thresholds(["fp8=0.99, fp4=0.9", "int4=0.98"]) == {"fp8": 0.99, "fp4": 0.9, "int4": 0.98}
