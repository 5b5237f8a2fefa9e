"""Weight scales judged against their bytes and the checkpoint: plain tensors, then the simulated ATOM loader."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import quantguard
import quantguard.sim as sim
from quantguard.checks.weight_scales import Checkpoint, judge_weight_scale
from quantguard.contracts import aiter as aiter_contracts
from quantguard.testing import capture_events

FP8 = torch.float8_e4m3fn


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _master(n: int, k: int, seed: int = 0, outliers: bool = True) -> torch.Tensor:
    w = torch.randn(n, k, generator=_gen(seed)) * 0.02
    if outliers:
        w[:, 3] *= 40  # an outlier input channel
    return w


def _block_quant(w: torch.Tensor, fp8: torch.dtype = FP8) -> tuple[torch.Tensor, torch.Tensor]:
    """DeepSeek-style 128x128 block FP8 with fp32 scales (amax / format max), partial edge blocks included."""
    n, k = w.shape
    padded = torch.nn.functional.pad(w.abs(), (0, -k % 128, 0, -n % 128))
    scale = padded.reshape(-(-n // 128), 128, -(-k // 128), 128).amax((1, 3)) / torch.finfo(fp8).max
    expanded = scale.repeat_interleave(128, 0)[:n].repeat_interleave(128, 1)[:, :k]
    return (w / expanded).to(fp8), scale


def _channel_quant(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    scale = w.abs().amax(1, keepdim=True) / 448.0
    return (w / scale).to(FP8), scale


def _checkpoint(q: torch.Tensor, scale: torch.Tensor) -> tuple[Checkpoint, Checkpoint]:
    return Checkpoint(q.dtype, q[:256].clone()), Checkpoint(scale.dtype, scale.clone())


SHAPES = [(256, 512), (300, 257), (7, 384), (1, 128)]


@pytest.mark.parametrize("n, k", SHAPES)
@pytest.mark.parametrize("quant", [_block_quant, _channel_quant])
def test_clean_weights_are_quiet(n, k, quant):
    q, scale = quant(_master(n, k))
    assert judge_weight_scale("l.weight", q, scale) == []
    assert judge_weight_scale("l.weight", q, scale, checkpoint=_checkpoint(q, scale)) == []


def test_gfx942_normalization_keeps_the_dequantized_weight():
    """e4m3fn bytes read as e4m3fnuz are halved and the scale doubled: the same weight."""
    q, scale = _block_quant(_master(256, 512))
    as_int8 = q.view(torch.int8).clone()
    as_int8[as_int8 == -128] = 0
    normalized = as_int8.view(torch.float8_e4m3fnuz)
    assert judge_weight_scale("l.weight", normalized, scale * 2, checkpoint=_checkpoint(q, scale)) == []
    [finding] = judge_weight_scale("l.weight", normalized, scale, checkpoint=_checkpoint(q, scale))
    assert finding.details["diagnosis"] == "stale" and "0.5x the checkpoint" in finding.message


def _fault(kind: str, q: torch.Tensor, scale: torch.Tensor, n: int, k: int):
    """(weight, scale, checkpoint) as the GEMM would get them after one loading fault."""
    checkpoint = _checkpoint(q, scale)
    if kind == "dropped":
        return q, torch.ones_like(scale), None
    if kind == "swapped":  # another layer's scale of the same shape
        return q, _block_quant(_master(n, k, seed=5) * 3)[1], checkpoint
    if kind == "stale":  # weight requantized for a 2x larger scale after loading, the scale left as loaded
        return (q.float() / 2).to(q.dtype), scale, checkpoint
    if kind == "constant":
        return q, torch.full_like(scale, float(scale.mean())), None
    if kind == "inverted":
        return q, 1 / scale, None
    raise ValueError(kind)


@pytest.mark.parametrize("n, k", [(256, 512), (300, 257)])
@pytest.mark.parametrize(
    "kind, diagnosis, fragment",
    [
        ("dropped", "ones", "the weight scale was dropped"),
        ("swapped", "not_the_checkpoint_scale", "not the scale the loader was given"),
        ("stale", "stale", "stale scale from before the requantization"),
        ("constant", "constant", "broadcast placeholder"),
        ("inverted", "too_large", "larger than any plausible weight"),
    ],
)
def test_each_weight_scale_fault_is_named(n, k, kind, diagnosis, fragment):
    q, scale = _block_quant(_master(n, k))
    weight, bad_scale, checkpoint = _fault(kind, q, scale, n, k)
    [finding] = judge_weight_scale("model.layers.3.mlp.down_proj.weight", weight, bad_scale, checkpoint=checkpoint)
    assert finding.check == "weight_scale" and finding.severity == "error"
    assert finding.details["diagnosis"] == diagnosis
    assert fragment in finding.message and finding.message.startswith("model.layers.3.mlp.down_proj.weight: ")


def test_e8m0_scales_copied_as_zeros():
    q, scale = _block_quant(_master(256, 512))
    e8m0 = torch.zeros(scale.shape, dtype=torch.uint8).view(torch.float8_e8m0fnu)
    [finding] = judge_weight_scale("l.weight", q, e8m0)
    assert finding.details["diagnosis"] == "e8m0_zeros" and "copied as values, not bytes" in finding.message
    good = (torch.log2(scale).ceil() + 127).to(torch.uint8).view(torch.float8_e8m0fnu)  # a power-of-two scale
    assert judge_weight_scale("l.weight", q, good) == []


def test_mxfp4_weights():
    """Packed e2m1 with uint8 e8m0 scales (N, K/32), row-major: clean quiet, ones and zeros named."""
    w = _master(64, 256)
    groups = w.reshape(64, 8, 32)
    exponent = torch.ceil(torch.log2(groups.abs().amax(-1) / 6.0))
    scale_bytes = (exponent + 127).to(torch.uint8)
    values = groups / torch.exp2(exponent).unsqueeze(-1)
    grid = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0])
    codes = (values.abs().unsqueeze(-1) - grid).abs().argmin(-1) | ((values < 0).long() << 3)
    codes = codes.reshape(64, 256).to(torch.uint8)
    packed = codes[:, 0::2] | (codes[:, 1::2] << 4)
    assert judge_weight_scale("e.weight", packed, scale_bytes) == []
    assert judge_weight_scale("e.weight", packed, torch.full_like(scale_bytes, 127))[0].details["diagnosis"] == "ones"
    assert judge_weight_scale("e.weight", packed, torch.zeros_like(scale_bytes))[0].details["diagnosis"] == "e8m0_zeros"


def test_moe_expert_weights_are_read_per_expert():
    experts = torch.stack([_block_quant(_master(256, 128, seed=s))[0] for s in range(4)])
    scales = torch.stack([_block_quant(_master(256, 128, seed=s))[1] for s in range(4)])
    assert judge_weight_scale("experts.w13_weight", experts, scales) == []
    assert judge_weight_scale("experts.w13_weight", experts, torch.ones_like(scales))[0].details["diagnosis"] == "ones"


# -- through the simulated ATOM loader and at the first GEMM ----------------------------------------


def _layer(arch: str):
    sim.install(arch, atom=True)
    from aiter import QuantType, dtypes
    from atom.model_ops.linear import LinearBase

    return LinearBase(512, 256, quant_type=QuantType.per_1x128, params_dtype=dtypes.fp8, prefix="model.layers.0.o_proj")


def _load(layer, tensors):
    from atom.model_loader.loader import process_weights_after_loading

    for name, tensor in tensors.items():
        layer.weight_loader(getattr(layer, name), tensor)
    process_weights_after_loading(layer)


@pytest.mark.parametrize("arch", sim.ARCHS)
def test_clean_load_is_quiet(tmp_path, arch):
    q, scale = _block_quant(_master(256, 512))
    layer = _layer(arch)
    with capture_events() as events:
        quantguard.enable(log=str(tmp_path / "log.jsonl"), sample_rate=1.0)
        _load(layer, {"weight": q, "weight_scale": scale})
    assert not events.violations(), [e["message"] for e in events.violations()]


@pytest.mark.parametrize(
    "fault, diagnosis", [("swapped", "not_the_checkpoint_scale"), ("stale", "stale"), ("dropped", "ones")]
)
def test_loader_faults_after_process_weights_after_loading(tmp_path, monkeypatch, fault, diagnosis):
    """The loader passed the checkpoint through weight_loader; a later step broke the pair."""
    q, scale = _block_quant(_master(256, 512))
    layer = _layer("gfx950")
    from atom.model_ops.linear import LinearBase

    original = LinearBase.process_weights_after_loading

    def broken(self):
        original(self)
        if fault == "swapped":
            self.weight_scale.data.copy_(_block_quant(_master(256, 512, seed=9) * 2)[1])
        elif fault == "stale":  # requantized into a 4x larger scale, the scale left as loaded
            self.weight.data.copy_((self.weight.data.float() / 4).to(self.weight.dtype))
        else:
            self.weight_scale.data.fill_(1.0)

    monkeypatch.setattr(LinearBase, "process_weights_after_loading", broken)
    with capture_events() as events:
        quantguard.enable(log=str(tmp_path / "log.jsonl"), sample_rate=1.0)
        _load(layer, {"weight": q, "weight_scale": scale})
    found = events.violations(check="weight_scale")
    assert found and found[0]["details"]["diagnosis"] == diagnosis, [e["message"] for e in events.violations()]
    assert found[0]["details"]["parameter"] == "model.layers.0.o_proj.weight"


def test_first_gemm_of_a_weight_judges_its_scale(tmp_path):
    """At the GEMM: a w_scale of ones is named once per weight, even though the activation chain is clean."""
    sim.install("gfx950")
    import aiter

    for contract in aiter_contracts.CONTRACTS:
        if contract.target.endswith("gemm_op_a8w8.gemm_a8w8_blockscale"):
            quantguard.register(dataclasses.replace(contract, checks=contract.checks + ("weight_scales",)))
    q, scale = _block_quant(_master(256, 512))
    x = (torch.randn(32, 512, generator=_gen(1)) * 2).to(torch.bfloat16)
    with capture_events() as events:
        quantguard.enable(log=str(tmp_path / "log.jsonl"), sample_rate=1.0)
        xq, xs = aiter.per_group_quant_hip(x, quant_dtype=aiter.dtypes.fp8)
        aiter.gemm_a8w8_blockscale(xq, q, xs, scale)
        assert not events.violations(check="weight_scale")
        ones = torch.ones_like(scale)
        for _ in range(3):
            xq, xs = aiter.per_group_quant_hip(x, quant_dtype=aiter.dtypes.fp8)
            aiter.gemm_a8w8_blockscale(xq, q, xs, ones)
    [finding] = events.violations(check="weight_scale")
    assert finding["details"]["diagnosis"] == "ones" and "gemm_a8w8_blockscale" in finding["message"]
