"""AITER's MLA and DeepSeek attention-side quantized kernels, as metadata-only contracts.

The fused BMM + RoPE + KV-cache writers, the indexer's MQA-logits kernels and
the DeepSeek-V4 fused RoPE/quant cache writers move quantized tensors whose
exact semantics quantguard does not model; like the kernels of
:mod:`.kernel_table` they get only the checks that hold whatever those
semantics are (fp8 variant, NaN/Inf), and each description says so.
"""

from __future__ import annotations

from quantguard.contracts.aiter import kernel_adapters as kernels
from quantguard.contracts.aiter.kernel_table import metadata_contract
from quantguard.contracts.base import Contract, identity, optional, tensor, value

__all__ = ["CONTRACTS"]

_CACHE_NOTE = "; scale packing inside the cache is not modelled (fp8 variant and NaN/Inf only)"

CONTRACTS: list[Contract] = [
    metadata_contract(
        "aiter.ops.triton.fusions.fused_bmm_rope_kv_cache.fused_fp4_bmm_rope_cat_and_cache_mla",
        "triton",
        kernels.operands("q_nope", "w_k"),
        (
            "q_nope",
            "w_k",
            "w_k_scale",
            "q_pe",
            "k_nope",
            "k_rope",
            "kv_cache",
            "slot_mapping",
            "positions",
            "cos",
            "sin",
            "y",
            "transpose_bm",
            "prequant",
            "y_scale",
            "config",
            "k_scale",
            "is_neox",
            "q_out_dtype",
            "num_decode_toks_for_zeros",
        ),
        (
            tensor("q_nope"),
            identity("w_k"),
            identity("w_k_scale"),
            tensor("kv_cache"),
            value("transpose_bm"),
            value("prequant"),
            value("q_out_dtype"),
        ),
        description="MLA MXFP4 BMM + RoPE + KV-cache write: NaN/Inf in the result only",
    ),
    metadata_contract(
        "aiter.ops.triton.fusions.fused_bmm_rope_kv_cache.fused_fp8_bmm_rope_cat_and_cache_mla",
        "triton",
        kernels.operands("q_nope", "w_k"),
        (
            "q_nope",
            "w_k",
            "w_k_scale",
            "q_pe",
            "k_nope",
            "k_rope",
            "kv_cache",
            "slot_mapping",
            "positions",
            "cos",
            "sin",
            "group_size",
            "transpose_bm",
            "config",
            "k_scale",
            "is_neox",
            "q_out_dtype",
            "num_decode_toks_for_zeros",
        ),
        (
            tensor("q_nope"),
            identity("w_k"),
            identity("w_k_scale"),
            tensor("kv_cache"),
            value("group_size"),
            value("transpose_bm"),
            value("q_out_dtype"),
        ),
        description="MLA fp8 BMM + RoPE + KV-cache write: weight fp8 variant, NaN/Inf in the result",
    ),
    metadata_contract(
        "aiter.ops.triton.attention.fp8_mqa_logits.fp8_mqa_logits",
        "triton",
        kernels.operands("Q", "KV"),
        ("Q", "KV", "kv_scales", "weights", "cu_starts", "cu_ends", "clean_logits"),
        (tensor("Q"), tensor("KV"), tensor("kv_scales"), tensor("weights"), value("clean_logits")),
        checks=("fp8_variant",),
        description="DeepSeek indexer fp8 MQA logits: fp8 variant of Q/KV only (masked logits are -inf "
        "by design, so NaN/Inf are not checked)",
    ),
    metadata_contract(
        "aiter.ops.triton.attention.pa_mqa_logits.deepgemm_fp8_paged_mqa_logits",
        "triton",
        kernels.operands("q_fp8", "kv_cache", "out_logits"),
        (
            "q_fp8",
            "kv_cache",
            "weights",
            "out_logits",
            "context_lens",
            "kv_indices",
            "max_model_len",
            "Preshuffle",
            "KVBlockSize",
            "ChunkK",
            "TotalCuCount",
            "WavePerEU",
            "VarCtxSchedule",
        ),
        (
            tensor("q_fp8"),
            tensor("kv_cache"),
            tensor("weights"),
            tensor("out_logits"),
            value("Preshuffle"),
            value("KVBlockSize"),
        ),
        checks=("fp8_variant",),
        description="DeepSeek indexer paged fp8 MQA logits: fp8 variant of q only (the kv cache packs "
        "fp8 values with their scales)",
    ),
    metadata_contract(
        "aiter.ops.inverse_rope_group_quant.inverse_rope_group_quant",
        "hip",
        kernels.operands("x_fp8", None, "x_fp8"),
        (
            "o",
            "positions",
            "cos_cache",
            "sin_cache",
            "num_groups",
            "quant_group_size",
            "scale_layout",
            "x_fp8",
            "x_scale",
        ),
        (
            tensor("o"),
            value("num_groups"),
            value("quant_group_size"),
            value("scale_layout"),
            optional("x_fp8"),
            optional("x_scale"),
        ),
        description="DeepSeek-V4 inverse RoPE + per-group fp8 quant: fp8 variant and NaN/Inf of the "
        "preallocated output (scale_layout variants not modelled)",
    ),
    metadata_contract(
        "aiter.ops.fused_qk_norm_rope_cache_quant.fused_qk_norm_rope_group_quant",
        "hip",
        kernels.operands("q"),
        (
            "q",
            "kv",
            "k_weight",
            "positions",
            "cos_cache",
            "sin_cache",
            "eps",
            "is_neox",
            "q_out_dtype",
            "q_nope_scale_buff",
            "q_rope_buff",
            "k_nope_scale_buff",
            "k_rope_buff",
            "q_weight",
            "quant_group_size",
            "scale_dtype",
            "swa_nope_scale_buff",
            "swa_rope_buff",
            "swa_block_tables",
            "swa_dest_row",
            "swa_block_size",
            "batch_id_per_token",
        ),
        (tensor("q"), tensor("kv"), value("q_out_dtype"), value("quant_group_size"), value("scale_dtype")),
        description="DeepSeek-V4 q/k norm + RoPE + group quant into caches: NaN/Inf in the q result only" + _CACHE_NOTE,
    ),
    metadata_contract(
        "aiter.ops.cache.cp_gather_indexer_k_quant_cache",
        "hip",
        kernels.operands("dst_k", None, "dst_k"),
        ("kv_cache", "dst_k", "dst_scale", "block_table", "cu_seq_lens", "preshuffle"),
        (tensor("kv_cache"), tensor("dst_k"), tensor("dst_scale"), value("preshuffle")),
        description="gathers the indexer's fp8 K and scales from the cache: fp8 variant and NaN/Inf of dst_k"
        + _CACHE_NOTE,
    ),
]
