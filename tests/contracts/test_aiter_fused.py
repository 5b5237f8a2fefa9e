"""The fused-producer and metadata-only kernel contracts: real parameter names, and adapters on CPU tensors.

Parameters are compared with the function definitions of the vendored AITER
tree (parsed with ``ast``, never imported); those tests skip when
``../shared/third_party`` is absent.  Adapters are exercised through
stand-in producers written here in torch (a clean one and one with a known
mistake), registered under AITER's own contract with another target — the
way a user declares a producer with a built-in adapter.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
import torch

import quantguard
import quantguard.sim as sim
from quantguard.contracts.aiter import attention_table, fused_table, kernel_table
from quantguard.contracts.aiter.fused_adapters import rms_norm, silu_mul
from quantguard.testing import capture_events

AITER = Path(__file__).resolve().parents[2] / ".." / "shared" / "third_party" / "aiter-e4048607"
NEW = fused_table.CONTRACTS + kernel_table.CONTRACTS + attention_table.CONTRACTS


def _real_parameters(target: str) -> list[str] | None:
    """Parameter names of the function ``target`` names, read from the vendored tree's source."""
    module, _, name = target.rpartition(".")
    base = AITER / Path(*module.split("."))
    source = base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
    if not source.is_file():
        return None
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.FunctionDef) and node.name == name:
            arguments = node.args
            return [a.arg for a in arguments.posonlyargs + arguments.args + arguments.kwonlyargs]
    return None


@pytest.mark.skipif(not AITER.is_dir(), reason="the vendored AITER tree (../shared/third_party) is absent")
@pytest.mark.parametrize("contract", NEW, ids=lambda c: c.target.rsplit(".", 1)[-1])
def test_params_match_the_real_function(contract):
    real = _real_parameters(contract.target)
    assert real is not None, f"{contract.target} is not defined in the vendored AITER"
    assert list(contract.params) == real
    assert {entry.name for entry in contract.key_params} <= set(real)
    assert set(contract.honored) <= set(real)


@pytest.mark.parametrize("contract", NEW, ids=lambda c: c.target.rsplit(".", 1)[-1])
def test_descriptions_and_asm_flags(contract):
    assert contract.description
    assert contract.asm == contract.target.endswith("asm_moe")


# -- stand-in producers (torch) ----------------------------------------------------------------

FP8 = torch.float8_e4m3fn  # gfx950's fp8


SUPPORT = """
import torch
from quantguard.contracts.aiter.fused_adapters import rms_norm, silu_mul

FP8 = torch.float8_e4m3fn

def groups_fp8(x, group):
    rows, cols = x.shape
    blocks = x.float().reshape(rows, cols // group, group)
    top = torch.finfo(FP8).max
    scale = blocks.abs().amax(-1).clamp(min=1e-10) / top
    return (blocks / scale.unsqueeze(-1)).clamp(-top, top).reshape(rows, cols).to(FP8), scale
"""

STAND_INS = """
import torch
from tests_support_fused import rms_norm, silu_mul, groups_fp8, FP8

def rmsnorm_quant(out, input, scale, weight, epsilon, group_size=0, shuffle_scale=False, gemma_norm=False):
    x = rms_norm(input, weight, epsilon, gemma_norm)
    q, s = groups_fp8(x, group_size or x.shape[-1])
    out.copy_(q)
    layout = s.t().contiguous() if shuffle_scale and not WRONG else s
    scale.view(-1).copy_(layout.reshape(-1))

def fused_rms_fp8_per_tensor_static_quant(inp1, inp1_weight, inp1_epsilon, inp1_scale, inp2=None,
        inp2_weight=None, inp2_epsilon=None, dtype_quant=FP8, res1=None, output_unquantized_inp1=False,
        rmsnorm_convert_to_inp1_type=False):
    x = rms_norm(inp1 if res1 is None else inp1.float() + res1.float(), inp1_weight, inp1_epsilon)
    divisor = inp1_scale * (2.0 if WRONG else 1.0)
    return (x / divisor).clamp(-448, 448).to(dtype_quant), None, None, None

def fused_silu_mul_fp8_per_tensor_static_quant(inp, inp_scale, dtype_quant=FP8, silu_convert_to_inp_type=False):
    values = silu_mul(inp.flip(-1) if WRONG else inp)  # the faulty one swaps gate and up
    return (values / inp_scale).clamp(-448, 448).to(dtype_quant)

def fused_reduce_rms_fp8_group_quant(inp1, inp1_weight, inp1_epsilon, inp2=None, inp2_weight=None,
        inp2_epsilon=None, inp3=None, group_size=128, dtype_quant=FP8, dtype=None, res1=None,
        output_unquantized_inp1=False, out3=None, transpose_scale=False, is_x_scale_strided=False):
    x = inp1.float().sum(0) if inp1.dim() == 3 else inp1.float()
    q, s = groups_fp8(rms_norm(x, inp1_weight, inp1_epsilon), group_size)
    if transpose_scale and not WRONG:
        s = s.t().contiguous().view(s.shape)
    return (q, s), None, None, None, None

def fused_rms_mxfp4_quant(x1, x1_weight, x1_epsilon, x2=None, x2_weight=None, x2_epsilon=0.0, res1=None,
        shuffle=False, scale_shuffle_padding=False, output_unquantized_inp1=False, inargs="auto"):
    import aiter.ops.triton.quant as tq
    q, s = tq.dynamic_mxfp4_quant(rms_norm(x1, x1_weight, x1_epsilon) * (4.0 if WRONG else 1.0))
    return (q, s), None, None, None

def mxfp4_quant(x, block_size_m=16, block_size_n=256):
    import aiter.ops.triton.quant as tq
    q, s = tq.dynamic_mxfp4_quant(x)  # the simulator's Even rounding, like AITER's _mxfp4_quant_op
    return q, (s + 1 if WRONG else s)  # the faulty one rounds every scale one power of two up

def downcast_to_static_fp8(x, scale):
    return (x.float() / (scale * (0.5 if WRONG else 1.0))).clamp(-448, 448).to(FP8)
"""


@pytest.fixture
def stand_ins(make_module, tmp_path, monkeypatch):
    """Clean (``qgt_fused_clean``) and faulty (``qgt_fused_wrong``) stand-ins, registered with the new contracts."""
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "tests_support_fused.py").write_text(SUPPORT)
    sim.install("gfx950")
    modules = {}
    for name, wrong in (("qgt_fused_clean", False), ("qgt_fused_wrong", True)):
        modules[wrong] = make_module(name, f"WRONG = {wrong}\n" + STAND_INS)
        for contract in NEW:
            attribute = contract.target.rsplit(".", 1)[-1]
            if hasattr(modules[wrong], attribute):
                quantguard.register(dataclasses.replace(contract, target=f"{name}.{attribute}"))
    quantguard.enable(log=str(tmp_path / "log.jsonl"), sample_rate=1.0, targets="qgt_fused_*")
    return modules


def _x(rows: int = 32, cols: int = 256, seed: int = 0) -> torch.Tensor:
    return (torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed)) * 3).to(torch.bfloat16)


def _weight(cols: int = 256) -> torch.Tensor:
    return torch.rand(cols, generator=torch.Generator().manual_seed(7)) + 0.5


CALLS = {
    "rmsnorm_quant_per_token": lambda m: m.rmsnorm_quant(
        torch.empty(32, 256, dtype=FP8), _x(), torch.empty(32, 1), _weight(), 1e-6
    ),
    "rmsnorm_quant_group_transposed": lambda m: m.rmsnorm_quant(
        torch.empty(32, 256, dtype=FP8), _x(), torch.empty(2, 32).view(32, 2), _weight(), 1e-6, 128, True
    ),
    "rms_fp8_static": lambda m: m.fused_rms_fp8_per_tensor_static_quant(
        _x(), _weight(), 1e-6, torch.tensor([0.01]), res1=_x(seed=1)
    ),
    "silu_mul_fp8_static": lambda m: m.fused_silu_mul_fp8_per_tensor_static_quant(_x(cols=512), torch.tensor([0.2])),
    "reduce_rms_fp8_group_transposed": lambda m: m.fused_reduce_rms_fp8_group_quant(
        torch.stack([_x(), _x(seed=2)]).float(), _weight(), 1e-6, group_size=128, transpose_scale=True
    ),
    "rms_mxfp4": lambda m: m.fused_rms_mxfp4_quant(_x(), _weight(), 1e-6),
    "downcast_static_fp8": lambda m: m.downcast_to_static_fp8(_x(), torch.tensor([0.05])),
    "moe_mxfp4_quant": lambda m: m.mxfp4_quant(_x()),
}
#: What the faulty stand-in of each call does wrong, and the check that must see it.
FLAGGED = {
    "rmsnorm_quant_per_token": None,  # the fault is in the shuffled layout only
    "rmsnorm_quant_group_transposed": "numerics",  # (M, G) bytes written though (G, M) requested
    "rms_fp8_static": "numerics",  # divided by twice the scale
    "silu_mul_fp8_static": "numerics",  # gate and up swapped
    "reduce_rms_fp8_group_transposed": "numerics",
    "rms_mxfp4": "numerics",  # quantized 4x the normalized values
    "downcast_static_fp8": "numerics",
    "moe_mxfp4_quant": "scale_values",  # bytes match no rounding of the group amax
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_clean_producers_are_quiet_and_faulty_ones_flagged(stand_ins, name):
    with capture_events() as events:
        CALLS[name](stand_ins[False])
    assert not events.violations(), [e["message"] for e in events.violations()]
    assert events.named("shadow") and all(e["passed"] for e in events.named("shadow"))
    with capture_events() as events:
        CALLS[name](stand_ins[True])
    expected = FLAGGED[name]
    assert (expected in events.checks()) if expected else not events.violations(), events.checks()


def test_fused_producer_records_the_layout_it_was_asked_for(stand_ins):
    with capture_events():
        (q, scale), *_ = CALLS["reduce_rms_fp8_group_transposed"](stand_ins[False])
    from quantguard.engine.lifecycle import current_runtime

    produced = current_runtime().provenance.lookup(scale)
    assert produced is not None
    assert (produced.requested_layout, produced.request) == ("transposed", "transpose_scale=True")


def test_fp8_variant_of_a_static_producer_is_checked(stand_ins):
    with capture_events() as events:
        stand_ins[False].fused_silu_mul_fp8_per_tensor_static_quant(
            _x(cols=512), torch.tensor([0.05]), dtype_quant=torch.float8_e4m3fnuz
        )
    assert "fp8_variant" in events.checks()


# -- metadata-only kernels ---------------------------------------------------------------------

SPLIT_CAT = """
import torch
def fused_gemm_a8w8_blockscale_preshuffle_split_cat(x, w, y, x_scale, w_scale, S1, S2, dtype=torch.bfloat16,
                                                    config=None, is_x_scale_transposed=True):
    return torch.zeros(x.shape[0], S1 + S2, dtype=dtype)

def moe_gemm_a8w4(x, w, x_scales, w_scales, x_static_scale=None, quant_static_scale=None, bias=None,
                  routing_data=None, gather_indx=None, scatter_indx=None, gammas=None, swizzle_mx_scale=None,
                  out_dtype=torch.bfloat16, apply_swiglu=False, alpha=1.0, limit=1.0, swiglu_add_residual=True,
                  preshuffled=False, unpadded_N=None, unpadded_K=None, out_mx_quant=False, residual=None,
                  backend=None):
    out = torch.zeros(x.shape[0], 16, dtype=out_dtype)
    out[0, 0] = float("nan") if NAN else 0.0
    return out
"""


@pytest.fixture
def kernels(make_module, tmp_path):
    sim.install("gfx950")
    module = make_module("qgt_kernels", "NAN = False\n" + SPLIT_CAT)
    for contract in kernel_table.CONTRACTS:
        attribute = contract.target.rsplit(".", 1)[-1]
        if hasattr(module, attribute):
            quantguard.register(dataclasses.replace(contract, target=f"qgt_kernels.{attribute}"))
    quantguard.enable(log=str(tmp_path / "log.jsonl"), sample_rate=1.0, targets="qgt_kernels.*")
    return module


M, N, K = 32, 256, 512


@pytest.mark.parametrize(
    "x_scale, flagged",
    [
        (torch.empty(K // 128, M).view(M, K // 128), None),  # (G, M) bytes, the default transposed layout
        (torch.empty(M, K // 128 - 1), "scale_shape"),
        (torch.empty(M, K // 128, dtype=torch.bfloat16), "scale_dtype"),
    ],
)
def test_blockscale_split_cat_scale_shapes(kernels, x_scale, flagged):
    x = torch.zeros(M, K, dtype=FP8)
    w = torch.zeros(N // 16, K * 16, dtype=FP8)
    x_scale.fill_(1.0)
    with capture_events() as events:
        kernels.fused_gemm_a8w8_blockscale_preshuffle_split_cat(
            x, w, None, x_scale, torch.ones(N // 128, K // 128), 128, 128
        )
    checks = events.checks()
    assert (flagged in checks) if flagged else not checks, checks


def test_metadata_kernel_flags_fp8_variant_and_nan(kernels, monkeypatch):
    x = torch.zeros(8, 64, dtype=torch.float8_e4m3fnuz)  # gfx950 reads e4m3fn
    with capture_events() as events:
        kernels.moe_gemm_a8w4(x, torch.zeros(4, 32, 64, dtype=torch.uint8), torch.ones(1), None)
    assert events.checks() == {"fp8_variant"}
    monkeypatch.setattr(kernels, "NAN", True)
    with capture_events() as events:
        kernels.moe_gemm_a8w4(
            torch.zeros(8, 64, dtype=FP8), torch.zeros(4, 32, 64, dtype=torch.uint8), torch.ones(1), None
        )
    assert events.checks() == {"nonfinite"}


def test_reference_helpers():
    x = torch.tensor([[3.0, 4.0]])
    assert torch.allclose(rms_norm(x, torch.ones(2), 0.0), x / (12.5**0.5))
    assert torch.allclose(rms_norm(x, torch.zeros(2), 0.0, gemma=True), x / (12.5**0.5))
    assert torch.allclose(silu_mul(torch.tensor([[0.0, 2.0]])), torch.tensor([[0.0]]))
