"""The ATOM-like workload: deterministic, close to its BF16 reference, equal to its precision-matched
reference up to accumulation order, and faults show up."""

from __future__ import annotations

import math

import pytest
import torch

from quantguard.sim import workload

PROMPT = [5, 17, 42, 99, 3, 250, 7, 11]


@pytest.fixture(scope="module")
def reference():
    model = workload.build_reference()
    return model, workload.generate(model, PROMPT, 50)


def _match(tokens, expected):
    return sum(a == b for a, b in zip(tokens, expected)) / len(expected)


def _built_modules():
    import aiter.jit.core as core

    built = set()
    for name in core.MODULE_BACKENDS:
        try:
            core.get_module(name)
        except ModuleNotFoundError:
            continue
        built.add(name)
    return built


_DEPLOYMENTS = {
    "ck": (
        {"backend": "ck"},
        {"module_gemm_a8w8_blockscale_bpreshuffle", "module_gemm_a8w8_bpreshuffle", "module_moe_ck2stages"},
    ),
    "asm": (
        {"backend": "asm"},
        {"module_gemm_a8w8_blockscale_bpreshuffle_asm", "module_gemm_a8w8_bpreshuffle", "module_moe_ck2stages"},
    ),
    "triton": ({"backend": "triton"}, set()),
    "ck_free": ({"backend": "triton", "ck_free": True}, set()),
}


@pytest.mark.parametrize("deployment", sorted(_DEPLOYMENTS))
def test_clean_workload_matches_reference_on_every_backend(reference, arch, deployment):
    ref_model, ref_tokens = reference
    settings, ck_and_asm = _DEPLOYMENTS[deployment]
    with workload.deploy(arch=arch, **settings) as deployed:
        model = workload.build_model(deployed)
        tokens = workload.generate(model, PROMPT, 50)
        assert tokens == workload.generate(model, PROMPT, 50)
        errors = workload.layer_errors(model, ref_model, PROMPT)
        built = _built_modules()
        # the same quantized operands in fp32: CK prefill decompresses K/V, CK fused_moe keeps fp32 stages
        triton = deployment in ("triton", "ck_free")
        matched = workload.build_matched_reference(
            arch, absorbed_prefill=triton, ck_moe=arch == "gfx950" and not triton
        )
        matched_errors = workload.layer_errors(model, matched, PROMPT)
    assert matched_errors.keys() == errors.keys()
    assert max(matched_errors.values()) < 1e-4, {k: v for k, v in matched_errors.items() if not v < 1e-4}
    assert max(errors.values()) > 0.02  # what the BF16 reference sees is the quantization error
    assert _match(tokens, ref_tokens) >= 0.9
    assert errors["layers.0.attn.q_proj"] < 0.08 and errors["layers.0.attn.kv_a_proj"] < 0.08
    assert errors["lm_head"] < 0.5
    fp4 = {"asm": "module_gemm_a4w4_asm", "ck": "module_gemm_a4w4_blockscale"}
    expected = ck_and_asm | ({fp4[deployment]} if arch == "gfx950" and deployment in fp4 else set())
    if arch == "gfx942":  # ATOM main: Mxfp4MoEMethod.use_triton defaults to True on gfx94x, so no CK MoE
        expected = expected - {"module_moe_ck2stages"}
    non_hip = {name for name in built if name not in ("module_quant", "module_moe_asm")}
    assert non_hip == expected


def test_matched_reference_takes_the_checkpoint_operands():
    """Weights are the checkpoint's FP8/MXFP4 values times their scales; activations quantized per recipe."""
    from quantguard.numerics.dequant import quantize_dequantize
    from quantguard.sim.workload import _matched
    from quantguard.sim.workload._checkpoint import checkpoint, master_weights

    matched = workload.build_matched_reference("gfx950")
    tensors = checkpoint(master_weights(workload.ModelConfig()), workload.DEFAULT_SCHEMES)
    weight, scale = tensors["layers.0.attn.q_proj.weight"], tensors["layers.0.attn.q_proj.weight_scale"]
    assert torch.equal(matched.layers[0].attn.q_proj.weight[:128, 128:], weight[:128, 128:].float() * scale[0, 1])
    x = torch.randn(3, 256, generator=torch.Generator().manual_seed(1)).bfloat16()
    fp8 = quantize_dequantize(x, 128, torch.float8_e4m3fn).unflatten(-1, (-1, 128))
    exact = x.float().unflatten(-1, (-1, 128))
    assert torch.allclose(fp8.abs().amax(-1), exact.abs().amax(-1))  # amax maps to 448 exactly
    assert ((fp8 - exact).abs() <= exact.abs() / 16 + 1e-6).all() and not torch.equal(fp8, exact)
    mx = _matched.mxfp4_activation(x).unflatten(-1, (-1, 32))
    assert all(group.abs().unique().numel() <= 8 for group in mx.reshape(-1, 32))  # FP4: 8 magnitudes
    assert _matched.arch_fp8("gfx942") is torch.float8_e4m3fnuz


def test_archs_generate_the_same_tokens(reference):
    outputs = []
    for arch in ("gfx942", "gfx950"):
        with workload.deploy(arch=arch) as deployed:
            outputs.append(workload.generate(workload.build_model(deployed), PROMPT, 50))
    assert _match(outputs[0], outputs[1]) >= 0.9


def test_schemes_are_validated():
    with workload.deploy(arch="gfx942") as deployed:
        with pytest.raises(ValueError, match="gfx942"):
            workload.build_model(deployed, schemes={"attn.o_proj": "mxfp4"})
        with pytest.raises(ValueError, match="accepted"):
            workload.build_model(deployed, schemes={"mlp.experts": "mxfp4"})
        model = workload.build_model(deployed, schemes={"mlp.experts": "fp8_per_token", "attn.q_proj": "bf16"})
        assert len(workload.generate(model, PROMPT, 4)) == 4


def test_build_model_needs_the_simulator():
    with pytest.raises(RuntimeError, match="deploy"):
        workload.build_model(workload.Deployment("gfx942", False, "ck", True, torch.device("cpu"), {}))


# --------------------------------------------------------------------------- faults in the workload


def _errors(reference, faults, **settings):
    with workload.deploy(faults=faults, **settings) as deployed:
        model = workload.build_model(deployed)
        return workload.layer_errors(model, reference[0], PROMPT), workload.generate(model, PROMPT, 10)


_VISIBLE = [
    ("fp8_copy_drops_scale", {"arch": "gfx950"}, "layers.0.attn.core.kv_b_proj", 100.0),
    ("e8m0_copy_zero_fill", {"arch": "gfx950"}, "layers.0.attn.o_proj", 0.9),
    ("gemm_reads_scale_wrong_major", {"arch": "gfx942"}, "layers.0.attn.q_proj", 0.15),
    (
        "asm_gemm_garbage_gfx950",
        {"arch": "gfx950", "ck_free": True, "backend": "asm", "preshuffle": True},
        "layers.0.attn.q_proj",
        1.0,
    ),
    ("partial_transpose_noop", {"arch": "gfx942", "ck_free": True, "backend": "triton"}, "layers.0.mlp.experts", 0.95),
    (
        "triton_quant_ignores_shuffle_scale",
        {"arch": "gfx942", "ck_free": True, "backend": "triton"},
        "layers.0.mlp.experts",
        0.6,
    ),
    ("moe_missing_routed_scaling", {"arch": "gfx942"}, "layers.0.mlp.experts", 0.5),
]


@pytest.mark.parametrize(("fault", "settings", "layer", "threshold"), _VISIBLE, ids=[case[0] for case in _VISIBLE])
def test_fault_shows_in_its_layer(reference, fault, settings, layer, threshold):
    clean, _ = _errors(reference, (), **settings)
    faulty, _ = _errors(reference, [fault], **settings)
    assert clean[layer] < 0.3
    assert faulty[layer] > threshold


def test_missing_normalization_halves_weights_and_spreads_nan(reference):
    errors, _ = _errors(reference, ["missing_e4m3fnuz_normalization"], arch="gfx942", backend="triton")
    assert errors["layers.0.attn.q_proj"] == pytest.approx(0.5, abs=0.03)
    assert math.isnan(errors["lm_head"])


def test_e8m0_ceil_rounding_changes_mxfp4_precision_only(reference):
    clean, _ = _errors(reference, (), arch="gfx950")
    faulty, _ = _errors(reference, ["e8m0_ceil_rounding@hip"], arch="gfx950")
    assert faulty["layers.0.attn.o_proj"] != clean["layers.0.attn.o_proj"]
    assert faulty["layers.0.attn.o_proj"] < 0.3


@pytest.mark.parametrize(
    ("fault", "settings", "error"),
    [
        ("atom_ignores_ck_free", {"ck_free": True, "backend": "triton"}, RuntimeError),
        ("jit_build_systemexit", {"ck_free": True, "preshuffle": True}, SystemExit),
    ],
)
def test_ck_free_faults_stop_the_forward(fault, settings, error):
    with workload.deploy(faults=[fault], **settings) as deployed:
        model = workload.build_model(deployed)
        with pytest.raises(error):
            workload.generate(model, PROMPT, 1)


@pytest.mark.parametrize("release_build", [False, True])
def test_deploy_passes_the_release_build_option(release_build):
    import quantguard.sim as sim

    with workload.deploy(arch="gfx950", release_build=release_build):
        import aiter.ops.gemm_op_a8w8 as a8w8

        assert sim.current().release_build is release_build
        assert hasattr(a8w8, "gfx950_a8w8_blockscale_asm") is release_build
