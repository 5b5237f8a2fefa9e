"""AITER kernels on ATOM's quantized MoE, MLA and DeepSeek paths whose numerics quantguard does not model.

These entry points consume (or move) quantized tensors, but their exact
semantics — the Triton MoE GEMMs' routing data and swizzled MX scales, the
split-cat GEMMs' outputs, the scale shuffles' permutations (and, in
:mod:`.attention_table`, the attention-side kernels') — are not known well
enough for a reference.  They get only the checks that hold whatever those
semantics are, and each description says so:

* ``fp8_variant`` on their fp8 operands (gfx942 kernels read e4m3fnuz bytes);
* ``nonfinite`` on what they write (results, or the buffer they fill);
* ``scale_tensors``/``scale_values``/``scale_provenance`` only for the
  blockscale split-cat GEMM, whose scale layouts are the blockscale ones;
* ``asm_policy`` for ``asm_moe`` (an ASM kernel: blocked on gfx950 CK-free);
* ``ignored_parameter`` (static) for routing's ``routed_scaling_factor``.

The adapters (:mod:`.kernel_adapters`) present operands through a
:class:`GemmView` (``x``/``w``/``out``, scheme ``"operands"``) because that is
the view ``fp8_variant`` and ``nonfinite`` read; the contracts are of kind
``kernel`` so no GEMM check that would interpret the view's scales runs on it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from quantguard.contracts.aiter import kernel_adapters as kernels
from quantguard.contracts.aiter import transform_adapters as transform
from quantguard.contracts.base import Contract, KeyParam, identity, optional, strided, tensor, value

__all__ = ["CONTRACTS", "METADATA_CHECKS", "metadata_contract"]

#: What holds whatever a kernel's semantics: the fp8 variant of its operands, NaN/Inf in what it writes.
METADATA_CHECKS = ("fp8_variant", "nonfinite")


def metadata_contract(
    target: str,
    backend: str,
    interpret: Callable[..., Any] | None,
    params: tuple[str, ...],
    key: tuple[KeyParam, ...],
    description: str,
    checks: tuple[str, ...] = METADATA_CHECKS,
    kind: str = "kernel",
    asm: bool = False,
    honored: tuple[str, ...] = (),
    alternative: str | None = None,
) -> Contract:
    """A contract of a kernel whose numerics are not modelled (metadata checks by default)."""
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
_MOE_GEMM_KEY = (
    tensor("x"),
    identity("w"),
    optional("x_scales"),
    identity("w_scales"),
    value("out_dtype"),
    value("apply_swiglu"),
)
#: Scale shuffles pad into uninitialized memory (``torch.empty``): only the scales handed in are checked.
_SHUFFLE_NOTE = (
    "{}: NaN e8m0 bytes (0xFF) in the scales handed in only (the padded output is uninitialized "
    "by design; the permutation is not modelled)"
)

CONTRACTS: list[Contract] = [
    # -- GEMMs on ATOM's MLA / DeepSeek paths --
    metadata_contract(
        _TG + "fused.fused_gemm_a8w8_blockscale_split_cat.fused_gemm_a8w8_blockscale_preshuffle_split_cat",
        "triton",
        kernels.blockscale_split_cat,
        ("x", "w", "y", "x_scale", "w_scale", "S1", "S2", "dtype", "config", "is_x_scale_transposed"),
        (
            tensor("x"),
            identity("w"),
            strided("x_scale"),
            identity("w_scale"),
            value("dtype"),
            value("is_x_scale_transposed"),
        ),
        checks=_SPLIT_CAT_CHECKS,
        honored=("is_x_scale_transposed",),
        description="MLA blockscale GEMM + split/cat on a preshuffled weight: blockscale scale shapes and "
        "layouts (transposed x_scale by default); no numerics reference (split-cat output)",
    ),
    metadata_contract(
        _TG + "fused.fused_gemm_afp4wfp4_split_cat.fused_gemm_afp4wfp4_preshuffle_split_cat",
        "triton",
        kernels.afp4_split_cat,
        ("x", "w", "y", "x_scale", "w_scale", "S1", "S2", "dtype", "config"),
        (tensor("x"), identity("w"), strided("x_scale"), identity("w_scale"), value("dtype")),
        checks=("scale_tensors", "scale_values", "nonfinite"),
        description="MLA MXFP4 GEMM + split/cat: MX scale sizes and dtypes, e8m0 bytes, NaN/Inf; no numerics reference",
    ),
    metadata_contract(
        _TG + "basic.gemm_a16wfp4.gemm_a16wfp4",
        "triton",
        kernels.operands("x", "w", "y"),
        ("x", "w", "w_scales", "atomic_add", "dtype", "y", "config"),
        (tensor("x"), identity("w"), identity("w_scales"), value("dtype")),
        description="bf16 x MXFP4-weight GEMM (x quantized inside): NaN/Inf only",
    ),
    metadata_contract(
        _TG + "basic.gemm_a16wfp4.gemm_a16wfp4_preshuffle",
        "triton",
        kernels.operands("x", "w", "y"),
        ("x", "w", "w_scales", "prequant", "dtype", "y", "config", "skip_reduce"),
        (tensor("x"), identity("w"), identity("w_scales"), value("prequant"), value("dtype")),
        description="bf16 x preshuffled MXFP4-weight GEMM: NaN/Inf only",
    ),
    metadata_contract(
        _TG + "basic.gemm_a16w8_blockscale.gemm_a16w8_blockscale_preshuffle",
        "triton",
        kernels.operands("x", "w", "y"),
        ("x", "w", "w_scale", "dtype", "y", "prequant", "config", "skip_reduce"),
        (tensor("x"), identity("w"), identity("w_scale"), value("dtype"), value("prequant")),
        description="bf16 x preshuffled fp8 blockscale-weight GEMM: weight fp8 variant, NaN/Inf",
    ),
    metadata_contract(
        _TG + "batched.batched_gemm_a16wfp4.batched_gemm_a16wfp4",
        "triton",
        kernels.operands("x", "w", "y"),
        ("x", "w", "w_scales", "dtype", "y", "config", "transpose_bm", "prequant", "y_scale"),
        (tensor("x"), identity("w"), identity("w_scales"), value("dtype"), value("transpose_bm"), value("prequant")),
        description="MLA batched bf16 x MXFP4-weight GEMM: NaN/Inf only",
    ),
    metadata_contract(
        _TG + "batched.batched_gemm_bf16.batched_gemm_bf16",
        "triton",
        kernels.operands("XQ", "WQ", "YQ"),
        ("XQ", "WQ", "bias", "dtype", "splitK", "YQ", "config", "kernel_type", "backend"),
        (tensor("XQ"), identity("WQ"), optional("bias"), value("dtype")),
        description="batched bf16 GEMM (DeepSeek-V4): NaN/Inf only",
    ),
    metadata_contract(
        "aiter.ops.batched_gemm_op_a8w8.batched_gemm_a8w8_mxscale",
        "ck",
        kernels.operands("x", "wo_a"),
        ("x", "wo_a", "x_scale", "w_scale", "dtype"),
        (tensor("x"), identity("wo_a"), tensor("x_scale"), identity("w_scale"), value("dtype")),
        description="DeepSeek-V4 batched fp8 GEMM with MX scales: fp8 variant, NaN/Inf (scale layout not modelled)",
    ),
    # -- MoE --
    metadata_contract(
        "aiter.fused_moe_bf16_asm.asm_moe",
        "asm",
        kernels.operands("hidden_states", "w1"),
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
        (
            tensor("hidden_states"),
            identity("w1"),
            identity("w2"),
            tensor("topk_weight"),
            tensor("topk_ids"),
            optional("fc1_scale"),
            value("a16"),
            value("block_shape"),
        ),
        checks=("asm_policy",) + METADATA_CHECKS,
        kind="moe",
        asm=True,
        alternative="aiter.fused_moe.fused_moe",
        description="ASM fused MoE: blocked on gfx950 CK-free; fp8 variant, NaN/Inf (no MoE reference: "
        "smooth-quant and a16 variants not modelled)",
    ),
    metadata_contract(
        _TM + "moe_op_gemm_a4w4.moe_gemm_a4w4",
        "triton",
        kernels.operands("x", "w"),
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
    metadata_contract(
        _TM + "moe_op_gemm_a8w4.moe_gemm_a8w4",
        "triton",
        kernels.operands("x", "w"),
        _MOE_GEMM_PARAMS + ("preshuffled", "unpadded_N", "unpadded_K", "out_mx_quant", "residual", "backend"),
        _MOE_GEMM_KEY,
        description="Triton MoE fp8 x MXFP4 GEMM (routed): fp8 variant of x, NaN/Inf",
    ),
    metadata_contract(
        _TM + "moe_op_gemm_a16w4.moe_gemm_a16w4",
        "triton",
        kernels.operands("x", "w"),
        _MOE_GEMM_PARAMS + ("unpadded_N", "unpadded_K", "backend"),
        _MOE_GEMM_KEY,
        description="Triton MoE bf16 x MXFP4 GEMM (routed): NaN/Inf only",
    ),
    metadata_contract(
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
        (
            tensor("logits"),
            value("n_expts_act"),
            value("score_mode"),
            value("renorm"),
            value("routed_scaling_factor"),
            value("use_grouped_topk"),
        ),
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
        key=(tensor("src"), value("is_guinterleave"), value("gate_up"), value("layout")),
        interpret=transform.moe_shuffle_weight,
        params=("src", "experts_cnt", "is_guinterleave", "gate_up", "layout"),
        description="MoE weight preshuffle (shuffle_weight per expert): permutation and provenance checked "
        "unless is_guinterleave (not modelled)",
    ),
    metadata_contract(
        "aiter.ops.shuffle.moe_shuffle_scale",
        "torch",
        kernels.operands(None, None, "src"),
        ("src", "experts_cnt", "is_guinterleave", "gate_up"),
        (tensor("src"), value("experts_cnt"), value("is_guinterleave"), value("gate_up")),
        checks=("nonfinite",),
        kind="transform",
        description=_SHUFFLE_NOTE.format("MoE weight-scale shuffle"),
    ),
    metadata_contract(
        "aiter.ops.triton.utils.shuffle.shuffle_scale_moe",
        "torch",
        kernels.operands(None, None, "data"),
        ("data", "arch", "preshuffle_factor", "scale_kwidth", "return_layout"),
        (tensor("data"), value("preshuffle_factor"), value("scale_kwidth"), value("return_layout")),
        checks=("nonfinite",),
        kind="transform",
        description=_SHUFFLE_NOTE.format("Triton MoE scale shuffle"),
    ),
    # -- weight-loading helpers on scales --
    metadata_contract(
        "aiter.utility.fp4_utils.e8m0_to_f32",
        "torch",
        None,
        ("scale_e8m0_biased",),
        (tensor("scale_e8m0_biased"),),
        checks=("nonfinite",),
        kind="transform",
        description="e8m0 bytes to float32 multipliers: a NaN byte (0xFF) in weight scales becomes NaN",
    ),
    metadata_contract(
        "aiter.utility.fp4_utils.e8m0_shuffle",
        "torch",
        kernels.operands(None, None, "scale"),
        ("scale",),
        (tensor("scale"),),
        checks=("nonfinite",),
        kind="transform",
        description=_SHUFFLE_NOTE.format("MX scale preshuffle"),
    ),
]
