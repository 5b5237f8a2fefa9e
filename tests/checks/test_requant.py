"""``requant_precision``: a converted weight judged block by block against its per-block original."""

from __future__ import annotations

import math

import pytest
import torch

import quantguard
import quantguard.sim as sim
from quantguard.checks.requant import block_errors, judge_blocks, unit_roundoff
from quantguard.testing import capture_events

N, K = 512, 512
LOW = (slice(128, 256), slice(256, 384))  # block (1, 2)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _expand(scale: torch.Tensor, block: int = 128) -> torch.Tensor:
    return scale.repeat_interleave(block, 0).repeat_interleave(block, 1)


def _wo_a(low: float = 2.0**-12) -> tuple[torch.Tensor, torch.Tensor]:
    """A wo_a-like FP8 weight with UE8M0 128x128 block scales; block (1, 2) is ``low`` times smaller."""
    w = torch.randn(N, K, generator=_gen(0)) * 0.05
    w[LOW] *= low
    scale = torch.exp2(torch.ceil(torch.log2(w.view(N // 128, 128, K // 128, 128).abs().amax((1, 3)) / 448)))
    return (w / _expand(scale)).to(torch.float8_e4m3fn), scale


def _enable(tmp_path) -> None:
    quantguard.enable(log=str(tmp_path / "log.jsonl"), sample_rate=1.0)


@pytest.mark.parametrize("faulty", [False, True], ids=["clean", "per_tensor_requant"])
def test_wo_a_requantized_to_one_scale_is_caught(tmp_path, faulty):
    sim.install(faults=["wo_a_per_tensor_requant"] if faulty else (), atom=True)
    import atom.models.deepseek_v4 as v4

    q, scale = _wo_a()
    with capture_events() as events:
        _enable(tmp_path)
        converted = v4._dequant_fp8_block_to_bf16(q, scale, block=128)
        quantguard.disable()
    assert converted.dtype == torch.bfloat16
    violations = events.violations(check="requant_precision")
    if not faulty:
        assert not events.violations()
        return
    [violation] = violations
    details = violation["details"]
    assert violation["target"] == "atom.models.deepseek_v4._dequant_fp8_block_to_bf16"
    assert details["worst_block"] == [1, 2] and details["worst_block_amax_ratio"] < 1e-3
    assert details["worst_block_rel_err"] > details["bound"] == 2.0**-8 + 2.0**-23  # bf16 + one fp32 rounding
    assert details["cosine"] > 0.999  # the global cosine does not see it
    assert "worst block (1, 2)" in violation["message"] and "unit roundoff of bfloat16" in violation["message"]


def test_requantize_with_max_scale_is_judged_against_the_shards_before_the_in_place_rewrite(tmp_path):
    sim.install(atom=True)
    import atom.model_ops.utils as utils

    weights = [
        (torch.randn(384, 256, generator=_gen(1)) * 100).clamp(-448, 448).to(torch.float8_e4m3fn) for _ in range(3)
    ]
    # a fused checkpoint: one scale loaded, the other shards keep ATOM's placeholder (nothing to requantize)
    fused = torch.tensor([1e-3, torch.finfo(torch.float8_e4m3fn).min, torch.finfo(torch.float8_e4m3fn).min])
    similar = torch.tensor([1e-3, 3e-3, 2e-3])
    crushed = torch.tensor([1e-3, 3e-3, 1e-3 * 2.0**-16])  # the third shard far below the max scale
    with capture_events() as events:
        _enable(tmp_path)
        utils.requantize_with_max_scale(weights[0], similar, [128, 128, 128])
        utils.requantize_with_max_scale(weights[1], crushed, [128, 128, 128])
        utils.requantize_with_max_scale(weights[2], fused, [128, 128, 128])
        quantguard.disable()
    [violation] = events.violations(check="requant_precision")
    details = violation["details"]
    assert details["worst_block"][0] == 2 and details["blocks_over_bound"] == 2  # the third shard's two blocks
    assert details["bound"] == 2.0**-4 + 2.0**-23  # e4m3's unit roundoff
    assert details["source_scale"] == [3]


def test_sglang_block_to_tensor_requant_is_bound_and_judged(tmp_path, make_module):
    """ATOM's SGLang plugin converts MLA's kv_b_proj with sglang's block_quant_to_tensor_quant (off CUDA)."""
    make_module(
        "sglang.srt.layers.quantization.fp8_utils",
        """
        import torch

        def block_quant_to_tensor_quant(x_q_block, x_s, block_size):
            bn, bk = block_size
            grid = x_s.repeat_interleave(bn, 0)[: x_q_block.shape[0]].repeat_interleave(bk, 1)[:, : x_q_block.shape[1]]
            x = x_q_block.to(torch.float32) * grid
            finfo = torch.finfo(x_q_block.dtype)
            scale = finfo.max / x.abs().amax().clamp(min=1e-12)
            return (x * scale).clamp(finfo.min, finfo.max).to(x_q_block.dtype), scale.float().reciprocal()
        """,
        load=False,
    )
    q, scale = _wo_a(low=2.0**-16)
    with capture_events() as events:
        _enable(tmp_path)
        from sglang.srt.layers.quantization import fp8_utils

        fp8_utils.block_quant_to_tensor_quant(q, scale, [128, 128])
        quantguard.disable()
    [violation] = events.violations(check="requant_precision")
    assert violation["target"] == "sglang.srt.layers.quantization.fp8_utils.block_quant_to_tensor_quant"
    assert violation["details"]["worst_block"] == [1, 2] and violation["details"]["blocks_over_bound"] == 1


def test_unit_roundoff_follows_the_mantissa():
    assert unit_roundoff(torch.float8_e4m3fn) == unit_roundoff(torch.float8_e4m3fnuz) == 2.0**-4
    assert unit_roundoff(torch.bfloat16) == 2.0**-8
    assert unit_roundoff(torch.float16) == 2.0**-11
    assert unit_roundoff(torch.int32) is None


def test_per_row_and_per_shard_sources_are_read_in_their_layout():
    q = (torch.randn(256, 256, generator=_gen(2)) * 50).to(torch.float8_e4m3fn)
    rows = torch.rand(256, 1, generator=_gen(3)) + 0.5
    exact = (q.double() * rows.double()).to(torch.float32)
    bound = 2.0**-24
    stats, block = block_errors(q, rows, exact, None, bound)
    result = judge_blocks(stats.tolist(), bound, 2)
    assert block == (128, 128) and result["blocks_over_bound"] == 0 and result["rel_err"] < 1e-7
    shards = torch.tensor([0.5, 2.0])
    wrong = q.to(torch.float32) * 0.5  # the second shard read with the first shard's scale
    stats, _ = block_errors(q, shards, wrong, None, bound, widths=[128, 128])
    result = judge_blocks(stats.tolist(), bound, 2)
    assert result["blocks_over_bound"] == 2 and result["worst_block"][0] == 1
    assert math.isclose(result["worst_block_rel_err"], 0.75)
