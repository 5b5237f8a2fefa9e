"""``quantguard validate quant`` on the simulator: verdicts per chain, exit codes, report sections."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

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


# -- --model: a model's quantized layers through ATOM's chains ------------------------------------

DATA = Path(__file__).parent / "data"
FP8_BLOCK, MXFP4 = str(DATA / "fp8_block" / "config.json"), str(DATA / "mxfp4" / "config.json")
ATOM_SWITCHES = (
    "ATOM_USE_TRITON_GEMM",
    "ATOM_FP8_BLOCKSCALE_WEIGHT_PRESHUFFLE",
    "ATOM_USE_FP4_NON_SHUFFLE_TRITON_GEMM",
)


@pytest.fixture(autouse=True)
def _atom_defaults(monkeypatch):
    """ATOM's switches at their defaults unless a test sets one (the runner's environment must not leak in)."""
    for name in ATOM_SWITCHES:
        monkeypatch.delenv(name, raising=False)


def _run_model(tmp_path, model: str, *arguments: str) -> tuple[int, dict, str]:
    parser = argparse.ArgumentParser(prog="quantguard validate quant")
    quant.add_arguments(parser)
    report, data = tmp_path / "model.md", tmp_path / "model.json"
    code = quant.run(parser.parse_args(["--sim", "--model", model, "-o", str(report), "--json", str(data), *arguments]))
    assert not quantguard.is_enabled()
    return code, json.loads(data.read_text()), report.read_text()


def _layer_statuses(data: dict) -> dict[str, str]:
    return {layer["name"]: layer["status"] for layer in data["layers"]}


def _layer(data: dict, name: str) -> dict:
    return next(layer for layer in data["layers"] if layer["name"] == name)


def _config(tmp_path, base: str, **changes) -> str:
    """``base`` with top-level keys changed, written to ``tmp_path``."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**json.loads(Path(base).read_text()), **changes}))
    return str(path)


@pytest.mark.parametrize(
    "model, arguments, chain",
    [
        (FP8_BLOCK, (), "fp8_blockscale/ck (bpreshuffle)"),
        (FP8_BLOCK, ("--ck-free",), "fp8_blockscale/triton (preshuffle)"),
        (MXFP4, ("--gfx", "gfx950"), "mxfp4/asm"),
    ],
    ids=["fp8-block", "fp8-block-ckfree", "mxfp4-gfx950"],
)
def test_a_clean_model_passes_every_quantized_layer(tmp_path, capsys, model, arguments, chain):
    code, data, report = _run_model(tmp_path, model, *arguments)
    assert code == 0 and data["passed"], report
    quantized = [layer for layer in data["layers"] if layer["scheme"]]
    ran = [layer for layer in quantized if layer["status"] != "SKIP" and not layer["moe"]]
    assert all(layer["status"] == "PASS" and layer["chain"] == chain for layer in ran), _layer_statuses(data)
    # every quantized linear ran (kv_a_proj_with_mqa, N=192, too: padded to the 128 tile); the routed experts
    # through fused_moe, except in a CK-free build (a CK module)
    skipped = {layer["name"]: layer["note"] for layer in quantized if layer["status"] == "SKIP"}
    if model == FP8_BLOCK:
        experts = _layer(data, "model.layers.1.mlp.experts")
        ck_free = "--ck-free" in arguments
        assert experts["status"] == ("SKIP" if ck_free else "PASS")
        assert skipped == ({experts["name"]: experts["note"]} if ck_free else {})
        assert "CK-free build cannot build" in experts["note"] if ck_free else experts["chain"].startswith("fused_moe")
    for layer in ran:
        [case] = layer["cases"]
        assert case["vs_matched"]["cosine"] >= 0.9999 and case["scale_layout"]["ok"]
        assert set(case["scale_buffers"]) == {"x_scale", "w_scale"}
    names = [layer["name"] for layer in data["layers"]]
    assert "model.layers.0.self_attn.o_proj" in names and "model.layers.1.self_attn.o_proj" in names
    assert all(name in report.split("## Scale layouts")[0] for name in names)  # every layer listed
    assert "## Recommendations" in report and "None: every measured layer passed." in report
    assert "/v1/completions" in report and '"temperature": 0' in report and '"logprobs": 5' in report
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 100
    assert "layers of each measurement:" in out and "model.layers.{0-1}.self_attn.o_proj" in out


def test_layers_with_one_shape_and_scheme_share_one_measurement(tmp_path):
    _, data, _ = _run_model(tmp_path, FP8_BLOCK)
    by_name = {layer["name"]: layer for layer in data["layers"]}
    same = [by_name[f"model.layers.{i}.self_attn.{p}"]["cases"] for i in (0, 1) for p in ("q_b_proj", "o_proj")]
    assert all(cases == same[0] for cases in same)  # 256x128 x fp8_blockscale: one measurement, four layers


def test_a_layout_fault_fails_its_layers_and_names_kwarg_and_env_var(tmp_path, capsys):
    code, data, report = _run_model(tmp_path, FP8_BLOCK, "--ck-free", "--fault", "triton_quant_ignores_shuffle_scale")
    assert code == 1
    statuses = _layer_statuses(data)
    assert statuses["model.layers.0.mlp.down_proj"] == "FAIL"  # G = 4 groups: the permutation shows
    assert statuses["model.layers.0.self_attn.o_proj"] == "PASS"  # K = 128, one group: row = column major
    [advice] = data["recommendations"]
    assert "`transpose_scale=True`" in advice["problem"] and "per_group_quant_hip" in advice["problem"]
    assert "ATOM_FP8_BLOCKSCALE_WEIGHT_PRESHUFFLE=0" in advice["fix"] and "fp8_blockscale/triton" in advice["fix"]
    assert "model.layers.0.mlp.down_proj" in advice["layers"]
    down = _layer(data, "model.layers.0.mlp.down_proj")
    assert "row_major" in down["cases"][0]["scale_layout"]["written"]
    assert down["cases"][0]["scale_layout"]["expected"] == "transposed"
    section = report.split("## Scale layouts")[1].split("## Recommendations")[0]
    assert "written row-major (M, G); GEMM reads column-major" in section and "MISMATCH" in section
    assert "(64, 4) strides (4, 1) float32" in section  # the buffer as written: shape, strides, dtype
    out = capsys.readouterr().out
    assert "scale layout written vs expected:" in out and "ATOM_FP8_BLOCKSCALE_WEIGHT_PRESHUFFLE=0" in out
    assert max(len(line) for line in out.splitlines()) <= 100


def test_a_dropped_scale_fails_per_tensor_layers_and_recommends_triton(tmp_path, monkeypatch):
    static = {"quant_method": "fp8", "activation_scheme": "static"}  # ATOM: per_Tensor
    path = _config(tmp_path, MXFP4, quantization_config=static)
    code, data, report = _run_model(tmp_path, path, "--fault", "hipblaslt_drops_scale_b", "--max-layers", "3")
    assert code == 1
    ran = [layer for layer in data["layers"] if layer["status"] != "SKIP"]
    assert len(ran) == 3 and {layer["chain"] for layer in ran} == {"fp8_per_tensor/hipblaslt"}
    assert all(layer["status"] == "FAIL" for layer in ran)
    [advice] = data["recommendations"]
    assert "`scale_a`/`scale_b`" in advice["problem"]
    assert "`ATOM_USE_TRITON_GEMM=1`" in advice["fix"] and "fp8_per_tensor/triton" in advice["fix"]
    # the fix holds: with the switch set, the same layers pass
    monkeypatch.setenv("ATOM_USE_TRITON_GEMM", "1")
    code, data, _ = _run_model(tmp_path, path, "--fault", "hipblaslt_drops_scale_b", "--max-layers", "3")
    assert code == 0 and {layer["chain"] for layer in data["layers"] if layer["chain"]} == {"fp8_per_tensor/triton"}


def test_layers_filter_and_max_layers(tmp_path):
    _, data, _ = _run_model(tmp_path, FP8_BLOCK, "--layers", "model.layers.1.*proj", "--max-layers", "2")
    assert [layer["name"] for layer in data["layers"]] == [
        "model.layers.1.self_attn.q_a_proj",
        "model.layers.1.self_attn.q_b_proj",
    ]


@pytest.mark.parametrize(
    "quantization_config, scheme",
    [
        ({"quant_method": "fp8", "weight_block_size": [128, 128]}, "fp8_blockscale"),
        ({"quant_method": "fp8", "activation_scheme": "dynamic"}, "fp8_per_token"),
        ({"quant_method": "fp8", "activation_scheme": "static"}, "fp8_per_tensor"),
        ({"quant_method": "fbgemm_fp8"}, "fp8_per_tensor"),
        ({"quant_method": "mxfp4", "modules_to_not_convert": ["lm_head"]}, "mxfp4"),
        (
            {
                "quant_method": "quark",
                "global_quant_config": {"weight": {"dtype": "fp8_e4m3", "qscheme": "per_channel"}},
            },
            "fp8_per_token",
        ),
        (
            {
                "quant_method": "compressed-tensors",
                "config_groups": {"g": {"weights": {"type": "int", "num_bits": 8, "strategy": "channel"}}},
            },
            "int8",
        ),
    ],
)
def test_quant_configs_map_as_atom_maps_them(quantization_config, scheme):
    from quantguard.validate.quant.model import parse_quant_config, scheme_of

    assert scheme_of(parse_quant_config(quantization_config).global_spec) == scheme


def test_excluded_layers_stay_unquantized():
    from quantguard.validate.quant.model import parse_quant_config

    parsed = parse_quant_config(
        {"quant_method": "fp8", "weight_block_size": [128, 128], "ignore": ["re:.*kv_b_proj", "model.layers.0.mlp"]}
    )
    assert parsed.for_layer("model.layers.3.self_attn.kv_b_proj").quant_type == "No"
    assert parsed.for_layer("model.layers.0.mlp.down_proj").quant_type == "No"
    assert parsed.for_layer("model.layers.1.mlp.down_proj").quant_type == "per_1x128"


def build_tiny_module():
    """``module:function`` target for the test below: a torch module with its quantization_config."""
    net = torch.nn.Sequential(torch.nn.Linear(256, 128, bias=False), torch.nn.Linear(128, 256, bias=False))
    return net, {"quant_method": "fp8", "activation_scheme": "dynamic"}


def test_module_function_runs_the_modules_own_linears(tmp_path):
    code, data, _ = _run_model(tmp_path, f"{__name__}:build_tiny_module")
    assert code == 0
    assert [(layer["name"], layer["chain"], layer["status"]) for layer in data["layers"]] == [
        ("0", "fp8_per_token/ck (bpreshuffle)", "PASS"),
        ("1", "fp8_per_token/ck (bpreshuffle)", "PASS"),
    ]


def test_checkpoint_weights_are_read_from_safetensors(tmp_path):
    safetensors = pytest.importorskip("safetensors.torch")
    import shutil

    shutil.copy(FP8_BLOCK, tmp_path / "config.json")
    weight = torch.randn(256, 512) * 0.02
    fp8 = (weight / 0.001).to(torch.float8_e4m3fn)  # a DeepSeek-style FP8 weight with its inverse block scale
    scale = torch.full((2, 4), 0.001)
    safetensors.save_file(
        {"model.layers.0.mlp.down_proj.weight": fp8, "model.layers.0.mlp.down_proj.weight_scale_inv": scale},
        str(tmp_path / "model.safetensors"),
    )
    code, data, report = _run_model(tmp_path, str(tmp_path), "--layers", "down_proj")
    assert code == 0 and "1 layers from *.safetensors" in report
    assert _layer_statuses(data) == {
        "model.layers.0.mlp.down_proj": "PASS",
        "model.layers.1.mlp.shared_experts.down_proj": "PASS",
    }


@pytest.mark.parametrize(
    "model, arguments, message",
    [
        ("no/such/config.json", (), "no such file or directory; accepted: a config.json"),
        ("{tmp}", (), "the directory has no config.json"),
        (
            "{bnb}",
            (),
            "maps to QuantType.No, bf16 in ATOM, which no AITER linear path runs; accepted: QuantType.per_Token",
        ),
        ("{unknown_arch}", (), "has no layer map; accepted: deepseek_v2"),
        (FP8_BLOCK, ("--layers", "nothing_matches"), "matches no quantized layer"),
        (FP8_BLOCK, ("--schemes", "fp8_blockscale"), "with --model each layer runs ATOM's chain"),
        (FP8_BLOCK, ("--tokens", "0"), "--tokens"),
        ("no_such_module_xyz:build", (), "cannot import build from no_such_module_xyz"),
    ],
)
def test_bad_model_input_exits_2_naming_what_is_accepted(tmp_path, capsys, model, arguments, message):
    config = json.loads((DATA / "mxfp4" / "config.json").read_text())
    (tmp_path / "bnb").mkdir()
    config["quantization_config"] = {"quant_method": "bitsandbytes", "load_in_8bit": True}
    (tmp_path / "bnb" / "config.json").write_text(json.dumps(config))
    (tmp_path / "unknown").mkdir()
    (tmp_path / "unknown" / "config.json").write_text(json.dumps({**config, "model_type": "t5"}))
    model = model.format(tmp=tmp_path, bnb=tmp_path / "bnb", unknown_arch=tmp_path / "unknown")
    parser = argparse.ArgumentParser()
    quant.add_arguments(parser)
    assert quant.run(parser.parse_args(["--sim", "--model", model, *arguments])) == 2
    assert message in capsys.readouterr().err


def test_layer_options_without_model_are_refused(capsys):
    parser = argparse.ArgumentParser()
    quant.add_arguments(parser)
    assert quant.run(parser.parse_args(["--sim", *SHAPES, "--max-layers", "3"])) == 2
    assert "add --model" in capsys.readouterr().err


def test_an_e8m0_rounding_fault_names_the_producer_no_switch_avoids(tmp_path):
    code, data, _ = _run_model(
        tmp_path, MXFP4, "--gfx", "gfx950", "--fault", "e8m0_ceil_rounding@hip", "--layers", "down_proj"
    )
    assert code == 1 and set(_layer_statuses(data).values()) == {"FAIL"}
    [advice] = data["recommendations"]
    assert "rounds its e8m0 scales Ceil; AITER declares RoundUp" in advice["problem"]
    assert "no ATOM switch avoids it" in advice["fix"] and "`per_1x32_mx_quant_hip`" in advice["fix"]
    assert any("QUANTGUARD_E8M0_ROUNDING" in change for _, change in advice["advice"])


# -- routed experts: AITER's fused_moe after ATOM's routing ------------------------------------------

FP8_DYNAMIC = {"quant_method": "fp8", "activation_scheme": "dynamic"}  # ATOM: per_Token
MIXTRAL = {"model_type": "mixtral", "num_local_experts": 4, "num_experts_per_tok": 2}


@pytest.mark.parametrize(
    "base, changes, quant_type, shape, w1_scale",
    [
        (FP8_BLOCK, {}, "per_1x128", "8 experts 256->2x128->256, top-2, 4 groups top-2, x2.5", "(8, 2, 2)"),
        (  # grouped_topk: no correction bias, groups ranked by their best softmax score
            FP8_BLOCK,
            {"model_type": "deepseek_v2", "topk_method": "group_limited_greedy", "scoring_func": "softmax"},
            "per_1x128",
            "8 experts 256->2x128->256, top-2, 4 groups top-2, x2.5",
            "(8, 2, 2)",
        ),
        (
            MXFP4,
            {**MIXTRAL, "quantization_config": FP8_DYNAMIC},
            "per_Token",
            "4 experts 256->2x512->256, top-2",
            "(4, 1024, 1)",
        ),
    ],
    ids=["deepseek-v3-block", "deepseek-v2-grouped-softmax", "mixtral-per-token"],
)
def test_routed_experts_run_through_fused_moe(tmp_path, base, changes, quant_type, shape, w1_scale):
    model = _config(tmp_path, base, **changes)
    code, data, report = _run_model(tmp_path, model, "--layers", "mlp.experts", "--tokens", "1,64")
    assert code == 0, report
    experts = [layer for layer in data["layers"] if layer["moe"]]
    assert [layer["name"] for layer in experts] == ["model.layers.0.mlp.experts", "model.layers.1.mlp.experts"][
        -len(experts) :
    ]
    for layer in experts:
        assert layer["status"] == "PASS" and layer["chain"] == f"fused_moe (QuantType.{quant_type})"
        for case in layer["cases"]:  # the kernel vs the same quantized operands, factor included: tight
            assert case["vs_matched"]["cosine"] >= 0.9999 and abs(case["vs_matched"]["norm_ratio"] - 1) < 1e-3
            assert case["vs_16bit"]["cosine"] >= 0.997 and set(case["scale_buffers"]) == {"w1_scale", "w2_scale"}
    assert experts[0]["cases"] == experts[-1]["cases"]  # one shape and scheme: one measurement
    table = report.split("## Scale layouts")[0]
    assert f"| {shape} |" in table and f"fused_moe (QuantType.{quant_type}) (#1)" in table
    assert f"w1_scale {w1_scale} float32" in report.split("## Scale layouts")[1]


def test_mxfp4_experts_are_listed_with_why_they_are_not_run(tmp_path):
    model = _config(tmp_path, MXFP4, **MIXTRAL)
    code, data, _ = _run_model(tmp_path, model, "--layers", "layers.0.mlp.experts,layers.0.self_attn.o_proj")
    assert code == 0 and _layer_statuses(data)["model.layers.0.mlp.experts"] == "SKIP"
    assert (
        "fused_moe for FP8 per_1x128 and per_Token experts only" in _layer(data, "model.layers.0.mlp.experts")["note"]
    )


def test_a_dropped_routed_scaling_factor_fails_the_moe_rows(tmp_path, capsys):
    code, data, report = _run_model(tmp_path, FP8_BLOCK, "--fault", "moe_missing_routed_scaling")
    assert code == 1
    statuses = _layer_statuses(data)
    assert statuses.pop("model.layers.1.mlp.experts") == "FAIL" and set(statuses.values()) == {"PASS"}
    [case] = _layer(data, "model.layers.1.mlp.experts")["cases"]
    assert abs(case["vs_matched"]["norm_ratio"] - 1 / 2.5) < 0.01  # direction intact: only the magnitude shows it
    assert any("topk_weights are 0.4x the reference's (routed_scaling_factor 2.5" in r for r in case["reasons"])
    [advice] = data["recommendations"]
    assert advice["layers"] == ["model.layers.1.mlp.experts"] and "`biased_grouped_topk`" in advice["problem"]
    assert "aiter.ops.topk.biased_grouped_topk" in advice["fix"]
    out = capsys.readouterr().out
    assert "fused_moe (QuantType.per_1x128)  FAIL" in out and max(len(line) for line in out.splitlines()) <= 100


@pytest.mark.parametrize(
    ("experts", "groups", "topk_group", "top_k", "bias", "measured"),
    [
        (256, 8, 4, 8, True, 16),  # DeepSeek-V3 on a small budget: 2 per group (bias-corrected groups need 2)
        (8, 4, 2, 2, True, 8),  # fits: all of them
        (64, 0, 0, 6, False, 6),  # no groups: at least top-k
    ],
)
def test_experts_that_do_not_fit_in_memory_are_measured_in_part(experts, groups, topk_group, top_k, bias, measured):
    from quantguard.validate.quant.moe import MoeShape, fit_to_memory

    moe = MoeShape(experts, 7168, 2048, top_k, groups, topk_group, 2.5, "sigmoid", bias)
    budget = experts * 3 * 3 * 7168 * 2048 if measured == experts else 1 << 20  # exactly all of them, or 1 MiB
    fitted = fit_to_memory(moe, torch.device("cpu"), budget=budget)
    assert fitted.experts == measured and not fitted.problem()
    assert (fitted.model_experts == experts) is (measured < experts)
    assert fitted.describe().startswith(
        f"{measured} of {experts} experts" if measured < experts else f"{experts} experts"
    )
