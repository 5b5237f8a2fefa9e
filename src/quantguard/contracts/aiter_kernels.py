"""AITER kernels on ATOM's quantized MoE, MLA and DeepSeek paths whose numerics quantguard does not model.

These entry points consume (or move) quantized tensors, but their exact
semantics — the Triton MoE GEMMs' routing data and swizzled MX scales, the
fused BMM + RoPE + KV-cache writers, the MQA-logits kernels, the DeepSeek-V4
fused RoPE/quant cache writers — are not known well enough for a reference.
They get only the checks that hold whatever those semantics are, and each
description says so:

* ``fp8_variant`` on their fp8 operands (gfx942 kernels read e4m3fnuz bytes);
* ``nonfinite`` on what they write (results, or the buffer they fill);
* ``scale_tensors``/``scale_values``/``scale_provenance`` only for the
  blockscale split-cat GEMM, whose scale layouts are the blockscale ones;
* ``asm_policy`` for ``asm_moe`` (an ASM kernel: blocked on gfx950 CK-free);
* ``ignored_parameter`` (static) for routing's ``routed_scaling_factor``.

The adapters present operands through a :class:`GemmView` (``x``/``w``/
``out``, scheme ``"operands"``) because that is the view ``fp8_variant`` and
``nonfinite`` read; the contracts are of kind ``kernel`` so no GEMM check
that would interpret the view's scales runs on it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from quantguard.contracts.base import Contract
from quantguard.contracts.views import GemmView, TransformView

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.calls import CallRecord

__all__ = ["CONTRACTS", "operands"]

_METADATA = ("fp8_variant", "nonfinite")


def _first(result: Any) -> Any:
    while isinstance(result, (tuple, list)) and result:
        result = result[0]
    return result


def operands(x: str | None, w: str | None = None, out: str | None = None) -> Callable[[CallRecord], GemmView]:
    """An adapter exposing the named arguments as ``x``/``w`` and ``out`` (argument, else first result)."""

    def interpret(call: CallRecord) -> GemmView:
        written = call.get(out) if out else _first(call.result)
        return GemmView(
            call.target,
            call.get(x) if x else None,
            call.get(w) if w else None,
            None,
            None,
            out=written,
            scheme="operands",
        )

    interpret.__name__ = f"operands_{x}_{w}_{out}"
    return interpret


def _kernel(
    target: str,
    backend: str,
    interpret: Callable[..., Any] | None,
    params: tuple[str, ...],
    key: tuple[str, ...],
    description: str,
    checks: tuple[str, ...] = _METADATA,
    kind: str = "kernel",
    asm: bool = False,
    honored: tuple[str, ...] = (),
    alternative: str | None = None,
) -> Contract:
    return Contract(
        target=target,
        kind=kind,
        backend=backend,
        checks=checks,
        key=key,
        interpret=interpret,
        params=params,
        asm=asm,
        honored=honored,
        alternative=alternative,
        description=description,
    )


# -- blockscale split-cat GEMM: the blockscale layouts apply --------------------------------------


def _interpret_blockscale_split_cat(call: CallRecord) -> GemmView:
    """x (M, K) fp8, w preshuffled (N/16, K*16), x_scale (M, K/128) transposed by default, w_scale block."""
    import torch

    x, w = call["x"], call["w"]
    k = int(x.shape[-1])
    w_nk = w.reshape(-1, k) if w.dim() == 2 and int(w.shape[-1]) != k else w
    transposed = bool(call.get("is_x_scale_transposed", True))
    from quantguard.numerics.formats import element_format

    return GemmView(
        call.target,
        x,
        w_nk,
        call["x_scale"],
        call["w_scale"],
        out=call.get("y"),
        out_dtype=call.get("dtype"),
        scheme="block",
        element=element_format(x.dtype),
        x_scale_layout="transposed" if transposed else "logical",
        w_layout="preshuffle_16x16",
        x_scale_dtypes=(torch.float32,),
        fp8_read_as=_arch_fp8(call),
        m=int(x.reshape(-1, k).shape[0]),
        n=int(w_nk.shape[-2]),
        k=k,
        notes={"split_cat": True},
    )


def _interpret_afp4_split_cat(call: CallRecord) -> GemmView:
    """fp4 x (M, K/2), preshuffled w; MX scales in the kernel's own shuffle (shapes and dtypes only)."""
    x, w = call["x"], call["w"]
    width = int(x.shape[-1])
    w_nk = w.reshape(-1, width) if w.dim() == 2 and int(w.shape[-1]) != width else w
    from quantguard.numerics.formats import FP4_E2M1

    view = GemmView(
        call.target,
        x,
        w_nk,
        call["x_scale"],
        call["w_scale"],
        out=call.get("y"),
        out_dtype=call.get("dtype"),
        scheme="mx",
        element=FP4_E2M1,
        x_scale_layout="kernel_specific",
        w_scale_layout="kernel_specific",
        w_layout="preshuffle_16x16",
        m=int(x.reshape(-1, width).shape[0]),
        n=int(w_nk.shape[-2]),
        k=2 * width,
    )
    for name, scale, rows in (("x_scale", call["x_scale"], view.m), ("w_scale", call["w_scale"], view.n)):
        if scale is not None and scale.dim() == 2 and scale.shape[0] != rows:
            view.notes[name + "_bytes"] = "mx_swizzle"
    return view


def _arch_fp8(call: CallRecord) -> Any:
    import torch

    name = call.platform.expected_fp8()
    return getattr(torch, name) if name else None


def _interpret_moe_shuffle_weight(call: CallRecord) -> TransformView | None:
    """``moe_shuffle_weight`` is ``shuffle_weight`` unless ``is_guinterleave`` (another permutation)."""
    if call.get("is_guinterleave"):
        return None
    return TransformView("shuffle_weight", call["src"], call.result, layout=tuple(call.get("layout") or (16, 16)))


_SPLIT_CAT_CHECKS = (
    "scale_tensors",
    "fp8_variant",
    "scale_values",
    "scale_provenance",
    "nonfinite",
    "ignored_parameter",
)
_TG = "aiter.ops.triton.gemm."
_TM = "aiter.ops.triton.moe."
_MOE_GEMM_PARAMS = (
    "x",
    "w",
    "x_scales",
    "w_scales",
    "x_static_scale",
    "quant_static_scale",
    "bias",
    "routing_data",
    "gather_indx",
    "scatter_indx",
    "gammas",
    "swizzle_mx_scale",
    "out_dtype",
    "apply_swiglu",
    "alpha",
    "limit",
    "swiglu_add_residual",
)
_MOE_GEMM_KEY = ("x", "w@", "x_scales?", "w_scales@", "out_dtype=", "apply_swiglu=")
#: Scale shuffles pad into uninitialized memory (``torch.empty``): only the scales handed in are checked.
_SHUFFLE_NOTE = (
    "{}: NaN e8m0 bytes (0xFF) in the scales handed in only (the padded output is uninitialized "
    "by design; the permutation is not modelled)"
)
_CACHE_NOTE = "; scale packing inside the cache is not modelled (fp8 variant and NaN/Inf only)"

CONTRACTS: list[Contract] = [
    # -- GEMMs on ATOM's MLA / DeepSeek paths --
    _kernel(
        _TG + "fused.fused_gemm_a8w8_blockscale_split_cat.fused_gemm_a8w8_blockscale_preshuffle_split_cat",
        "triton",
        _interpret_blockscale_split_cat,
        ("x", "w", "y", "x_scale", "w_scale", "S1", "S2", "dtype", "config", "is_x_scale_transposed"),
        ("x", "w@", "x_scale+", "w_scale@", "dtype=", "is_x_scale_transposed="),
        checks=_SPLIT_CAT_CHECKS,
        honored=("is_x_scale_transposed",),
        description="MLA blockscale GEMM + split/cat on a preshuffled weight: blockscale scale shapes and "
        "layouts (transposed x_scale by default); no numerics reference (split-cat output)",
    ),
    _kernel(
        _TG + "fused.fused_gemm_afp4wfp4_split_cat.fused_gemm_afp4wfp4_preshuffle_split_cat",
        "triton",
        _interpret_afp4_split_cat,
        ("x", "w", "y", "x_scale", "w_scale", "S1", "S2", "dtype", "config"),
        ("x", "w@", "x_scale+", "w_scale@", "dtype="),
        checks=("scale_tensors", "scale_values", "nonfinite"),
        description="MLA MXFP4 GEMM + split/cat: MX scale sizes and dtypes, e8m0 bytes, NaN/Inf; no numerics reference",
    ),
    _kernel(
        _TG + "basic.gemm_a16wfp4.gemm_a16wfp4",
        "triton",
        operands("x", "w", "y"),
        ("x", "w", "w_scales", "atomic_add", "dtype", "y", "config"),
        ("x", "w@", "w_scales@", "dtype="),
        description="bf16 x MXFP4-weight GEMM (x quantized inside): NaN/Inf only",
    ),
    _kernel(
        _TG + "basic.gemm_a16wfp4.gemm_a16wfp4_preshuffle",
        "triton",
        operands("x", "w", "y"),
        ("x", "w", "w_scales", "prequant", "dtype", "y", "config", "skip_reduce"),
        ("x", "w@", "w_scales@", "prequant=", "dtype="),
        description="bf16 x preshuffled MXFP4-weight GEMM: NaN/Inf only",
    ),
    _kernel(
        _TG + "basic.gemm_a16w8_blockscale.gemm_a16w8_blockscale_preshuffle",
        "triton",
        operands("x", "w", "y"),
        ("x", "w", "w_scale", "dtype", "y", "prequant", "config", "skip_reduce"),
        ("x", "w@", "w_scale@", "dtype=", "prequant="),
        description="bf16 x preshuffled fp8 blockscale-weight GEMM: weight fp8 variant, NaN/Inf",
    ),
    _kernel(
        _TG + "batched.batched_gemm_a16wfp4.batched_gemm_a16wfp4",
        "triton",
        operands("x", "w", "y"),
        ("x", "w", "w_scales", "dtype", "y", "config", "transpose_bm", "prequant", "y_scale"),
        ("x", "w@", "w_scales@", "dtype=", "transpose_bm=", "prequant="),
        description="MLA batched bf16 x MXFP4-weight GEMM: NaN/Inf only",
    ),
    _kernel(
        _TG + "batched.batched_gemm_bf16.batched_gemm_bf16",
        "triton",
        operands("XQ", "WQ", "YQ"),
        ("XQ", "WQ", "bias", "dtype", "splitK", "YQ", "config", "kernel_type", "backend"),
        ("XQ", "WQ@", "bias?", "dtype="),
        description="batched bf16 GEMM (DeepSeek-V4): NaN/Inf only",
    ),
    _kernel(
        "aiter.ops.batched_gemm_op_a8w8.batched_gemm_a8w8_mxscale",
        "ck",
        operands("x", "wo_a"),
        ("x", "wo_a", "x_scale", "w_scale", "dtype"),
        ("x", "wo_a@", "x_scale", "w_scale@", "dtype="),
        description="DeepSeek-V4 batched fp8 GEMM with MX scales: fp8 variant, NaN/Inf (scale layout not modelled)",
    ),
    # -- MoE --
    _kernel(
        "aiter.fused_moe_bf16_asm.asm_moe",
        "asm",
        operands("hidden_states", "w1"),
        (
            "hidden_states",
            "w1",
            "w2",
            "topk_weight",
            "topk_ids",
            "fc1_scale",
            "fc2_scale",
            "fc1_smooth_scale",
            "fc2_smooth_scale",
            "a16",
            "per_tensor_quant_scale",
            "block_shape",
            "expert_mask",
            "activation",
            "local_expert_hash",
        ),
        ("hidden_states", "w1@", "w2@", "topk_weight", "topk_ids", "fc1_scale?", "a16=", "block_shape="),
        checks=("asm_policy",) + _METADATA,
        kind="moe",
        asm=True,
        alternative="aiter.fused_moe.fused_moe",
        description="ASM fused MoE: blocked on gfx950 CK-free; fp8 variant, NaN/Inf (no MoE reference: "
        "smooth-quant and a16 variants not modelled)",
    ),
    _kernel(
        _TM + "moe_op_gemm_a4w4.moe_gemm_a4w4",
        "triton",
        operands("x", "w"),
        (
            "x",
            "w",
            "x_scales",
            "w_scales",
            "bias",
            "routing_data",
            "gather_indx",
            "scatter_indx",
            "gammas",
            "swizzle_mx_scale",
            "preshuffle_weights",
            "out_dtype",
            "apply_swiglu",
            "alpha",
            "limit",
            "swiglu_add_residual",
            "unpadded_N",
            "unpadded_K",
            "backend",
        ),
        _MOE_GEMM_KEY,
        description="Triton MoE MXFP4 x MXFP4 GEMM (routed): NaN/Inf only",
    ),
    _kernel(
        _TM + "moe_op_gemm_a8w4.moe_gemm_a8w4",
        "triton",
        operands("x", "w"),
        _MOE_GEMM_PARAMS + ("preshuffled", "unpadded_N", "unpadded_K", "out_mx_quant", "residual", "backend"),
        _MOE_GEMM_KEY,
        description="Triton MoE fp8 x MXFP4 GEMM (routed): fp8 variant of x, NaN/Inf",
    ),
    _kernel(
        _TM + "moe_op_gemm_a16w4.moe_gemm_a16w4",
        "triton",
        operands("x", "w"),
        _MOE_GEMM_PARAMS + ("unpadded_N", "unpadded_K", "backend"),
        _MOE_GEMM_KEY,
        description="Triton MoE bf16 x MXFP4 GEMM (routed): NaN/Inf only",
    ),
    _kernel(
        _TM + "moe_routing.routing.routing",
        "triton",
        None,
        (
            "logits",
            "n_expts_act",
            "score_mode",
            "sm_first",
            "bias",
            "renorm",
            "routed_scaling_factor",
            "use_grouped_topk",
            "num_expert_group",
            "topk_group",
            "expert_group",
        ),
        ("logits", "n_expts_act=", "score_mode=", "renorm=", "routed_scaling_factor=", "use_grouped_topk="),
        checks=("ignored_parameter",),
        kind="routing",
        honored=("routed_scaling_factor", "renorm"),
        description="Triton MoE routing: static check that routed_scaling_factor/renorm are read (its "
        "routing-data result is not a top-k weight tensor the routing check reads)",
    ),
    Contract(
        target="aiter.ops.shuffle.moe_shuffle_weight",
        kind="transform",
        backend="torch",
        checks=("noop_transform", "provenance_record"),
        key=("src", "is_guinterleave=", "gate_up=", "layout="),
        interpret=_interpret_moe_shuffle_weight,
        params=("src", "experts_cnt", "is_guinterleave", "gate_up", "layout"),
        description="MoE weight preshuffle (shuffle_weight per expert): permutation and provenance checked "
        "unless is_guinterleave (not modelled)",
    ),
    _kernel(
        "aiter.ops.shuffle.moe_shuffle_scale",
        "torch",
        operands(None, None, "src"),
        ("src", "experts_cnt", "is_guinterleave", "gate_up"),
        ("src", "experts_cnt=", "is_guinterleave=", "gate_up="),
        checks=("nonfinite",),
        kind="transform",
        description=_SHUFFLE_NOTE.format("MoE weight-scale shuffle"),
    ),
    _kernel(
        "aiter.ops.triton.utils.shuffle.shuffle_scale_moe",
        "torch",
        operands(None, None, "data"),
        ("data", "arch", "preshuffle_factor", "scale_kwidth", "return_layout"),
        ("data", "preshuffle_factor=", "scale_kwidth=", "return_layout="),
        checks=("nonfinite",),
        kind="transform",
        description=_SHUFFLE_NOTE.format("Triton MoE scale shuffle"),
    ),
    # -- weight-loading helpers on scales --
    _kernel(
        "aiter.utility.fp4_utils.e8m0_to_f32",
        "torch",
        None,
        ("scale_e8m0_biased",),
        ("scale_e8m0_biased",),
        checks=("nonfinite",),
        kind="transform",
        description="e8m0 bytes to float32 multipliers: a NaN byte (0xFF) in weight scales becomes NaN",
    ),
    _kernel(
        "aiter.utility.fp4_utils.e8m0_shuffle",
        "torch",
        operands(None, None, "scale"),
        ("scale",),
        ("scale",),
        checks=("nonfinite",),
        kind="transform",
        description=_SHUFFLE_NOTE.format("MX scale preshuffle"),
    ),
    # -- MLA / DeepSeek attention-side quantized kernels --
    _kernel(
        "aiter.ops.triton.fusions.fused_bmm_rope_kv_cache.fused_fp4_bmm_rope_cat_and_cache_mla",
        "triton",
        operands("q_nope", "w_k"),
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
        ("q_nope", "w_k@", "w_k_scale@", "kv_cache", "transpose_bm=", "prequant=", "q_out_dtype="),
        description="MLA MXFP4 BMM + RoPE + KV-cache write: NaN/Inf in the result only",
    ),
    _kernel(
        "aiter.ops.triton.fusions.fused_bmm_rope_kv_cache.fused_fp8_bmm_rope_cat_and_cache_mla",
        "triton",
        operands("q_nope", "w_k"),
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
        ("q_nope", "w_k@", "w_k_scale@", "kv_cache", "group_size=", "transpose_bm=", "q_out_dtype="),
        description="MLA fp8 BMM + RoPE + KV-cache write: weight fp8 variant, NaN/Inf in the result",
    ),
    _kernel(
        "aiter.ops.triton.attention.fp8_mqa_logits.fp8_mqa_logits",
        "triton",
        operands("Q", "KV"),
        ("Q", "KV", "kv_scales", "weights", "cu_starts", "cu_ends", "clean_logits"),
        ("Q", "KV", "kv_scales", "weights", "clean_logits="),
        checks=("fp8_variant",),
        description="DeepSeek indexer fp8 MQA logits: fp8 variant of Q/KV only (masked logits are -inf "
        "by design, so NaN/Inf are not checked)",
    ),
    _kernel(
        "aiter.ops.triton.attention.pa_mqa_logits.deepgemm_fp8_paged_mqa_logits",
        "triton",
        operands("q_fp8", "kv_cache", "out_logits"),
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
        ("q_fp8", "kv_cache", "weights", "out_logits", "Preshuffle=", "KVBlockSize="),
        checks=("fp8_variant",),
        description="DeepSeek indexer paged fp8 MQA logits: fp8 variant of q only (the kv cache packs "
        "fp8 values with their scales)",
    ),
    _kernel(
        "aiter.ops.inverse_rope_group_quant.inverse_rope_group_quant",
        "hip",
        operands("x_fp8", None, "x_fp8"),
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
        ("o", "num_groups=", "quant_group_size=", "scale_layout=", "x_fp8?", "x_scale?"),
        description="DeepSeek-V4 inverse RoPE + per-group fp8 quant: fp8 variant and NaN/Inf of the "
        "preallocated output (scale_layout variants not modelled)",
    ),
    _kernel(
        "aiter.ops.fused_qk_norm_rope_cache_quant.fused_qk_norm_rope_group_quant",
        "hip",
        operands("q"),
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
        ("q", "kv", "q_out_dtype=", "quant_group_size=", "scale_dtype="),
        description="DeepSeek-V4 q/k norm + RoPE + group quant into caches: NaN/Inf in the q result only" + _CACHE_NOTE,
    ),
    _kernel(
        "aiter.ops.cache.cp_gather_indexer_k_quant_cache",
        "hip",
        operands("dst_k", None, "dst_k"),
        ("kv_cache", "dst_k", "dst_scale", "block_table", "cu_seq_lens", "preshuffle"),
        ("kv_cache", "dst_k", "dst_scale", "preshuffle="),
        description="gathers the indexer's fp8 K and scales from the cache: fp8 variant and NaN/Inf of dst_k"
        + _CACHE_NOTE,
    ),
]
