"""AITER's fused norm/activation + quant producers, as contracts (adapters: :mod:`.fused_adapters`).

Every producer here is observed like the plain quant producers: its
quantized output is recorded with the sampled rows of the values it
quantized (``provenance_record``; ``static_producer_record`` for the static
ones, which write no scales), so the GEMM it feeds gets the quant→GEMM chain
reference and a wrong x_scale downstream is caught.

The fused-norm producers are not held to ``kwarg_honored``'s bit-exact scale
recomputation: the kernel's float32 RMSNorm (approximate rsqrt, its own
summation order, optional rounding to the input dtype) differs from a torch
recomputation by more than that check's 1e-6 tolerance.  Their layouts are
still verified, by dequantizing in the requested layout (``quant_numerics``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from quantguard.contracts.aiter import fused_adapters as fused
from quantguard.contracts.base import Contract, KeyParam, identity, optional, strided, tensor, value

__all__ = ["CONTRACTS"]

#: Producers whose high-precision input can be recomputed exactly enough for byte-exact scales.
_EXACT_CHECKS = (
    "fp8_variant",
    "kwarg_honored",
    "provenance_record",
    "quant_numerics",
    "nonfinite",
    "ignored_parameter",
)
#: Fused-norm producers: layouts verified by dequantization only (see the module docstring).
_FUSED_CHECKS = ("fp8_variant", "provenance_record", "quant_numerics", "nonfinite", "ignored_parameter")
#: Static-scale producers write no scales, so ``provenance_record`` records nothing; their
#: quantized output and unquantized rows are recorded for the chain reference of the GEMM they feed.
_STATIC_CHECKS = _FUSED_CHECKS + ("static_producer_record",)


def _producer(
    target: str,
    backend: str,
    interpret: Callable[..., Any],
    params: tuple[str, ...],
    key: tuple[KeyParam, ...],
    checks: tuple[str, ...] = _FUSED_CHECKS,
    layout_params: tuple[str, ...] = (),
    honored: tuple[str, ...] = (),
    relied: dict[str, str] | None = None,
    description: str = "",
) -> Contract:
    depends = (
        {name: layout_params for name in ("kwarg_honored", "provenance_record", "quant_numerics") if name in checks}
        if layout_params
        else {}
    )
    return Contract(
        target=target,
        kind="quant",
        backend=backend,
        checks=checks,
        key=key,
        interpret=interpret,
        params=params,
        relied_defaults=relied or {},
        depends=depends,
        honored=honored,
        description=description,
    )


_RMS = "aiter.ops.rmsnorm."
_TQ = "aiter.ops.triton.quant."
_MOE = "aiter.ops.triton.moe."

CONTRACTS: list[Contract] = [
    _producer(
        _RMS + "rmsnorm_quant",
        "hip",
        fused.rmsnorm_quant,
        ("out", "input", "scale", "weight", "epsilon", "group_size", "shuffle_scale", "gemma_norm"),
        (
            tensor("out"),
            tensor("input"),
            strided("scale"),
            identity("weight"),
            value("group_size"),
            value("shuffle_scale"),
            value("gemma_norm"),
        ),
        layout_params=("group_size", "shuffle_scale"),
        relied={"group_size": "0", "shuffle_scale": "False"},
        description="RMSNorm + quant (per-token, per-group fp32, e8m0 MX-swizzled with shuffle_scale); "
        "layout checked by dequantization",
    ),
    _producer(
        _RMS + "add_rmsnorm_quant",
        "hip",
        fused.rmsnorm_quant,
        (
            "out",
            "input",
            "residual_in",
            "residual_out",
            "scale",
            "weight",
            "epsilon",
            "group_size",
            "shuffle_scale",
            "gemma_norm",
        ),
        (
            tensor("out"),
            tensor("input"),
            tensor("residual_in"),
            tensor("residual_out"),
            strided("scale"),
            identity("weight"),
            value("group_size"),
            value("shuffle_scale"),
            value("gemma_norm"),
        ),
        layout_params=("group_size", "shuffle_scale"),
        relied={"group_size": "0", "shuffle_scale": "False"},
        description="residual add + RMSNorm + quant; same scale layouts as rmsnorm_quant",
    ),
    _producer(
        _TQ + "fused_fp8_quant.fused_rms_fp8_per_tensor_static_quant",
        "triton",
        fused.rms_fp8_static,
        (
            "inp1",
            "inp1_weight",
            "inp1_epsilon",
            "inp1_scale",
            "inp2",
            "inp2_weight",
            "inp2_epsilon",
            "dtype_quant",
            "res1",
            "output_unquantized_inp1",
            "rmsnorm_convert_to_inp1_type",
        ),
        (
            tensor("inp1"),
            identity("inp1_weight"),
            tensor("inp1_scale"),
            optional("inp2"),
            value("dtype_quant"),
            optional("res1"),
        ),
        checks=_STATIC_CHECKS,
        honored=("res1",),
        description="RMSNorm + static per-tensor fp8 quant (divides by inp1_scale)",
    ),
    _producer(
        _TQ + "fused_fp8_quant.fused_silu_mul_fp8_per_tensor_static_quant",
        "triton",
        fused.silu_mul_fp8_static,
        ("inp", "inp_scale", "dtype_quant", "silu_convert_to_inp_type"),
        (tensor("inp"), tensor("inp_scale"), value("dtype_quant")),
        checks=_STATIC_CHECKS,
        description="silu(gate) * up + static per-tensor fp8 quant",
    ),
    _producer(
        _TQ + "fused_fp8_quant.fused_reduce_rms_fp8_group_quant",
        "triton",
        fused.reduce_rms_fp8_group,
        (
            "inp1",
            "inp1_weight",
            "inp1_epsilon",
            "inp2",
            "inp2_weight",
            "inp2_epsilon",
            "inp3",
            "group_size",
            "dtype_quant",
            "dtype",
            "res1",
            "output_unquantized_inp1",
            "out3",
            "transpose_scale",
            "is_x_scale_strided",
        ),
        (
            tensor("inp1"),
            identity("inp1_weight"),
            optional("inp2"),
            optional("inp3"),
            value("group_size"),
            value("dtype_quant"),
            optional("res1"),
            value("transpose_scale"),
            value("is_x_scale_strided"),
        ),
        layout_params=("transpose_scale", "group_size"),
        honored=("transpose_scale", "group_size"),
        relied={"transpose_scale": "False", "group_size": "128"},
        description="split-K reduce + RMSNorm + per-group fp8; transpose_scale=True → (G, M) bytes",
    ),
    _producer(
        _TQ + "fused_mxfp4_quant.fused_rms_mxfp4_quant",
        "triton",
        fused.rms_mxfp4,
        (
            "x1",
            "x1_weight",
            "x1_epsilon",
            "x2",
            "x2_weight",
            "x2_epsilon",
            "res1",
            "shuffle",
            "scale_shuffle_padding",
            "output_unquantized_inp1",
            "inargs",
        ),
        (
            tensor("x1"),
            identity("x1_weight"),
            optional("x2"),
            optional("res1"),
            value("shuffle"),
            value("scale_shuffle_padding"),
        ),
        layout_params=("shuffle",),
        honored=("shuffle",),
        relied={"shuffle": "False"},
        description="RMSNorm + MXFP4 (Even e8m0; shuffle=True → MX swizzle)",
    ),
    _producer(
        _TQ + "fused_mxfp4_quant.fused_reduce_rms_mxfp4_quant",
        "triton",
        fused.reduce_rms_mxfp4,
        (
            "x1",
            "x1_weight",
            "x1_epsilon",
            "x2",
            "x2_weight",
            "x2_epsilon",
            "x3",
            "res1",
            "shuffle",
            "scale_shuffle_padding",
            "output_unquantized_inp1",
            "dtype",
            "out3",
        ),
        (
            tensor("x1"),
            identity("x1_weight"),
            optional("x2"),
            optional("x3"),
            optional("res1"),
            value("shuffle"),
            value("scale_shuffle_padding"),
        ),
        layout_params=("shuffle",),
        honored=("shuffle",),
        relied={"shuffle": "False"},
        description="split-K reduce + RMSNorm + MXFP4 (Even e8m0; shuffle=True → MX swizzle)",
    ),
    _producer(
        _TQ + "fused_mxfp4_quant.fused_reduce_act_mul_and_mxfp4_quant",
        "triton",
        fused.act_mul_mxfp4,
        ("x", "activation", "x2", "scaling_mode", "shuffle", "scale_shuffle_padding", "dtype"),
        (tensor("x"), value("activation"), optional("x2"), value("shuffle"), value("scale_shuffle_padding")),
        checks=_EXACT_CHECKS,
        layout_params=("shuffle",),
        honored=("shuffle",),
        relied={"shuffle": "False"},
        description="split-K reduce + act(gate) * up + MXFP4 (Even e8m0 whatever scaling_mode says; "
        "shuffle=True → MX swizzle); silu only interpreted",
    ),
    _producer(
        _MOE + "moe_op_gemm_a4w4.mxfp4_quant",
        "triton",
        fused.moe_mxfp4,
        ("x", "block_size_m", "block_size_n"),
        (tensor("x"),),
        checks=_EXACT_CHECKS,
        description="MoE MXFP4 activation quant: uint8 (M, K/2), uint8 e8m0 (M, K/32), Even rounding",
    ),
    _producer(
        _MOE + "quant_moe.downcast_to_mxfp",
        "triton",
        fused.downcast_mxfp,
        ("src_tensor", "out_quant_type", "axis", "DEQUANT_SCALE_ROUNDING_MODE"),
        (tensor("src_tensor"), value("out_quant_type"), value("axis"), value("DEQUANT_SCALE_ROUNDING_MODE")),
        checks=_EXACT_CHECKS,
        description="MoE weight MXFP4/MXFP8 quant along axis; e8m0 rounded up (ROUND_DOWN calls not interpreted)",
    ),
    _producer(
        _MOE + "quant_moe.downcast_to_static_fp8",
        "triton",
        fused.static_fp8,
        ("x", "scale"),
        (tensor("x"), tensor("scale")),
        checks=_STATIC_CHECKS,
        description="MoE static per-tensor fp8 quant (x / scale, arch fp8)",
    ),
    _producer(
        "aiter.ops.fused_qk_rmsnorm_group_quant.fused_qk_rmsnorm_group_quant",
        "hip",
        fused.qk_rmsnorm_group,
        (
            "q_out_quantized",
            "q_out_scale",
            "q",
            "q_weight",
            "q_epsilon",
            "q_out_unquantized",
            "k_out",
            "q_res_out",
            "k",
            "k_weight",
            "k_epsilon",
            "q_residual",
            "group_size",
            "transpose_scale",
            "gemma_norm",
        ),
        (
            optional("q_out_quantized"),
            optional("q_out_scale"),
            optional("q"),
            optional("q_weight"),
            optional("q_residual"),
            value("group_size"),
            value("transpose_scale"),
            value("gemma_norm"),
        ),
        layout_params=("transpose_scale", "group_size"),
        relied={"transpose_scale": "False"},
        description="q/k RMSNorm + per-group fp8 of q (fp32 scales; (G, M) bytes with transpose_scale); "
        "fp4x2 output: metadata checks only",
    ),
    _producer(
        "aiter.ops.quant.per_tensor_quant",
        "torch",
        fused.torch_per_tensor,
        ("x", "scale", "scale_dtype", "quant_dtype", "dtypeMax"),
        (tensor("x"), optional("scale"), value("scale_dtype"), value("quant_dtype"), value("dtypeMax")),
        checks=_EXACT_CHECKS,
        description="torch reference per-tensor quant (static when scale is given)",
    ),
]
