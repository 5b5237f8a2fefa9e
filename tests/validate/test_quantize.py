"""The module swapper: each path calls the AITER entry points it names, is accurate, and swaps reversibly."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
import torch
from torch import nn

import quantguard.sim as sim
from quantguard.validate import quantize_weights
from quantguard.validate.quantize import QuantConfig, QuantizedLinear, UnsupportedPath, quantized
from quantguard.validate.quantize_kernels import kernel_path

# (scheme, backend, preshuffle, arch) -> (module, activation quant), (module, GEMM) it must call:
# AITER's defining modules, as the path table names them (``aiter.X`` re-exports the same functions).
_HIP = "aiter.ops.quant"
_A8W8 = "aiter.ops.gemm_op_a8w8"
_A4W4 = "aiter.ops.gemm_op_a4w4"
_TRITON_GEMM = "aiter.ops.triton.gemm.basic."
PATHS = {
    ("fp8_per_token", "ck", True, "gfx942"): ((_HIP, "per_token_quant_hip"), (_A8W8, "gemm_a8w8_bpreshuffle")),
    ("fp8_per_token", "ck", False, "gfx942"): ((_HIP, "per_token_quant_hip"), (_A8W8, "gemm_a8w8_CK")),
    ("fp8_per_token", "triton", None, "gfx950"): (
        (_HIP, "per_token_quant_hip"),
        (_TRITON_GEMM + "gemm_a8w8", "gemm_a8w8"),
    ),
    ("fp8_blockscale", "ck", True, "gfx942"): (
        (_HIP, "per_group_quant_hip"),
        (_A8W8, "gemm_a8w8_blockscale_bpreshuffle"),
    ),
    ("fp8_blockscale", "ck", False, "gfx950"): ((_HIP, "per_group_quant_hip"), (_A8W8, "gemm_a8w8_blockscale")),
    ("fp8_blockscale", "triton", False, "gfx942"): (
        (_HIP, "per_group_quant_hip"),
        (_TRITON_GEMM + "gemm_a8w8_blockscale", "gemm_a8w8_blockscale"),
    ),
    ("fp8_blockscale", "triton", True, "gfx950"): (
        (_HIP, "per_group_quant_hip"),
        (_TRITON_GEMM + "gemm_a8w8_blockscale", "gemm_a8w8_blockscale_preshuffle"),
    ),
    ("fp8_blockscale", "asm", None, "gfx942"): (
        (_HIP, "per_group_quant_hip"),
        (_A8W8, "gemm_a8w8_blockscale_bpreshuffle_asm"),
    ),
    ("mxfp4", "ck", None, "gfx950"): ((_HIP, "per_1x32_mx_quant_hip"), (_A4W4, "gemm_a4w4")),
    ("mxfp4", "asm", None, "gfx950"): ((_HIP, "per_1x32_mx_quant_hip"), (_A4W4, "gemm_a4w4")),
    ("mxfp4", "triton", False, "gfx950"): (
        (_HIP, "per_1x32_mx_quant_hip"),
        (_TRITON_GEMM + "gemm_afp4wfp4", "gemm_afp4wfp4"),
    ),
    ("mxfp4", "triton", True, "gfx950"): (
        (_HIP, "per_1x32_mx_quant_hip"),
        (_TRITON_GEMM + "gemm_afp4wfp4", "gemm_afp4wfp4_preshuffle"),
    ),
    ("int4", "ck", None, "gfx942"): (None, None),
}
#: Real AITER parameter names of the entry points (shared/aiter_signatures.json).
_SIGNATURES_FILE = Path(__file__).resolve().parents[3] / "shared" / "aiter_signatures.json"
#: Minimum cosine of one quantized GEMM to the bf16 one (random weights and activations).
MIN_COSINE = {"fp8_per_token": 0.998, "fp8_blockscale": 0.998, "mxfp4": 0.98, "int4": 0.99}


@pytest.fixture
def simulator():
    """Install the simulator for one arch; uninstalled after the test."""
    yield lambda arch, **settings: sim.install(arch=arch, **settings)
    sim.uninstall()


def _spy(monkeypatch, module_name: str, attribute: str) -> tuple[str, list]:
    """Count calls of an entry point; returns its real qualified name and the calls' arguments."""
    module = importlib.import_module(module_name)
    original = getattr(module, attribute)
    calls = []

    def spy(*args, **kwargs):
        calls.append((args, kwargs))
        return original(*args, **kwargs)

    monkeypatch.setattr(module, attribute, spy)
    return f"{original.__module__}.{original.__name__}", calls


def _real_parameters() -> dict[str, list[str]]:
    if not _SIGNATURES_FILE.exists():
        return {}
    signatures = json.loads(_SIGNATURES_FILE.read_text())["signatures"]
    return {name: [parameter["name"] for parameter in parameters] for name, parameters in signatures.items()}


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().flatten(), b.double().flatten()
    return float(a @ b / (a.norm() * b.norm()))


@pytest.mark.parametrize("rows", [5, 40], ids=["M=5", "M=40"])
@pytest.mark.parametrize("key", sorted(PATHS, key=str), ids=lambda key: "-".join(map(str, key)))
def test_path_calls_its_aiter_entry_points_and_is_accurate(simulator, monkeypatch, key, rows):
    scheme, backend, preshuffle, arch = key
    simulator(arch)
    expected_quant, expected_gemm = PATHS[key]
    spies = [_spy(monkeypatch, *entry) for entry in (expected_quant, expected_gemm) if entry is not None]
    path = kernel_path(scheme, backend, preshuffle, arch)
    if expected_gemm is not None:
        assert path.gemm.startswith(".".join(expected_gemm))
    torch.manual_seed(0)
    linear = nn.Linear(256, 384, bias=True).to(torch.bfloat16)
    x = torch.randn(rows, 256, dtype=torch.bfloat16)
    with torch.no_grad():
        y, want = QuantizedLinear(linear, path)(x), linear(x)
    assert y.shape == (rows, 384) and y.dtype == torch.bfloat16
    real = _real_parameters()
    for qualified_name, calls in spies:
        assert len(calls) == 1, qualified_name
        args, kwargs = calls[0]
        if qualified_name in real:  # called the way the real entry point is declared
            assert len(args) <= len(real[qualified_name]) and set(kwargs) <= set(real[qualified_name])
    assert _cosine(y, want) >= MIN_COSINE[scheme]


@pytest.mark.parametrize(
    "scheme, backend, preshuffle, arch",
    [
        ("mxfp4", "ck", None, "gfx942"),
        ("mxfp4", "triton", None, "gfx942"),
        ("fp8_per_token", "asm", None, "gfx950"),
        ("fp8_blockscale", "asm", False, "gfx942"),
        ("mxfp4", "ck", False, "gfx950"),
        ("nvfp4", "ck", None, "gfx950"),
        ("int4", "cuda", None, "gfx950"),
    ],
)
def test_paths_aiter_does_not_have_are_refused(simulator, scheme, backend, preshuffle, arch):
    simulator(arch)
    with pytest.raises(UnsupportedPath):
        kernel_path(scheme, backend, preshuffle, arch)


class _Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.up = nn.Linear(256, 512, bias=False)
        self.odd = nn.Linear(100, 256, bias=False)


class _Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([_Block(), _Block()])
        self.lm_head = nn.Linear(256, 64, bias=False)


def test_swap_is_reversible_and_reports_kept_layers(simulator):
    simulator("gfx942")
    model = _Toy().to(torch.bfloat16)
    originals = {name: module for name, module in model.named_modules() if isinstance(module, nn.Linear)}
    with quantized(model, QuantConfig("fp8_blockscale"), "gfx942") as swap:
        assert swap.swapped == ["layers.0.up", "layers.1.up"]
        assert isinstance(model.layers[0].up, QuantizedLinear)
        assert swap.kept["lm_head"] == "skipped (--skip)"
        assert "K=100" in swap.kept["layers.0.odd"]
    assert {name: module for name, module in model.named_modules() if isinstance(module, nn.Linear)} == originals


def test_swap_is_undone_when_the_block_raises(simulator):
    simulator("gfx942")
    model = _Toy().to(torch.bfloat16)
    up = model.layers[1].up
    with pytest.raises(RuntimeError, match="boom"), quantized(model, QuantConfig("int4"), "gfx942", skip=()):
        raise RuntimeError("boom")
    assert model.layers[1].up is up


def test_unsupported_configuration_leaves_the_model_alone(simulator):
    simulator("gfx942")
    model = _Toy()
    with pytest.raises(UnsupportedPath, match="gfx950"), quantized(model, QuantConfig("mxfp4"), "gfx942"):
        pass
    assert not any(isinstance(module, QuantizedLinear) for module in model.modules())


@pytest.mark.parametrize("arch", sim.ARCHS)
def test_fp8_weight_references_use_the_arch_format(simulator, arch):
    simulator(arch)
    from aiter import dtypes

    weight = torch.randn(256, 384)
    values, scale = quantize_weights.fp8_per_channel(weight, dtypes.fp8)
    assert values.dtype == dtypes.fp8 and scale.shape == (256, 1)
    assert torch.equal(values.float().abs().amax(1), torch.full((256,), torch.finfo(dtypes.fp8).max))
    assert _cosine(values.float() * scale, weight) > 0.999
    blocks, block_scale = quantize_weights.fp8_blocks(weight, dtypes.fp8)
    assert block_scale.shape == (2, 3)
    expanded = block_scale.repeat_interleave(128, 0).repeat_interleave(128, 1)
    assert _cosine(blocks.float() * expanded, weight) > 0.999


def test_mxfp4_weight_reference_uses_round_to_even_scales(simulator):
    simulator("gfx950")
    from aiter.utility.fp4_utils import e8m0_to_f32, mxfp4_to_f32

    # amax 6 = 1.5 * 4 rounds down to 4 in Quark's even mode: scale 2^0 (byte 127), values exact.
    group = torch.tensor([6.0, -3.0, 0.5, 1.5] * 8)
    # amax 7 rounds up to 8: scale 2^1 (byte 128).
    weight = torch.stack([group, group * 7 / 6])
    packed, scale = quantize_weights.mxfp4_groups(weight)
    assert scale.view(torch.uint8).flatten().tolist() == [127, 128]
    decoded = mxfp4_to_f32(packed) * e8m0_to_f32(scale).repeat_interleave(32, dim=1)
    assert torch.equal(decoded[0], group)
    random = torch.randn(64, 256)
    packed, scale = quantize_weights.mxfp4_groups(random)
    assert _cosine(mxfp4_to_f32(packed) * e8m0_to_f32(scale).repeat_interleave(32, dim=1), random) > 0.98


def test_int4_reference_is_symmetric_group_128():
    weight = torch.randn(8, 256)
    codes, scale = quantize_weights.int4_groups(weight)
    assert codes.dtype == torch.int8 and scale.shape == (8, 2)
    assert int(codes.abs().max()) == 7
    dequantized = quantize_weights.dequantize_int4(codes, scale, torch.float32)
    assert torch.all((dequantized - weight).abs() <= scale.repeat_interleave(128, 1) / 2 + 1e-6)
