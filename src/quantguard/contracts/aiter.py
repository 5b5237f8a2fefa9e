"""AITER's promises, as data (ROCm/aiter, facts as of HEAD e4048607; see ``docs/contracts.md``).

Each entry point is one :class:`Contract`: its path, the checks that hold it
to its promises, the parameters forming its metadata signature, and an
``interpret`` adapter that says what a call means (which tensor is the
input, which kwarg requests which scale layout, which e8m0 rounding the
producer uses, what x_scale layout a GEMM reads).  The adapters encode
AITER's real semantics, including the ones a naive guard gets wrong:

* ``dynamic_per_token_scaled_quant`` has two regimes: when the input's last
  dim is 32/64/128 and the output is fp8/fp4 it is a per-group quant whose
  group ``(m, g)`` goes to flat ``g*M + m`` under ``shuffle_scale``.
* ``per_group_quant_hip(transpose_scale=True)`` returns a contiguous
  ``(M, G)`` tensor whose bytes are ``(G, M)``: strides lie, provenance tells.
* HIP producers round e8m0 with RoundUp; Triton ``dynamic_mxfp4_quant`` with
  its ``scaling_mode`` argument (default Even).
* ``gemm_a8w8_blockscale_bpreshuffle`` reads a transposed x_scale (bytes
  ``(G, M)`` or a view with ``stride(0) == 1``) and a 16x16-preshuffled weight.
* gfx942 kernels read fp8 bytes as e4m3fnuz whatever the tensor says.

Nothing here imports torch at module import: adapters run only when a
guarded call is interpreted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from quantguard.contracts.base import Contract
from quantguard.contracts.views import GemmView, MoeView, QuantView, RoutingView, TransformView

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.calls import CallRecord

__all__ = ["CONTRACTS", "ASM_KERNELS", "CK_KERNELS", "is_asm_name", "FACTORIES"]

# -- check bundles ---------------------------------------------------------------------------

_QUANT_CHECKS = (
    "fp8_variant",
    "kwarg_honored",
    "provenance_record",
    "quant_numerics",
    "nonfinite",
    "ignored_parameter",
)
#: ``scale_pairing`` precedes ``scale_provenance`` (which spends the records) and every numerics check.
_GEMM_CHECKS = (
    "asm_policy",
    "ck_free_backend",
    "scale_tensors",
    "fp8_variant",
    "scale_pairing",
    "scale_values",
    "scale_provenance",
    "gemm_numerics",
    "scale_plausibility",
    "weight_scales",
    "nonfinite",
    "ignored_parameter",
)

#: Kernels classified as ASM by name in this list *and* by the ``_ASM``/``_asm`` naming rule.
ASM_KERNELS = (
    "aiter.ops.gemm_op_a8w8.gemm_a8w8_ASM",
    "aiter.ops.gemm_op_a8w8.gemm_a8w8_asm",
    "aiter.ops.gemm_op_a8w8.flatmm_a8w8_blockscale_ASM",
    "aiter.ops.gemm_op_a8w8.flatmm_a8w8_blockscale_asm",
    "aiter.ops.gemm_op_a8w8.gemm_a8w8_blockscale_bpreshuffle_asm",
    "aiter.ops.gemm_op_a8w8.gfx950_a8w8_blockscale_ASM",
    "aiter.ops.gemm_op_a4w4.gemm_a4w4_asm",
    "aiter.fused_moe_bf16_asm.asm_moe",
)
#: Entry points that run CK (JIT-built) code: in a CK-free build they must not be reached.
CK_KERNELS = (
    "aiter.ops.gemm_op_a8w8.gemm_a8w8_CK",
    "aiter.ops.gemm_op_a8w8.gemm_a8w8_bpreshuffle",
    "aiter.ops.gemm_op_a8w8.gemm_a8w8_blockscale_bpreshuffle",
)
#: Factories whose results ATOM stores on layers at construction (stale-reference scan).
FACTORIES = ("aiter.ops.quant.get_hip_quant", "aiter.ops.quant.get_triton_quant", "aiter.ops.quant.get_torch_quant")


def is_asm_name(name: str) -> bool:
    """An ASM kernel by AITER's naming rule (``..._ASM``/``..._asm``) or by the explicit list."""
    return name.rsplit(".", 1)[-1].endswith(("_ASM", "_asm")) or name in ASM_KERNELS


# -- helpers used by the adapters ------------------------------------------------------------


def _torch() -> Any:
    import torch

    return torch


def _arch_fp8(call: CallRecord) -> Any:
    """The fp8 dtype this machine's kernels read bytes as (gfx942: e4m3fnuz)."""
    name = call.platform.expected_fp8()
    return getattr(_torch(), name) if name else None


def _element(dtype: Any, packed_fp4: bool = False) -> Any:
    from quantguard.numerics.formats import FP4_E2M1, element_format

    if packed_fp4:
        return FP4_E2M1
    return element_format(dtype)


def _is_fp4(dtype: Any) -> bool:
    return str(dtype).endswith("float4_e2m1fn_x2")


def _is_e8m0(dtype: Any) -> bool:
    return str(dtype).endswith("float8_e8m0fnu")


def _result(call: CallRecord, index: int) -> Any:
    result = call.result
    if isinstance(result, (tuple, list)) and len(result) > index:
        return result[index]
    return None


def _rows2d(tensor: Any) -> Any:
    return None if tensor is None else tensor.reshape(-1, tensor.shape[-1])


def _flag(value: Any) -> bool:
    return bool(value) if not hasattr(value, "shape") else False


def _group_request(name: str, value: Any) -> str:
    return f"{name}={value!r}"


# -- quant adapters ----------------------------------------------------------------------------


def _interpret_per_token_scaled(call: CallRecord) -> QuantView | None:
    """``dynamic_per_token_scaled_quant``: per-token, or per-group when input's last dim is 32/64/128."""
    out, x, scales = call["out"], call["input"], call["scales"]
    shuffle = _flag(call.get("shuffle_scale"))
    width = int(x.shape[-1])
    packed = _is_fp4(out.dtype) or (out.dtype == _torch().uint8)
    grouped = (
        width in (32, 64, 128)
        and (packed or _element(out.dtype) is not None and _element(out.dtype).family == "fp8")
        and int(out.shape[-1]) * (2 if packed else 1) != width
    )
    if grouped:
        rows = int(out.reshape(-1, out.shape[-1]).shape[0])
        x2d = x.reshape(rows, -1)
        layout = "transposed" if shuffle else "row_major"
        return QuantView(
            call.target,
            x2d,
            _rows2d(out),
            scales,
            _element(out.dtype, packed),
            q_read_as=_q_read_as(out),
            group=width,
            encoding="fp32",
            requested_layout=layout,
            request=_group_request("shuffle_scale", shuffle),
            alternatives=("row_major", "transposed"),
            valid_rows=call.get("num_rows"),
            scale_upper_bound=call.get("scale_ub"),
            packed_fp4=packed,
        )
    return QuantView(
        call.target,
        _rows2d(x),
        _rows2d(out),
        scales,
        _element(out.dtype, packed),
        q_read_as=_q_read_as(out),
        group=None,
        encoding="fp32",
        valid_rows=call.get("num_rows"),
        scale_upper_bound=call.get("scale_ub"),
        packed_fp4=packed,
    )


def _q_read_as(q: Any) -> Any:
    """Producers write in their output dtype's format (consumers may read differently)."""
    element = _element(q.dtype)
    return q.dtype if element is not None and element.family == "fp8" else None


def _e8m0_request(shuffle: bool, group: int) -> str:
    if not shuffle:
        return "row_major"
    return "mx_swizzle" if group == 32 else "transposed"


def _interpret_per_group_scaled(call: CallRecord) -> QuantView | None:
    """``dynamic_per_group_scaled_quant``: scale dtype picks e8m0 vs fp32; fp4 output is always e8m0."""
    out, x, scales = call["out"], call["input"], call["scales"]
    group = int(call.get("group_size") or 32)
    shuffle = _flag(call.get("shuffle_scale"))
    packed = _is_fp4(out.dtype) or (out.dtype == _torch().uint8)
    e8m0 = packed or _is_e8m0(scales.dtype) or scales.dtype == _torch().uint8
    layout = _e8m0_request(shuffle, group) if e8m0 else ("transposed" if shuffle else "row_major")
    return QuantView(
        call.target,
        _rows2d(x),
        _rows2d(out),
        scales,
        _element(out.dtype, packed),
        q_read_as=_q_read_as(out),
        group=group,
        encoding="e8m0" if e8m0 else "fp32",
        requested_layout=layout,
        request=_group_request("shuffle_scale", shuffle),
        alternatives=("row_major", "transposed", "padded", "mx_swizzle"),
        rounding="up" if e8m0 else None,
        rounding_source="the HIP quant kernels' default",
        valid_rows=call.get("num_rows"),
        packed_fp4=packed,
    )


def _per_tensor(out_name: str, input_name: str, scale_name: str, static: bool) -> Callable[..., QuantView]:
    """Per-tensor producers writing into ``out`` (HIP: out/input/scale; Triton: qx/x_in/scale_*)."""

    def interpret(call: CallRecord) -> QuantView:
        out = call[out_name]
        return QuantView(
            call.target,
            _rows2d(call[input_name]),
            _rows2d(out),
            call[scale_name],
            _element(out.dtype),
            q_read_as=_q_read_as(out),
            group=0,
            static=static,
        )

    return interpret


def _interpret_per_token_out(call: CallRecord) -> QuantView | None:
    """Triton ``dynamic_per_token_quant_fp8_i8(qx, x_in, scale_out)``: row scales, written by strides."""
    out, x, scale = call["qx"], call["x_in"], call["scale_out"]
    return QuantView(
        call.target, _rows2d(x), _rows2d(out), scale, _element(out.dtype), q_read_as=_q_read_as(out), group=None
    )


def _interpret_per_token_hip(call: CallRecord) -> QuantView | None:
    y, scale = _result(call, 0), _result(call, 1)
    if y is None:
        return None
    return QuantView(
        call.target,
        _rows2d(call["x"]),
        _rows2d(y),
        scale,
        _element(y.dtype),
        q_read_as=_q_read_as(y),
        group=None,
        valid_rows=call.get("num_rows"),
    )


def _interpret_per_group_hip(call: CallRecord) -> QuantView | None:
    """``per_group_quant_hip``: ``transpose_scale`` becomes ``shuffle_scale`` of the kernel it calls."""
    y, scale = _result(call, 0), _result(call, 1)
    if y is None:
        return None
    group = int(call.get("group_size") or 128)
    transpose = _flag(call.get("transpose_scale"))
    e8m0 = _is_e8m0(scale.dtype)
    layout = _e8m0_request(transpose, group) if e8m0 else ("transposed" if transpose else "row_major")
    return QuantView(
        call.target,
        _rows2d(call["x"]),
        _rows2d(y),
        scale,
        _element(y.dtype),
        q_read_as=_q_read_as(y),
        group=group,
        encoding="e8m0" if e8m0 else "fp32",
        requested_layout=layout,
        request=_group_request("transpose_scale", transpose),
        alternatives=("row_major", "transposed"),
        rounding="up" if e8m0 else None,
        rounding_source="the HIP quant kernels' default",
        valid_rows=call.get("num_rows"),
    )


def _interpret_mx_hip(call: CallRecord) -> QuantView | None:
    """``per_1x32_mx_quant_hip``: fp4 → e8m0 (MX-swizzled when ``shuffle``); fp8 → fp32 unless scale_type."""
    y, scale = _result(call, 0), _result(call, 1)
    if y is None:
        return None
    packed = _is_fp4(y.dtype) or y.dtype == _torch().uint8
    shuffle = _flag(call.get("shuffle"))
    e8m0 = packed or _is_e8m0(scale.dtype) or scale.dtype == _torch().uint8
    layout = _e8m0_request(shuffle, 32) if e8m0 else "row_major"
    return QuantView(
        call.target,
        _rows2d(call["x"]),
        _rows2d(y),
        scale,
        _element(y.dtype, packed),
        q_read_as=_q_read_as(y),
        group=32,
        encoding="e8m0" if e8m0 else "fp32",
        requested_layout=layout,
        request=_group_request("shuffle", shuffle),
        alternatives=("row_major", "padded", "transposed", "mx_swizzle"),
        rounding="up" if e8m0 else None,
        rounding_source="the HIP quant kernels' default",
        valid_rows=call.get("num_rows"),
        packed_fp4=packed,
    )


def _interpret_per_tensor_hip(call: CallRecord) -> QuantView | None:
    y, scale = _result(call, 0), _result(call, 1)
    if y is None:
        return None
    return QuantView(
        call.target,
        _rows2d(call["x"]),
        _rows2d(y),
        scale,
        _element(y.dtype),
        q_read_as=_q_read_as(y),
        group=0,
        static=call.get("scale") is not None,
    )


def _interpret_pertoken_torch(call: CallRecord) -> QuantView | None:
    """Torch reference ``pertoken_quant``: scale 1 for all-zero rows, optional smooth scale."""
    y, scale = _result(call, 0), _result(call, 1)
    if y is None:
        return None
    view = QuantView(
        call.target,
        _rows2d(call["x"]),
        _rows2d(y),
        scale,
        _element(y.dtype),
        q_read_as=_q_read_as(y),
        group=None,
        static=call.get("scale") is not None,
        smooth=call.get("x_scale"),
        zero_amax_scale="one",
    )
    maximum = call.get("dtypeMax")
    if maximum is not None and view.element is not None:
        from dataclasses import replace

        view.element = replace(view.element, max=float(maximum))
    return view


_SCALING_MODES = {
    "even": "even",
    "ceil": "ceil",
    "floor": "down",
    "round_down": "down",
    "down": "down",
    "rceil": "up",
    "round_up": "up",
    "up": "up",
}


def _interpret_dynamic_mxfp4(call: CallRecord) -> QuantView | None:
    """Triton ``dynamic_mxfp4_quant(x, scaling_mode)``: e8m0 rounding comes from the argument."""
    q, scale = _result(call, 0), _result(call, 1)
    if q is None:
        return None
    mode_text = str(call.get("scaling_mode") or "even").lower()
    return QuantView(
        call.target,
        _rows2d(call["x"]),
        _rows2d(q),
        scale,
        _element(None, True),
        group=32,
        encoding="e8m0",
        requested_layout="logical",
        rounding=_SCALING_MODES.get(mode_text),
        rounding_source=f"scaling_mode={mode_text!r}",
        packed_fp4=True,
    )


def _interpret_flatten_group(call: CallRecord) -> QuantView | None:
    """Triton ``fused_flatten_fp8_group_quant``: (M, N1, N2) → (M, N1*N2); ``transpose_scale`` → (G, M) memory."""
    q, scale = _result(call, 0), _result(call, 1)
    if q is None:
        return None
    x = call["x"]
    transpose = _flag(call.get("transpose_scale"))
    return QuantView(
        call.target,
        x.reshape(x.shape[0], -1),
        q,
        scale,
        _element(q.dtype),
        q_read_as=_q_read_as(q),
        group=int(call["group_size"]),
        requested_layout="transposed" if transpose else "row_major",
        request=_group_request("transpose_scale", transpose),
        alternatives=("row_major", "transposed"),
    )


# -- GEMM adapters -----------------------------------------------------------------------------


def _gemm_common(call: CallRecord, kernel: str, x: Any, w: Any, x_scale: Any, w_scale: Any, **fields: Any) -> GemmView:
    out = fields.pop("out", None)
    if out is None:
        result = call.result
        out = result[0] if isinstance(result, (tuple, list)) else result
    k = int(x.shape[-1]) * (2 if fields.get("scheme") == "mx" else 1)
    n = int(w.shape[-2]) if w is not None and w.dim() >= 2 else 0
    m = int(x.reshape(-1, x.shape[-1]).shape[0])
    if isinstance(out, _torch().Tensor) and out.dim() == 2 and out.shape[0] > m:
        out = out[:m]  # ASM kernels write into row-padded buffers (e.g. pad32(M)); the rest is scratch
    element = _element(x.dtype, fields.get("scheme") == "mx")
    return GemmView(
        kernel, x, w, x_scale, w_scale, out=out, element=element, fp8_read_as=_arch_fp8(call), m=m, n=n, k=k, **fields
    )


def _a8w8(layout: str) -> Callable[[CallRecord], GemmView]:
    def interpret(call: CallRecord) -> GemmView:
        torch = _torch()
        return _gemm_common(
            call,
            call.target,
            call["XQ"],
            call["WQ"],
            call["x_scale"],
            call["w_scale"],
            bias=call.get("bias"),
            out_dtype=call.get("dtype"),
            scheme="per_token",
            w_layout=layout,
            x_scale_dtypes=(torch.float32,),
            allowed_out_dtypes=(torch.bfloat16, torch.float16),
        )

    return interpret


def _interpret_blockscale(call: CallRecord) -> GemmView:
    """``gemm_a8w8_blockscale``: row-major x_scale (M, ceil(K/128)); ``isBpreshuffled`` → preshuffled weight."""
    torch = _torch()
    preshuffled = _flag(call.get("isBpreshuffled"))
    return _gemm_common(
        call,
        call.target,
        call["XQ"],
        call["WQ"],
        call["x_scale"],
        call["w_scale"],
        out_dtype=call.get("dtype"),
        scheme="block",
        x_scale_layout="row_major",
        w_layout="preshuffle_16x16" if preshuffled else "plain",
        x_scale_dtypes=(torch.float32,),
        allowed_out_dtypes=(torch.bfloat16, torch.float16),
    )


def _interpret_blockscale_bpreshuffle(call: CallRecord) -> GemmView:
    """``gemm_a8w8_blockscale_bpreshuffle``: transposed x_scale; e8m0 scales are converted to fp32."""
    torch = _torch()
    return _gemm_common(
        call,
        call.target,
        call["XQ"],
        call["WQ"],
        call["x_scale"],
        call["w_scale"],
        out=call.get("out"),
        out_dtype=call.get("dtype"),
        scheme="block",
        x_scale_layout="transposed",
        x_scale_strided_ok=True,
        w_layout="preshuffle_16x16",
        x_scale_dtypes=(torch.float32, torch.float8_e8m0fnu),
        allowed_out_dtypes=(torch.bfloat16, torch.float16),
    )


def _interpret_blockscale_bpreshuffle_asm(call: CallRecord) -> GemmView:
    torch = _torch()
    return _gemm_common(
        call,
        call.target,
        call["A"],
        call["B"],
        call["A_scale"],
        call["B_scale"],
        out=call["out"],
        out_dtype=call["out"].dtype,
        bias=call.get("bias"),
        scheme="block",
        x_scale_layout="transposed",
        x_scale_strided_ok=True,
        w_layout="preshuffle_16x16",
        x_scale_dtypes=(torch.float32,),
    )


def _interpret_gfx950_blockscale_asm(call: CallRecord) -> GemmView:
    torch = _torch()
    return _gemm_common(
        call,
        call.target,
        call["XQ"],
        call["WQ"],
        call["x_scale"],
        call["w_scale"],
        out=call["Y"],
        out_dtype=call["Y"].dtype,
        scheme="block",
        x_scale_layout="row_major",
        w_layout="preshuffle_16x16",
        x_scale_dtypes=(torch.float32,),
    )


def _transposed_in_shape(scale: Any) -> Any:
    return scale.t() if scale is not None and getattr(scale, "dim", lambda: 0)() == 2 else scale


def _interpret_flatmm_asm(call: CallRecord) -> GemmView:
    """``flatmm_a8w8_blockscale_ASM``: x_scale (K/128, M), w_scale (K/128, N/128), weight shuffled (16, 32).

    The kernel takes both scales transposed *in shape*; the view presents them
    as the (M, G) / (N/128, G) transposed views the generic checks read.
    """
    torch = _torch()
    return _gemm_common(
        call,
        call.target,
        call["XQ"],
        call["WQ"],
        _transposed_in_shape(call["x_scale"]),
        _transposed_in_shape(call["w_scale"]),
        out_dtype=call.get("dtype"),
        scheme="block",
        x_scale_layout="transposed",
        x_scale_strided_ok=True,
        w_layout="preshuffle_16x32",
        x_scale_dtypes=(torch.float32,),
        allowed_out_dtypes=(torch.float16,),
    )


def _interpret_triton_a8w8(call: CallRecord) -> GemmView:
    torch = _torch()
    return _gemm_common(
        call,
        call.target,
        call["x"],
        call["w"],
        call["x_scale"],
        call["w_scale"],
        out=call.get("y"),
        bias=call.get("bias"),
        out_dtype=call.get("dtype"),
        scheme="per_token",
        x_scale_dtypes=(torch.float32,),
        allowed_out_dtypes=(torch.bfloat16, torch.float16),
    )


def _interpret_triton_blockscale(call: CallRecord) -> GemmView:
    torch = _torch()
    return _gemm_common(
        call,
        call.target,
        call["x"],
        call["w"],
        call["x_scale"],
        call["w_scale"],
        out=call.get("y"),
        out_dtype=call.get("dtype"),
        scheme="block",
        x_scale_layout="logical",
        x_scale_dtypes=(torch.float32,),
        allowed_out_dtypes=(torch.bfloat16, torch.float16),
    )


def _interpret_triton_blockscale_preshuffle(call: CallRecord) -> GemmView:
    """Weight viewed ``(N/16, K*16)``; ``is_x_scale_tranposed`` says x_scale bytes are ``(G, M)``."""
    torch = _torch()
    w = call["w"]
    x = call["x"]
    k = int(x.shape[-1])
    w_nk = w.reshape(-1, k) if w.dim() == 2 and int(w.shape[-1]) != k else w
    # flag set: a contiguous (M, G) tensor whose bytes are (G, M); unset: read by strides (any view)
    transposed = _flag(call.get("is_x_scale_tranposed"))
    return _gemm_common(
        call,
        call.target,
        x,
        w_nk,
        call["x_scale"],
        call["w_scale"],
        out=call.get("y"),
        out_dtype=call.get("dtype"),
        scheme="block",
        x_scale_layout="transposed" if transposed else "logical",
        w_layout="preshuffle_16x16",
        x_scale_dtypes=(torch.float32,),
        allowed_out_dtypes=(torch.bfloat16, torch.float16),
    )


def _interpret_a4w4(call: CallRecord) -> GemmView:
    """``gemm_a4w4``: fp4x2 A (M, K/2), preshuffled B; e8m0 scales MX-swizzled (padded)."""
    return _gemm_common(
        call,
        call.target,
        call["A"],
        call["B"],
        call["A_scale"],
        call["B_scale"],
        bias=call.get("bias"),
        out_dtype=call.get("dtype"),
        scheme="mx",
        x_scale_layout="mx_swizzle",
        w_scale_layout="mx_swizzle",
        w_layout="preshuffle_16x16" if _flag(call.get("bpreshuffle")) else "plain",
        alpha=float(call.get("alpha") or 1.0),
        beta=float(call.get("beta") or 0.0),
    )


def _interpret_a4w4_asm(call: CallRecord) -> GemmView:
    return _gemm_common(
        call,
        call.target,
        call["A"],
        call["B"],
        call["A_scale"],
        call["B_scale"],
        out=call["out"],
        out_dtype=call["out"].dtype,
        bias=call.get("bias"),
        scheme="mx",
        x_scale_layout="mx_swizzle",
        w_scale_layout="mx_swizzle",
        w_layout="preshuffle_16x16" if _flag(call.get("bpreshuffle")) else "plain",
        alpha=float(call.get("alpha") or 1.0),
        beta=float(call.get("beta") or 0.0),
    )


def _interpret_afp4wfp4(call: CallRecord) -> GemmView:
    """Triton ``gemm_afp4wfp4``: fp4 x (M, K/2), w (N, K/2), e8m0 scales (M, K/32), (N, K/32) by strides."""
    return _gemm_common(
        call,
        call.target,
        call["x"],
        call["w"],
        call["x_scales"],
        call["w_scales"],
        out=call.get("y"),
        out_dtype=call.get("dtype"),
        scheme="mx",
        x_scale_layout="logical",
        w_scale_layout="logical",
    )


def _interpret_afp4wfp4_preshuffle(call: CallRecord) -> GemmView:
    """Triton ``gemm_afp4wfp4_preshuffle``: weight ``(N/16, K*16)``; scales in the kernel's own shuffle.

    Only shapes, dtypes and numerics of non-scale properties are checked: the
    scale shuffle of this kernel is not one of the layouts quantguard models.
    """
    w = call["w_preshuf"]
    x = call["x_fp4"]
    w_nk = w.reshape(-1, x.shape[-1]) if w.dim() == 2 and w.shape[-1] != x.shape[-1] else w
    view = _gemm_common(
        call,
        call.target,
        x,
        w_nk,
        call["x_scales"],
        call["w_scales"],
        out=call.get("y"),
        out_dtype=call.get("dtype"),
        scheme="mx",
        x_scale_layout="kernel_specific",
        w_scale_layout="kernel_specific",
        w_layout="preshuffle_16x16",
    )
    # ATOM passes MX-swizzled buffers re-viewed as (rows/32, ...) (activations from 32 rows on, else plain (M, G)):
    # only the valid entries of a swizzled buffer mean anything; its padding is uninitialized.
    for name, scale, rows in (("x_scale", call["x_scales"], view.m), ("w_scale", call["w_scales"], view.n)):
        if scale is not None and scale.dim() == 2 and scale.shape[0] != rows:
            view.notes[name + "_bytes"] = "mx_swizzle"
    return view


def _interpret_batched_prequant(call: CallRecord) -> GemmView:
    """Batched FP8/INT8 GEMM quantizing X per token-group inside the kernel; W per-tensor scaled."""
    x = call["X"]
    transpose_in = _flag(call.get("transpose_bm_in"))
    x_bmk = x.transpose(0, 1) if transpose_in else x
    view = _gemm_common(
        call,
        call.target,
        x_bmk,
        call["WQ"],
        None,
        call["w_scale"],
        out=call.get("YQ"),
        bias=call.get("bias"),
        out_dtype=call.get("dtype"),
        scheme="batched_prequant",
        block_k=int(call.get("group_size") or 128),
    )
    view.batch = int(x_bmk.shape[0])
    view.m = int(x_bmk.shape[1])
    view.n = int(call["WQ"].shape[1])
    view.element = _element(call["WQ"].dtype)
    view.notes["transpose_bm"] = _flag(call.get("transpose_bm"))
    return view


def _interpret_tgemm(call: CallRecord) -> GemmView | None:
    """hipBLASLt ``tgemm.mm(inp, weights, bias, otype, scale_a, scale_b)``: per-tensor (or row) scales."""
    x, w = call["inp"], call["weights"]
    if _element(x.dtype) is None:
        return None  # an unquantized GEMM: nothing quantization-specific to check
    layout = "preshuffle_16x16" if getattr(w, "is_shuffled", False) else "plain"  # AITER reads the attribute
    return _gemm_common(
        call,
        call.target,
        x,
        w,
        call.get("scale_a"),
        call.get("scale_b"),
        bias=call.get("bias"),
        out_dtype=call.get("otype"),
        scheme="per_tensor",
        w_layout=layout,
    )


# -- other adapters ----------------------------------------------------------------------------


def _interpret_partial_transpose(call: CallRecord) -> TransformView:
    return TransformView("partial_transpose", call["input"], call["out"], valid_rows=call.get("num_rows"))


def _interpret_shuffle_weight(call: CallRecord) -> TransformView:
    return TransformView("shuffle_weight", call["x"], call.result, layout=tuple(call.get("layout") or (16, 16)))


def _routing(score: str | None) -> Callable[[CallRecord], RoutingView]:
    def interpret(call: CallRecord) -> RoutingView:
        chosen = score
        if chosen is None:  # topk_gating: from score_func; grouped_topk: from is_softmax
            if "score_func" in call.arguments:
                chosen = str(call.get("score_func"))
            else:
                chosen = "softmax" if call.get("is_softmax", True) else "sigmoid"
        return RoutingView(
            call["gating_output"],
            call.get("correction_bias"),
            call["topk_weights"],
            call["topk_ids"] if "topk_ids" in call.arguments else call["topk_indices"],
            chosen,
            bool(call.get("need_renorm", True)),
            float(call.get("routed_scaling_factor", 1.0) or 1.0),
        )

    return interpret


def _interpret_fused_moe(call: CallRecord) -> MoeView | None:
    quant = str(getattr(call.get("quant_type"), "name", call.get("quant_type"))).lower()
    kind = {
        "no": "none",
        "quanttype.no": "none",
        "per_token": "per_token",
        "quanttype.per_token": "per_token",
        "per_1x128": "per_1x128",
        "quanttype.per_1x128": "per_1x128",
    }.get(quant)
    activation = str(getattr(call.get("activation"), "name", call.get("activation"))).lower()
    if kind is None or "silu" not in activation or call.get("shared_w1") is not None:
        return None
    w1, w2 = call["w1"], call["w2"]
    shuffled = bool(getattr(w1, "is_shuffled", False) or getattr(w2, "is_shuffled", False))
    return MoeView(
        call["hidden_states"],
        w1,
        w2,
        call["topk_weight"],
        call["topk_ids"],
        call.result,
        kind,
        call.get("w1_scale"),
        call.get("w2_scale"),
        "silu",
        fp8_read_as=_arch_fp8(call),
        expert_mask=call.get("expert_mask"),
        shuffled=shuffled,
    )


# -- the contracts -----------------------------------------------------------------------------


def _quant(
    target: str,
    backend: str,
    interpret: Callable[..., Any],
    params: tuple[str, ...],
    key: tuple[str, ...],
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


def _gemm(
    target: str,
    backend: str,
    interpret: Callable[..., Any],
    params: tuple[str, ...],
    key: tuple[str, ...],
    asm: bool = False,
    alternative: str | None = None,
    reroute: Callable[..., Any] | None = None,
    depends_on: tuple[str, ...] = (),
    honored: tuple[str, ...] = (),
    description: str = "",
    options: Mapping[str, Any] | None = None,
) -> Contract:
    depends = (
        {name: depends_on for name in ("scale_tensors", "scale_provenance", "gemm_numerics")} if depends_on else {}
    )
    return Contract(
        target=target,
        kind="gemm",
        backend=backend,
        checks=_GEMM_CHECKS,
        key=key,
        interpret=interpret,
        params=params,
        depends=depends,
        asm=asm,
        alternative=alternative,
        reroute=reroute,
        honored=honored,
        description=description,
        options=dict(options or {}),
    )


def _reroute(name: str) -> Callable[..., Any]:
    def reroute(call: CallRecord) -> Any:
        from quantguard.contracts import reroutes

        return getattr(reroutes, name)(call)

    reroute.__name__ = name
    return reroute


_Q = "aiter.ops.quant."
_G8 = "aiter.ops.gemm_op_a8w8."
_G4 = "aiter.ops.gemm_op_a4w4."
_TQ = "aiter.ops.triton.quant."
_TG = "aiter.ops.triton.gemm.basic."

CONTRACTS: list[Contract] = [
    # -- quantization producers (HIP) --
    _quant(
        _Q + "dynamic_per_token_scaled_quant",
        "hip",
        _interpret_per_token_scaled,
        ("out", "input", "scales", "scale_ub", "shuffle_scale", "num_rows", "num_rows_factor"),
        ("out", "input", "scales+", "scale_ub?", "shuffle_scale="),
        depends_on=("shuffle_scale",),
        relied={"shuffle_scale": "False"},
        honored=("shuffle_scale", "scale_ub"),
        description="per-token (or per-group for 32/64/128-wide views) dynamic quant into out/scales",
    ),
    _quant(
        _Q + "dynamic_per_group_scaled_quant",
        "hip",
        _interpret_per_group_scaled,
        ("out", "input", "scales", "group_size", "shuffle_scale", "num_rows", "num_rows_factor"),
        ("out", "input", "scales+", "group_size=", "shuffle_scale="),
        depends_on=("group_size", "shuffle_scale"),
        relied={"shuffle_scale": "True", "group_size": "32"},
        honored=("shuffle_scale", "group_size"),
        description="per-group quant; e8m0 (MX swizzle when shuffled, group 32) or fp32 scales",
    ),
    _quant(
        _Q + "dynamic_per_tensor_quant",
        "hip",
        _per_tensor("out", "input", "scale", False),
        ("out", "input", "scale"),
        ("out", "input", "scale"),
        description="dynamic per-tensor quant",
    ),
    _quant(
        _Q + "static_per_tensor_quant",
        "hip",
        _per_tensor("out", "input", "scale", True),
        ("out", "input", "scale"),
        ("out", "input", "scale"),
        description="static per-tensor quant with a given scale",
    ),
    _quant(
        _Q + "per_token_quant_hip",
        "hip",
        _interpret_per_token_hip,
        ("x", "scale", "quant_dtype", "num_rows", "num_rows_factor"),
        ("x", "scale?", "quant_dtype="),
        honored=("quant_dtype",),
        description="per-token quant returning (y, scale (M, 1))",
    ),
    _quant(
        _Q + "per_group_quant_hip",
        "hip",
        _interpret_per_group_hip,
        ("x", "scale", "quant_dtype", "group_size", "transpose_scale", "num_rows", "num_rows_factor", "scale_type"),
        ("x", "scale?", "quant_dtype=", "group_size=", "transpose_scale=", "scale_type="),
        depends_on=("transpose_scale", "group_size", "scale_type"),
        relied={"transpose_scale": "False", "group_size": "128"},
        honored=("transpose_scale", "group_size", "quant_dtype", "scale_type"),
        description="per-group quant; transpose_scale=True returns (M, G) whose bytes are (G, M)",
    ),
    _quant(
        _Q + "per_1x32_mx_quant_hip",
        "hip",
        _interpret_mx_hip,
        ("x", "scale", "quant_dtype", "shuffle", "num_rows", "num_rows_factor", "scale_type"),
        ("x", "scale?", "quant_dtype=", "shuffle=", "scale_type="),
        depends_on=("shuffle", "quant_dtype"),
        relied={"shuffle": "False"},
        honored=("shuffle", "quant_dtype", "scale_type"),
        description="MX 1x32 quant (fp4x2 or fp8) with e8m0 scales, MX-swizzled when shuffle=True",
    ),
    _quant(
        _Q + "per_1x32_f4_quant_hip",
        "hip",
        _interpret_mx_hip,
        ("x", "scale", "quant_dtype", "shuffle", "num_rows", "num_rows_factor"),
        ("x", "scale?", "quant_dtype=", "shuffle="),
        depends_on=("shuffle",),
        relied={"shuffle": "False"},
        honored=("shuffle",),
        description="MXFP4 quant (fp4-only wrapper)",
    ),
    _quant(
        _Q + "per_tensor_quant_hip",
        "hip",
        _interpret_per_tensor_hip,
        ("x", "scale", "quant_dtype", "num_rows", "num_rows_factor"),
        ("x", "scale?", "quant_dtype="),
        honored=("scale", "quant_dtype"),
        description="per-tensor quant (static when scale is given)",
    ),
    _quant(
        _Q + "pertoken_quant",
        "torch",
        _interpret_pertoken_torch,
        ("x", "scale", "x_scale", "scale_dtype", "quant_dtype", "dtypeMax"),
        ("x", "scale?", "x_scale?", "scale_dtype=", "quant_dtype=", "dtypeMax="),
        honored=("x_scale", "quant_dtype", "dtypeMax"),
        description="torch reference per-token quant",
    ),
    # -- quantization producers (Triton) --
    _quant(
        _TQ + "quant.dynamic_per_token_quant_fp8_i8",
        "triton",
        _interpret_per_token_out,
        ("qx", "x_in", "scale_out"),
        ("qx", "x_in", "scale_out+"),
        description="Triton per-token quant",
    ),
    _quant(
        _TQ + "quant.dynamic_per_tensor_quant_fp8_i8",
        "triton",
        _per_tensor("qx", "x_in", "scale_out", False),
        ("qx", "x_in", "scale_out"),
        ("qx", "x_in", "scale_out"),
        description="Triton per-tensor quant",
    ),
    _quant(
        _TQ + "quant.static_per_tensor_quant_fp8_i8",
        "triton",
        _per_tensor("qx", "x_in", "scale_in", True),
        ("qx", "x_in", "scale_in"),
        ("qx", "x_in", "scale_in"),
        description="Triton static per-tensor quant",
    ),
    _quant(
        _TQ + "quant.dynamic_mxfp4_quant",
        "triton",
        _interpret_dynamic_mxfp4,
        ("x", "scaling_mode"),
        ("x", "scaling_mode="),
        depends_on=("scaling_mode",),
        relied={"scaling_mode": "even"},
        honored=("scaling_mode",),
        description="Triton MXFP4 quant; e8m0 rounding from scaling_mode",
    ),
    _quant(
        _TQ + "fused_fp8_quant.fused_flatten_fp8_group_quant",
        "triton",
        _interpret_flatten_group,
        ("x", "group_size", "dtype_quant", "transpose_scale"),
        ("x", "group_size=", "dtype_quant=", "transpose_scale="),
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
        key=("out", "input", "num_rows"),
        interpret=_interpret_partial_transpose,
        params=("out", "input", "num_rows"),
        honored=("num_rows",),
        description="transposes the first num_rows rows of MoE scales into out",
    ),
    Contract(
        target="aiter.ops.shuffle.shuffle_weight",
        kind="transform",
        backend="torch",
        checks=("noop_transform", "provenance_record"),
        key=("x", "layout="),
        interpret=_interpret_shuffle_weight,
        description="16x16 weight preshuffle for bpreshuffle kernels",
    ),
    # -- a8w8 GEMMs --
    _gemm(
        _G8 + "gemm_a8w8",
        "ck",
        _a8w8("plain"),
        ("XQ", "WQ", "x_scale", "w_scale", "bias", "dtype", "splitK"),
        ("XQ", "WQ@", "x_scale+", "w_scale@", "bias?", "dtype="),
        description="per-token a8w8 GEMM (CK; may dispatch internally)",
    ),
    _gemm(
        _G8 + "gemm_a8w8_CK",
        "ck",
        _a8w8("plain"),
        ("XQ", "WQ", "x_scale", "w_scale", "bias", "dtype", "splitK"),
        ("XQ", "WQ@", "x_scale+", "w_scale@", "bias?", "dtype="),
        description="per-token a8w8 GEMM (CK)",
    ),
    _gemm(
        _G8 + "gemm_a8w8_ASM",
        "asm",
        _a8w8("preshuffle_32x16"),
        ("XQ", "WQ", "x_scale", "w_scale", "bias", "dtype", "check"),
        ("XQ", "WQ@", "x_scale+", "w_scale@", "bias?", "dtype="),
        asm=True,
        alternative=_TG + "gemm_a8w8.gemm_a8w8",
        reroute=_reroute("a8w8_asm_to_triton"),
        description="per-token a8w8 GEMM (ASM, weight preshuffled with layout (32, 16))",
    ),
    _gemm(
        _G8 + "gemm_a8w8_bpreshuffle",
        "ck",
        _a8w8("preshuffle_16x16"),
        ("XQ", "WQ", "x_scale", "w_scale", "bias", "dtype", "check"),
        ("XQ", "WQ@", "x_scale+", "w_scale@", "bias?", "dtype="),
        alternative=_TG + "gemm_a8w8.gemm_a8w8",
        description="per-token a8w8 GEMM, preshuffled weight (CK)",
    ),
    _gemm(
        _G8 + "gemm_a8w8_blockscale",
        "ck",
        _interpret_blockscale,
        ("XQ", "WQ", "x_scale", "w_scale", "dtype", "isBpreshuffled"),
        ("XQ", "WQ@", "x_scale+", "w_scale@", "dtype=", "isBpreshuffled="),
        depends_on=("isBpreshuffled",),
        alternative=_TG + "gemm_a8w8_blockscale.gemm_a8w8_blockscale",
        description="1x128/128x128 blockscale GEMM, row-major x_scale",
        # isBpreshuffled=True dispatches to gfx950_a8w8_blockscale_ASM (guarded by its own contract), not CK.
        options={"not_ck_when": ("isBpreshuffled",)},
    ),
    _gemm(
        _G8 + "gemm_a8w8_blockscale_bpreshuffle",
        "ck",
        _interpret_blockscale_bpreshuffle,
        ("XQ", "WQ", "x_scale", "w_scale", "dtype", "out"),
        ("XQ", "WQ@", "x_scale+", "w_scale@", "dtype=", "out?"),
        alternative=_TG + "gemm_a8w8_blockscale.gemm_a8w8_blockscale_preshuffle",
        description="blockscale GEMM with preshuffled weight and transposed x_scale",
    ),
    _gemm(
        _G8 + "flatmm_a8w8_blockscale_ASM",
        "asm",
        _interpret_flatmm_asm,
        ("XQ", "WQ", "x_scale", "w_scale", "dtype"),
        ("XQ", "WQ@", "x_scale+", "w_scale@", "dtype="),
        asm=True,
        alternative=_TG + "gemm_a8w8_blockscale.gemm_a8w8_blockscale",
        reroute=_reroute("flatmm_asm_to_triton"),
        description="blockscale flat GEMM (ASM, fp16 out; scales (K/128, M)/(K/128, N/128), weight shuffled (16, 32))",
    ),
    _gemm(
        _G8 + "gemm_a8w8_blockscale_bpreshuffle_asm",
        "asm",
        _interpret_blockscale_bpreshuffle_asm,
        ("A", "B", "out", "A_scale", "B_scale", "bias", "splitK", "kernelName", "bpreshuffle", "zero_bias_buf"),
        ("A", "B@", "out", "A_scale+", "B_scale@", "bias?"),
        asm=True,
        alternative=_TG + "gemm_a8w8_blockscale.gemm_a8w8_blockscale_preshuffle",
        reroute=_reroute("blockscale_bpreshuffle_asm_to_triton"),
        description="blockscale GEMM (ASM; reached by tuned config from the bpreshuffle entry)",
    ),
    _gemm(
        _G8 + "gfx950_a8w8_blockscale_ASM",
        "asm",
        _interpret_gfx950_blockscale_asm,
        ("XQ", "WQ", "x_scale", "w_scale", "Y", "dtype"),
        ("XQ", "WQ@", "x_scale+", "w_scale@", "Y"),
        asm=True,
        alternative=_TG + "gemm_a8w8_blockscale.gemm_a8w8_blockscale_preshuffle",
        reroute=_reroute("gfx950_blockscale_asm_to_triton"),
        description="gfx950 blockscale ASM reached from gemm_a8w8_blockscale(isBpreshuffled=True)",
    ),
    # -- a4w4 GEMMs --
    _gemm(
        _G4 + "gemm_a4w4",
        "asm",
        _interpret_a4w4,
        (
            "A",
            "B",
            "A_scale",
            "B_scale",
            "bias",
            "dtype",
            "alpha",
            "beta",
            "bpreshuffle",
            "apreshuffle",
            "global_A_scale",
            "global_B_scale",
        ),
        ("A", "B@", "A_scale+", "B_scale@", "bias?", "dtype=", "alpha=", "beta=", "bpreshuffle="),
        alternative=_TG + "gemm_afp4wfp4.gemm_afp4wfp4_preshuffle",
        description="MXFP4 GEMM; dispatches to ASM gemm_a4w4_asm unless a CK config exists",
    ),
    _gemm(
        _G4 + "gemm_a4w4_asm",
        "asm",
        _interpret_a4w4_asm,
        ("A", "B", "A_scale", "B_scale", "out", "kernelName", "bias", "alpha", "beta", "bpreshuffle", "log2_k_split"),
        ("A", "B@", "A_scale+", "B_scale@", "out", "bias?", "alpha=", "beta=", "bpreshuffle="),
        asm=True,
        alternative=_TG + "gemm_afp4wfp4.gemm_afp4wfp4_preshuffle",
        description="MXFP4 GEMM (ASM)",
    ),
    # -- Triton GEMMs --
    _gemm(
        _TG + "gemm_a8w8.gemm_a8w8",
        "triton",
        _interpret_triton_a8w8,
        ("x", "w", "x_scale", "w_scale", "bias", "dtype", "y", "config", "skip_reduce"),
        ("x", "w@", "x_scale+", "w_scale@", "bias?", "dtype=", "y?"),
        description="Triton per-token a8w8 GEMM",
    ),
    _gemm(
        _TG + "gemm_a8w8_blockscale.gemm_a8w8_blockscale",
        "triton",
        _interpret_triton_blockscale,
        ("x", "w", "x_scale", "w_scale", "dtype", "y", "config", "skip_reduce", "kernel_type", "backend"),
        ("x", "w@", "x_scale+", "w_scale@", "dtype=", "y?"),
        description="Triton blockscale GEMM",
    ),
    _gemm(
        _TG + "gemm_a8w8_blockscale.gemm_a8w8_blockscale_preshuffle",
        "triton",
        _interpret_triton_blockscale_preshuffle,
        (
            "x",
            "w",
            "x_scale",
            "w_scale",
            "dtype",
            "y",
            "config",
            "skip_reduce",
            "is_x_scale_tranposed",
            "kernel_type",
            "backend",
        ),
        ("x", "w@", "x_scale+", "w_scale@", "dtype=", "y?", "is_x_scale_tranposed="),
        depends_on=("is_x_scale_tranposed",),
        honored=("is_x_scale_tranposed",),
        description="Triton blockscale GEMM on a preshuffled (N/16, K*16) weight",
    ),
    _gemm(
        _TG + "gemm_afp4wfp4.gemm_afp4wfp4",
        "triton",
        _interpret_afp4wfp4,
        ("x", "w", "x_scales", "w_scales", "dtype", "y", "config", "skip_reduce"),
        ("x", "w@", "x_scales+", "w_scales@", "dtype=", "y?"),
        description="Triton MXFP4 GEMM",
    ),
    _gemm(
        _TG + "gemm_afp4wfp4.gemm_afp4wfp4_preshuffle",
        "triton",
        _interpret_afp4wfp4_preshuffle,
        ("x_fp4", "w_preshuf", "x_scales", "w_scales", "dtype", "y", "config", "skip_reduce"),
        ("x_fp4", "w_preshuf@", "x_scales+", "w_scales@", "dtype=", "y?"),
        description="Triton MXFP4 GEMM on preshuffled weight and scales",
    ),
    _gemm(
        "aiter.ops.triton.gemm.batched.batched_gemm_a8w8_a_per_token_group_prequant_w_per_batched_tensor_quant"
        ".batched_gemm_a8w8_a_per_token_group_prequant_w_per_batched_tensor_quant",
        "triton",
        _interpret_batched_prequant,
        (
            "X",
            "WQ",
            "w_scale",
            "group_size",
            "bias",
            "dtype",
            "splitK",
            "YQ",
            "transpose_bm",
            "transpose_bm_in",
            "config",
        ),
        ("X", "WQ@", "w_scale@", "group_size=", "bias?", "dtype=", "YQ?", "transpose_bm=", "transpose_bm_in="),
        honored=("group_size", "transpose_bm", "transpose_bm_in"),
        description="MLA batched GEMM quantizing X per token-group inside the kernel",
    ),
    _gemm(
        "aiter.tuned_gemm:tgemm.mm",
        "hipblaslt",
        _interpret_tgemm,
        ("inp", "weights", "bias", "otype", "scale_a", "scale_b", "scale_c"),
        ("inp", "weights@", "bias?", "otype=", "scale_a?", "scale_b?"),
        honored=("scale_a", "scale_b", "bias"),
        description="hipBLASLt GEMM (per-tensor scaled when given fp8 inputs)",
    ),
    # -- MoE --
    Contract(
        target="aiter.fused_moe.fused_moe",
        kind="moe",
        backend="ck",
        checks=("ck_free_backend", "fp8_variant", "moe_numerics", "nonfinite"),
        key=("hidden_states", "w1@", "w2@", "topk_weight", "topk_ids", "quant_type="),
        interpret=_interpret_fused_moe,
        description="fused MoE (top-k weighted sum of SiLU experts)",
    ),
    Contract(
        target="aiter.ops.topk.biased_grouped_topk",
        kind="routing",
        backend="hip",
        checks=("routing_scale", "ignored_parameter"),
        key=(
            "gating_output",
            "correction_bias?",
            "topk_weights",
            "topk_ids",
            "num_expert_group=",
            "topk_group=",
            "need_renorm=",
            "routed_scaling_factor=",
        ),
        interpret=_routing("sigmoid"),
        honored=("routed_scaling_factor", "need_renorm"),
        params=(
            "gating_output",
            "correction_bias",
            "topk_weights",
            "topk_ids",
            "num_expert_group",
            "topk_group",
            "need_renorm",
            "routed_scaling_factor",
        ),
        depends={"routing_scale": ("routed_scaling_factor", "need_renorm")},
        description="DeepSeek routing: sigmoid + bias grouped top-k, weights x routed_scaling_factor",
    ),
    Contract(
        target="aiter.ops.topk.grouped_topk",
        kind="routing",
        backend="hip",
        checks=("routing_scale", "ignored_parameter"),
        key=(
            "gating_output",
            "topk_weights",
            "topk_ids",
            "num_expert_group=",
            "topk_group=",
            "need_renorm=",
            "is_softmax=",
            "routed_scaling_factor=",
        ),
        interpret=_routing(None),
        honored=("routed_scaling_factor", "need_renorm", "is_softmax"),
        description="grouped top-k routing, weights x routed_scaling_factor",
    ),
    Contract(
        target="aiter.ops.topk.topk_gating",
        kind="routing",
        backend="hip",
        checks=("routing_scale", "ignored_parameter"),
        key=(
            "topk_weights",
            "topk_indices",
            "gating_output",
            "correction_bias?",
            "need_renorm=",
            "routed_scaling_factor=",
            "score_func=",
        ),
        interpret=_routing(None),
        honored=("routed_scaling_factor", "need_renorm", "score_func"),
        description="unified top-k gating, weights x routed_scaling_factor",
    ),
    # -- build system --
    Contract(
        target="aiter.jit.core.build_module",
        kind="jit",
        backend="hip",
        checks=("jit_exit",),
        description="JIT module builder: a SystemExit here must become RuntimeError",
    ),
]
