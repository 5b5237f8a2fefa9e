"""Triton fused norm/activation + FP8 quant producers against plain torch references.

References are written here from the definitions (RMSNorm in float32, static
per-tensor ``x / scale``, per-group ``max(amax, 1e-10) / dtype_max`` with
group 128, ``silu(gate) * up``), not from the simulator's helpers. FP8 bytes
may differ from a reference by one step where ``x / s`` and the kernel's
``x * (1 / s)`` round apart; everything else is compared exactly or within
the output dtype's rounding.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
import sim_refs as ref
import torch

import quantguard
from quantguard.testing import capture_events

MODULE = "aiter.ops.triton.quant.fused_fp8_quant"
NAMES = (
    "fused_rms_fp8_per_tensor_static_quant",
    "fused_silu_mul_fp8_per_tensor_static_quant",
    "fused_reduce_rms_fp8_group_quant",
)
REAL_SOURCE = (
    Path(__file__).resolve().parents[2]
    / ".."
    / "shared"
    / "third_party"
    / "aiter-e4048607"
    / "aiter"
    / "ops"
    / "triton"
    / "quant"
    / "fused_fp8_quant.py"
)
M, N1, N2, N3, SPLIT_K = 6, 384, 192, 96, 3
EPS1, EPS2 = 1e-6, 1e-5


@pytest.fixture
def fused(install, arch):
    install(arch)
    import aiter.ops.triton.quant.fused_fp8_quant as module

    return module


def _x(*shape: int, seed: int = 0, dtype=torch.bfloat16) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    rows = torch.randn(*shape, generator=gen) * (torch.rand(*shape[:-1], 1, generator=gen) * 4 + 0.5)
    return rows.to(dtype)


def _weight(cols: int, seed: int = 1) -> torch.Tensor:
    return (torch.rand(cols, generator=torch.Generator().manual_seed(seed)) + 0.5).to(torch.bfloat16)


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    x = x.float()
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight.float()


def _silu_mul(x: torch.Tensor) -> torch.Tensor:
    gate, up = x.float().chunk(2, dim=-1)
    return torch.nn.functional.silu(gate) * up


def _group_scales(x: torch.Tensor, group: int, dtype: torch.dtype) -> torch.Tensor:
    """fp32 (M, ceil(N / group)) scales; a last partial group counts only its own columns."""
    blocks = [x[:, start : start + group] for start in range(0, x.shape[1], group)]
    amax = torch.stack([block.abs().amax(1) for block in blocks], dim=1)
    return amax.clamp_min(1e-10) / torch.finfo(dtype).max


def _assert_fp8(q: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype) -> None:
    """``q`` is ``dtype`` and matches fp32 ``expected`` saturated into it, up to one FP8 step."""
    assert q.dtype == dtype and q.shape == expected.shape and q.is_contiguous()
    limit = torch.finfo(dtype).max
    reference = expected.clamp(-limit, limit).to(dtype)
    exact = (q.view(torch.uint8) == reference.view(torch.uint8)).float().mean()
    assert exact > 0.98, float(exact)
    torch.testing.assert_close(q.float(), reference.float(), rtol=2**-3, atol=2**-9)


def _bf16_close(actual: torch.Tensor, expected: torch.Tensor, dtype=torch.bfloat16) -> None:
    assert actual.dtype == dtype and actual.shape == expected.shape
    torch.testing.assert_close(actual.float(), expected.to(dtype).float(), rtol=2**-7, atol=1e-5)


# --------------------------------------------------------------------------- RMSNorm + static per-tensor


def test_rms_per_tensor_static_quant(fused):
    import aiter

    x, residual, weight, scale = _x(M, N1), _x(M, N1, seed=2), _weight(N1), torch.tensor([0.02])
    out1_fp8, out1, out2, out_res1 = fused.fused_rms_fp8_per_tensor_static_quant(
        x, weight, EPS1, scale, res1=residual, output_unquantized_inp1=True
    )
    summed = x.float() + residual.float()
    normed = _rms_norm(summed, weight, EPS1)
    _assert_fp8(out1_fp8, normed / 0.02, aiter.dtypes.fp8)  # dtype_quant defaults to the arch's fp8
    _bf16_close(out1, normed)
    assert out2 is None
    assert out_res1.dtype == torch.bfloat16 and torch.equal(out_res1, summed.to(torch.bfloat16))


def test_rms_per_tensor_static_quant_optional_outputs(fused):
    x, weight = _x(M, N2), _weight(N2)
    second, second_weight = _x(M, 128, seed=3, dtype=torch.float32), _weight(128, seed=4)
    plain = fused.fused_rms_fp8_per_tensor_static_quant(x, weight, EPS1, torch.tensor([0.01]))
    assert plain[1:] == (None, None, None)

    out1_fp8, out1, out2, out_res1 = fused.fused_rms_fp8_per_tensor_static_quant(
        x,
        weight,
        EPS1,
        torch.tensor([0.01]),
        second,
        second_weight,
        EPS2,
        dtype_quant=torch.float8_e4m3fn,
        output_unquantized_inp1=True,
        rmsnorm_convert_to_inp1_type=True,
    )
    normed = _rms_norm(x, weight, EPS1)
    # rounded to inp1's dtype before quantizing; the unquantized output is not affected
    _assert_fp8(out1_fp8, normed.to(torch.bfloat16).float() / 0.01, torch.float8_e4m3fn)
    _bf16_close(out1, normed)
    _bf16_close(out2, _rms_norm(second, second_weight, EPS2))  # in inp1's dtype, not inp2's
    assert out_res1 is None


def test_rms_per_tensor_static_quant_saturates_and_reads_the_first_scale(fused):
    x, weight = _x(M, N2), _weight(N2)
    out1_fp8, *_ = fused.fused_rms_fp8_per_tensor_static_quant(
        x, weight, EPS1, torch.tensor([1e-4, 5.0]), dtype_quant=torch.float8_e4m3fn
    )
    _assert_fp8(out1_fp8, _rms_norm(x, weight, EPS1) / 1e-4, torch.float8_e4m3fn)
    assert out1_fp8.float().abs().max() == 448.0


# --------------------------------------------------------------------------- SiLU-mul + static per-tensor


@pytest.mark.parametrize("convert", [False, True])
def test_silu_mul_per_tensor_static_quant(fused, convert):
    import aiter

    x = _x(M, 2 * 200)
    out = fused.fused_silu_mul_fp8_per_tensor_static_quant(x, torch.tensor([0.05]), silu_convert_to_inp_type=convert)
    product = _silu_mul(x)
    if convert:
        product = product.to(torch.bfloat16).float()
    assert isinstance(out, torch.Tensor) and out.shape == (M, 200)
    _assert_fp8(out, product / 0.05, aiter.dtypes.fp8)


def test_silu_mul_needs_an_even_width(fused):
    with pytest.raises(AssertionError):
        fused.fused_silu_mul_fp8_per_tensor_static_quant(_x(M, 201), torch.tensor([1.0]))


# --------------------------------------------------------------------------- (split-K) RMSNorm + per-group


def test_reduce_rms_group_quant(fused):
    import aiter

    fp8 = aiter.dtypes.fp8
    x, residual, weight = _x(M, N1), _x(M, N1, seed=2), _weight(N1)
    second, second_weight = _x(M, N2, seed=3), _weight(N2, seed=4)
    (q, scale), out1, out2, out_res1, out3 = fused.fused_reduce_rms_fp8_group_quant(
        x, weight, EPS1, second, second_weight, EPS2, res1=residual, output_unquantized_inp1=True
    )
    summed = x.float() + residual.float()
    normed = _rms_norm(summed, weight, EPS1)
    expected_scale = _group_scales(normed, 128, fp8)
    assert scale.dtype == torch.float32 and scale.shape == (M, 3) and scale.stride() == (3, 1)
    torch.testing.assert_close(scale, expected_scale, rtol=1e-6, atol=0)
    _assert_fp8(q, normed / expected_scale.repeat_interleave(128, dim=1), fp8)
    _bf16_close(out1, normed)
    _bf16_close(out2, _rms_norm(second, second_weight, EPS2))
    assert torch.equal(out_res1, summed.to(torch.bfloat16))
    assert out3 is None


def test_reduce_rms_group_quant_partial_last_group(fused):
    import aiter

    x, weight = _x(M, 320), _weight(320)
    (q, scale), out1, out2, out_res1, out3 = fused.fused_reduce_rms_fp8_group_quant(x, weight, EPS1, group_size=128)
    normed = _rms_norm(x, weight, EPS1)
    expected_scale = _group_scales(normed, 128, aiter.dtypes.fp8)
    assert scale.shape == (M, 3) and (out1, out2, out_res1, out3) == (None, None, None, None)
    torch.testing.assert_close(scale, expected_scale, rtol=1e-6, atol=0)
    _assert_fp8(q, normed / expected_scale.repeat_interleave(128, dim=1)[:, :320], aiter.dtypes.fp8)


def test_reduce_rms_group_quant_split_k(fused):
    import aiter

    partials, weight = _x(SPLIT_K, M, N1), _weight(N1)
    second, second_weight, third = _x(SPLIT_K, M, N2, seed=3), _weight(N2, seed=4), _x(SPLIT_K, M, N3, seed=5)
    out3 = torch.empty(M, N3, dtype=torch.float32)
    (q, scale), out1, out2, out_res1, returned3 = fused.fused_reduce_rms_fp8_group_quant(
        partials,
        weight,
        EPS1,
        second,
        second_weight,
        EPS2,
        third,
        dtype=torch.float32,
        output_unquantized_inp1=True,
        out3=out3,
    )
    normed = _rms_norm(partials.float().sum(0), weight, EPS1)
    expected_scale = _group_scales(normed, 128, aiter.dtypes.fp8)
    torch.testing.assert_close(scale, expected_scale, rtol=1e-6, atol=0)
    _assert_fp8(q, normed / expected_scale.repeat_interleave(128, dim=1), aiter.dtypes.fp8)
    # ``dtype`` sets the side outputs' dtype
    torch.testing.assert_close(out1, normed)
    torch.testing.assert_close(out2, _rms_norm(second.float().sum(0), second_weight, EPS2))
    assert out_res1 is None
    assert returned3 is out3
    torch.testing.assert_close(out3, third.float().sum(0))

    *_, allocated3 = fused.fused_reduce_rms_fp8_group_quant(partials, weight, EPS1, inp3=third)
    assert allocated3.dtype == torch.bfloat16 and allocated3.shape == (M, N3)
    _bf16_close(allocated3, third.float().sum(0))


def test_reduce_rms_group_quant_writes_out3_only_when_split_k(fused):
    """Without split-K partials the wrapper launches no reduction programs: out3 is left as it was."""
    out3 = torch.full((M, N3), -1.0, dtype=torch.bfloat16)
    *_, returned3 = fused.fused_reduce_rms_fp8_group_quant(
        _x(M, N1), _weight(N1), EPS1, inp3=_x(1, M, N3, seed=5), out3=out3
    )
    assert returned3 is out3 and (out3 == -1).all()


def test_reduce_rms_group_quant_rejects_a_single_split(fused):
    with pytest.raises(AssertionError):
        fused.fused_reduce_rms_fp8_group_quant(_x(1, M, N1), _weight(N1), EPS1)


@pytest.mark.parametrize("strided", [False, True])
def test_reduce_rms_group_quant_transposed_scales(fused, strided):
    x, weight = _x(SPLIT_K, M, N1), _weight(N1)
    (q, row_major), *_ = fused.fused_reduce_rms_fp8_group_quant(x, weight, EPS1, is_x_scale_strided=strided)
    assert row_major.stride() == (3, 1)  # is_x_scale_strided alone changes nothing
    (q_t, scale), *_ = fused.fused_reduce_rms_fp8_group_quant(
        x, weight, EPS1, transpose_scale=True, is_x_scale_strided=strided
    )
    assert torch.equal(q_t.view(torch.uint8), q.view(torch.uint8))
    assert scale.shape == (M, 3) and scale.dtype == torch.float32
    # the same (G, M) bytes either way; only the presentation differs
    storage = torch.as_strided(scale, (scale.numel(),), (1,))
    assert torch.equal(storage, row_major.T.flatten())
    if strided:
        assert scale.stride() == (1, M) and torch.equal(scale, row_major)
    else:
        assert scale.stride() == (3, 1) and scale.is_contiguous()
        assert torch.equal(scale.flatten(), row_major.T.flatten())


def test_flatten_group_quant_keeps_its_column_major_view(fused):
    x = _x(M, 2, 128)
    out, scale = fused.fused_flatten_fp8_group_quant(x, 128, transpose_scale=True)
    values, expected = ref.fp8_quantize_groups(x.reshape(M, 256), 128, fused.fp8_dtype)
    assert torch.equal(out.view(torch.uint8), values.view(torch.uint8))
    assert scale.stride() == (1, M) and torch.equal(scale, expected)


# --------------------------------------------------------------------------- surface


def test_package_reexports_like_aiter(install):
    install("gfx950")
    import aiter.ops.triton.fused_fp8_quant as old_path  # ATOM's import path
    import aiter.ops.triton.quant as package
    import aiter.ops.triton.quant.fused_fp8_quant as module

    assert old_path is module
    for name in NAMES:
        assert getattr(module, name).__module__ == MODULE and name in module.__all__
    assert package.fused_rms_fp8_per_tensor_static_quant is module.fused_rms_fp8_per_tensor_static_quant
    assert package.fused_reduce_rms_fp8_group_quant is module.fused_reduce_rms_fp8_group_quant
    # AITER's package does not re-export the SiLU-mul producer
    assert not hasattr(package, "fused_silu_mul_fp8_per_tensor_static_quant")


def _real_signature(name: str) -> list[tuple[str, str | None]]:
    for node in ast.parse(REAL_SOURCE.read_text()).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            arguments = node.args.args
            defaults = [None] * (len(arguments) - len(node.args.defaults)) + node.args.defaults
            return [(a.arg, None if d is None else ast.unparse(d)) for a, d in zip(arguments, defaults)]
    raise AssertionError(f"{name} is not defined in {REAL_SOURCE}")


@pytest.mark.skipif(not REAL_SOURCE.is_file(), reason="the vendored AITER tree (../shared/third_party) is absent")
@pytest.mark.parametrize("name", NAMES)
def test_signature_matches_the_real_source(install, name):
    install("gfx950")
    import aiter
    import aiter.ops.triton.quant.fused_fp8_quant as module

    namespace = {"fp8_dtype": aiter.dtypes.fp8, "torch": torch}
    parameters = list(inspect.signature(getattr(module, name)).parameters.values())
    real = _real_signature(name)
    assert [p.name for p in parameters] == [n for n, _ in real]
    for parameter, (_, default) in zip(parameters, real):
        if default is None:
            assert parameter.default is inspect.Parameter.empty, parameter.name
        else:
            assert parameter.default == eval(default, namespace), parameter.name  # noqa: S307 - vendored text
    assert ref.unread_parameters(getattr(module, name)) == set()


# --------------------------------------------------------------------------- quantguard's contracts


def _static_scale(values: torch.Tensor) -> torch.Tensor:
    """A calibrated static scale: the values' amax maps to 200, inside both FP8 flavours' range."""
    return (values.abs().max() / 200).reshape(1)


CONTRACT_CALLS = {
    "rms_static": lambda m: m.fused_rms_fp8_per_tensor_static_quant(
        _x(M, N1),
        _weight(N1),
        EPS1,
        _static_scale(_rms_norm(_x(M, N1).float() + _x(M, N1, seed=2).float(), _weight(N1), EPS1)),
        res1=_x(M, N1, seed=2),
    ),
    "silu_mul_static": lambda m: m.fused_silu_mul_fp8_per_tensor_static_quant(
        _x(M, 512), _static_scale(_silu_mul(_x(M, 512)))
    ),
    "reduce_rms_group": lambda m: m.fused_reduce_rms_fp8_group_quant(_x(SPLIT_K, M, N1), _weight(N1), EPS1),
    "reduce_rms_group_transposed": lambda m: m.fused_reduce_rms_fp8_group_quant(
        _x(M, N1), _weight(N1), EPS1, transpose_scale=True
    ),
    "reduce_rms_group_transposed_strided": lambda m: m.fused_reduce_rms_fp8_group_quant(
        _x(M, N1), _weight(N1), EPS1, transpose_scale=True, is_x_scale_strided=True
    ),
}


@pytest.mark.parametrize("name", sorted(CONTRACT_CALLS))
def test_the_simulated_producers_keep_their_contracts(install, arch, tmp_path, name):
    install(arch)
    import aiter.ops.triton.quant.fused_fp8_quant as module

    with capture_events() as events:
        quantguard.enable(log=str(tmp_path / "log.jsonl"), sample_rate=1.0, targets=f"{MODULE}.*")
        CONTRACT_CALLS[name](module)
    assert not events.named("target_mismatch") and not events.violations(), [
        e.get("message") for e in events.violations()
    ]
    assert events.named("patched")
