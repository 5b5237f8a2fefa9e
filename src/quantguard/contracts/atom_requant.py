"""Load-time weight conversions that change a weight's quantization, judged by ``requant_precision``.

Incident (DeepSeek-V4 on ATOM): ``wo_a`` is stored FP8 with one scale per
128x128 block; a load path requantized it to one per-tensor scale and the
blocks far below the tensor's amax silently lost their precision.  Every place
where ATOM converts a block- or shard-scaled weight into another quantization
is declared here, with the roles the check needs (``options["requant"]``, see
:mod:`quantguard.checks.requant`):

* ``atom.models.deepseek_v4._dequant_fp8_block_to_bf16`` (``w_fp8, scale, block=128``):
  the ``wo_a`` load path where no FP8 grouped GEMM applies (called by
  ``DeepseekV4Attention.process_weights_after_loading``); the BF16 result must
  keep every block to BF16 rounding.
* ``atom.model_ops.utils.requantize_with_max_scale`` (``weight, weight_scale,
  logical_widths, normalize_e4m3fn_to_e4m3fnuz=False``): a fused per-tensor FP8
  weight (QKV, gate/up) whose shards each had a scale, requantized *in place*
  with the largest one; returns ``(max_w_scale, weight)``.
* ``sglang.srt.layers.quantization.fp8_utils.block_quant_to_tensor_quant``
  (``x_q_block, x_s, block_size``): what ATOM's SGLang plugin calls for MLA's
  ``kv_b_proj`` off CUDA (``atom/plugin/sglang/models/deepseek_mla_forward.py``):
  a block-scaled FP8 weight requantized to one per-tensor scale; returns
  ``(x_q_tensor, scale)``.
"""

from __future__ import annotations

from quantguard.contracts.base import Contract, identity

__all__ = ["CONTRACTS"]

CONTRACTS: list[Contract] = [
    Contract(
        target="atom.models.deepseek_v4._dequant_fp8_block_to_bf16",
        kind="loader",
        backend="atom",
        checks=("requant_precision",),
        key=(identity("w_fp8"),),
        params=("w_fp8", "scale", "block"),
        options={"requant": {"weight": "w_fp8", "scale": "scale", "block": "block", "default_block": 128}},
        description="DeepSeek-V4 wo_a load path: FP8 128x128-block weight dequantized to BF16 (no block may lose "
        "more than BF16 rounding)",
    ),
    Contract(
        target="atom.model_ops.utils.requantize_with_max_scale",
        kind="loader",
        backend="atom",
        checks=("requant_precision",),
        key=(identity("weight"),),
        params=("weight", "weight_scale", "logical_widths", "normalize_e4m3fn_to_e4m3fnuz"),
        options={
            "requant": {
                "weight": "weight",
                "scale": "weight_scale",
                "widths": "logical_widths",
                "result": "scale_weight",
                "in_place": True,
            }
        },
        description="fused per-tensor FP8 weight requantized in place with its shards' max scale",
    ),
    Contract(
        target="sglang.srt.layers.quantization.fp8_utils.block_quant_to_tensor_quant",
        kind="loader",
        backend="atom",
        checks=("requant_precision",),
        key=(identity("x_q_block"),),
        params=("x_q_block", "x_s", "block_size"),
        options={"requant": {"weight": "x_q_block", "scale": "x_s", "block": "block_size", "result": "weight_scale"}},
        description="ATOM's SGLang plugin (MLA kv_b_proj off CUDA): FP8 block-scaled weight requantized to one "
        "per-tensor scale",
    ),
]
