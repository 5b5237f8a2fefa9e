"""AITER's plain quantization producers (HIP, Triton, torch reference) and layout transforms, as contracts.

Each entry: the entry point's path, its backend, the adapter that reads a
call (:mod:`.quant_adapters`, :mod:`.transform_adapters`), the expected
parameters (for drift detection), the signature key, the parameters the
layout checks depend on, the defaults they rely on, and the ones the
function must read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from quantguard.contracts.aiter import quant_adapters as quant
from quantguard.contracts.aiter import transform_adapters as transform
from quantguard.contracts.base import Contract, KeyParam, optional, strided, tensor, value

__all__ = ["CONTRACTS"]

_QUANT_CHECKS = (
    "fp8_variant",
    "kwarg_honored",
    "provenance_record",
    "quant_numerics",
    "nonfinite",
    "ignored_parameter",
)


def _quant(
    target: str,
    backend: str,
    interpret: Callable[..., Any],
    params: tuple[str, ...],
    key: tuple[KeyParam, ...],
    depends_on: tuple[str, ...] = (),
    relied: dict[str, str] | None = None,
    honored: tuple[str, ...] = (),
    description: str = "",
) -> Contract:
    return Contract(
        target=target,
        kind="quant",
        backend=backend,
        checks=_QUANT_CHECKS,
        key=key,
        interpret=interpret,
        params=params,
        relied_defaults=relied or {},
        depends={"kwarg_honored": depends_on, "provenance_record": depends_on} if depends_on else {},
        honored=honored,
        description=description,
    )


_Q = "aiter.ops.quant."
_TQ = "aiter.ops.triton.quant."

CONTRACTS: list[Contract] = [
    # -- quantization producers (HIP) --
    _quant(
        _Q + "dynamic_per_token_scaled_quant",
        "hip",
        quant.per_token_scaled,
        ("out", "input", "scales", "scale_ub", "shuffle_scale", "num_rows", "num_rows_factor"),
        (tensor("out"), tensor("input"), strided("scales"), optional("scale_ub"), value("shuffle_scale")),
        depends_on=("shuffle_scale",),
        relied={"shuffle_scale": "False"},
        honored=("shuffle_scale", "scale_ub"),
        description="per-token (or per-group for 32/64/128-wide views) dynamic quant into out/scales",
    ),
    _quant(
        _Q + "dynamic_per_group_scaled_quant",
        "hip",
        quant.per_group_scaled,
        ("out", "input", "scales", "group_size", "shuffle_scale", "num_rows", "num_rows_factor"),
        (tensor("out"), tensor("input"), strided("scales"), value("group_size"), value("shuffle_scale")),
        depends_on=("group_size", "shuffle_scale"),
        relied={"shuffle_scale": "True", "group_size": "32"},
        honored=("shuffle_scale", "group_size"),
        description="per-group quant; e8m0 (MX swizzle when shuffled, group 32) or fp32 scales",
    ),
    _quant(
        _Q + "dynamic_per_tensor_quant",
        "hip",
        quant.per_tensor("out", "input", "scale", False),
        ("out", "input", "scale"),
        (tensor("out"), tensor("input"), tensor("scale")),
        description="dynamic per-tensor quant",
    ),
    _quant(
        _Q + "static_per_tensor_quant",
        "hip",
        quant.per_tensor("out", "input", "scale", True),
        ("out", "input", "scale"),
        (tensor("out"), tensor("input"), tensor("scale")),
        description="static per-tensor quant with a given scale",
    ),
    _quant(
        _Q + "per_token_quant_hip",
        "hip",
        quant.per_token_hip,
        ("x", "scale", "quant_dtype", "num_rows", "num_rows_factor"),
        (tensor("x"), optional("scale"), value("quant_dtype")),
        honored=("quant_dtype",),
        description="per-token quant returning (y, scale (M, 1))",
    ),
    _quant(
        _Q + "per_group_quant_hip",
        "hip",
        quant.per_group_hip,
        ("x", "scale", "quant_dtype", "group_size", "transpose_scale", "num_rows", "num_rows_factor", "scale_type"),
        (
            tensor("x"),
            optional("scale"),
            value("quant_dtype"),
            value("group_size"),
            value("transpose_scale"),
            value("scale_type"),
        ),
        depends_on=("transpose_scale", "group_size", "scale_type"),
        relied={"transpose_scale": "False", "group_size": "128"},
        honored=("transpose_scale", "group_size", "quant_dtype", "scale_type"),
        description="per-group quant; transpose_scale=True returns (M, G) whose bytes are (G, M)",
    ),
    _quant(
        _Q + "per_1x32_mx_quant_hip",
        "hip",
        quant.mx_hip,
        ("x", "scale", "quant_dtype", "shuffle", "num_rows", "num_rows_factor", "scale_type"),
        (tensor("x"), optional("scale"), value("quant_dtype"), value("shuffle"), value("scale_type")),
        depends_on=("shuffle", "quant_dtype"),
        relied={"shuffle": "False"},
        honored=("shuffle", "quant_dtype", "scale_type"),
        description="MX 1x32 quant (fp4x2 or fp8) with e8m0 scales, MX-swizzled when shuffle=True",
    ),
    _quant(
        _Q + "per_1x32_f4_quant_hip",
        "hip",
        quant.mx_hip,
        ("x", "scale", "quant_dtype", "shuffle", "num_rows", "num_rows_factor"),
        (tensor("x"), optional("scale"), value("quant_dtype"), value("shuffle")),
        depends_on=("shuffle",),
        relied={"shuffle": "False"},
        honored=("shuffle",),
        description="MXFP4 quant (fp4-only wrapper)",
    ),
    _quant(
        _Q + "per_tensor_quant_hip",
        "hip",
        quant.per_tensor_hip,
        ("x", "scale", "quant_dtype", "num_rows", "num_rows_factor"),
        (tensor("x"), optional("scale"), value("quant_dtype")),
        honored=("scale", "quant_dtype"),
        description="per-tensor quant (static when scale is given)",
    ),
    _quant(
        _Q + "pertoken_quant",
        "torch",
        quant.pertoken_torch,
        ("x", "scale", "x_scale", "scale_dtype", "quant_dtype", "dtypeMax"),
        (
            tensor("x"),
            optional("scale"),
            optional("x_scale"),
            value("scale_dtype"),
            value("quant_dtype"),
            value("dtypeMax"),
        ),
        honored=("x_scale", "quant_dtype", "dtypeMax"),
        description="torch reference per-token quant",
    ),
    # -- quantization producers (Triton) --
    _quant(
        _TQ + "quant.dynamic_per_token_quant_fp8_i8",
        "triton",
        quant.per_token_out,
        ("qx", "x_in", "scale_out"),
        (tensor("qx"), tensor("x_in"), strided("scale_out")),
        description="Triton per-token quant",
    ),
    _quant(
        _TQ + "quant.dynamic_per_tensor_quant_fp8_i8",
        "triton",
        quant.per_tensor("qx", "x_in", "scale_out", False),
        ("qx", "x_in", "scale_out"),
        (tensor("qx"), tensor("x_in"), tensor("scale_out")),
        description="Triton per-tensor quant",
    ),
    _quant(
        _TQ + "quant.static_per_tensor_quant_fp8_i8",
        "triton",
        quant.per_tensor("qx", "x_in", "scale_in", True),
        ("qx", "x_in", "scale_in"),
        (tensor("qx"), tensor("x_in"), tensor("scale_in")),
        description="Triton static per-tensor quant",
    ),
    _quant(
        _TQ + "quant.dynamic_mxfp4_quant",
        "triton",
        quant.dynamic_mxfp4,
        ("x", "scaling_mode"),
        (tensor("x"), value("scaling_mode")),
        depends_on=("scaling_mode",),
        relied={"scaling_mode": "even"},
        honored=("scaling_mode",),
        description="Triton MXFP4 quant; e8m0 rounding from scaling_mode",
    ),
    _quant(
        _TQ + "fused_fp8_quant.fused_flatten_fp8_group_quant",
        "triton",
        quant.flatten_group,
        ("x", "group_size", "dtype_quant", "transpose_scale"),
        (tensor("x"), value("group_size"), value("dtype_quant"), value("transpose_scale")),
        depends_on=("transpose_scale",),
        relied={"transpose_scale": "False"},
        honored=("transpose_scale", "group_size"),
        description="Triton flatten + per-group fp8 quant; transpose_scale=True → (G, M) memory",
    ),
    # -- layout transforms --
    Contract(
        target=_Q + "partial_transpose",
        kind="transform",
        backend="hip",
        checks=("noop_transform", "ignored_parameter"),
        key=(tensor("out"), tensor("input"), tensor("num_rows")),
        interpret=transform.partial_transpose,
        params=("out", "input", "num_rows"),
        honored=("num_rows",),
        description="transposes the first num_rows rows of MoE scales into out",
    ),
    Contract(
        target="aiter.ops.shuffle.shuffle_weight",
        kind="transform",
        backend="torch",
        checks=("noop_transform", "provenance_record"),
        key=(tensor("x"), value("layout")),
        interpret=transform.shuffle_weight,
        description="16x16 weight preshuffle for bpreshuffle kernels",
    ),
]
