"""ATOM's real load-time requantizations are bound by ``requant_precision`` and judged per block.

``atom.models.deepseek_v4._dequant_fp8_block_to_bf16`` (DeepSeek-V4's ``wo_a`` load path) and
``atom.model_ops.utils.requantize_with_max_scale`` (fused per-tensor weights) exist in ATOM
ffdf3bb5; the real functions run on the CPU (plain torch), so the verdicts are the real ones.
"""

from __future__ import annotations

import pytest
from real_harness import ARCHS, Worker, brief

_WO_A = "atom.models.deepseek_v4._dequant_fp8_block_to_bf16"
_MAX_SCALE = "atom.model_ops.utils.requantize_with_max_scale"


@pytest.mark.parametrize("gfx", ARCHS)
def test_real_requantizations_are_bound_and_quiet_when_clean(real: Worker, gfx: str) -> None:
    real.wait_ready()
    for target in (_WO_A, _MAX_SCALE):
        assert real.ready["statuses"][target]["status"] in ("patched", "alias"), real.ready["statuses"][target]
    reply = real.run("atom.requantizations")
    assert not reply.problems(), brief(reply.problems())
    assert reply.value["calls"].get(_WO_A) == 1 and reply.value["calls"].get(_MAX_SCALE) == 1, reply.value
    assert reply.value["dense_dtype"] == "torch.bfloat16"
    assert not reply.violations(), brief(reply.violations())


@pytest.mark.parametrize("gfx", ARCHS)
def test_real_max_scale_requantization_crushing_a_shard_is_caught(real: Worker, gfx: str) -> None:
    """The real wo_a conversion keeps every block (it dequantizes per block); the max-scale requantization
    of a shard 2^16 below the other does not."""
    reply = real.run("atom.requantizations", low=2.0**-16)
    assert not reply.problems(), brief(reply.problems())
    assert not reply.violations(target=_WO_A), brief(reply.violations())
    [violation] = reply.violations(check="requant_precision", target=_MAX_SCALE)
    assert violation["details"]["worst_block"][0] == 1, violation["details"]
