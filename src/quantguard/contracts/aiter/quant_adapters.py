"""How AITER's plain quantization producers read: which tensor is the input, what layout each kwarg requests.

Each adapter turns a call into a :class:`QuantView` (the high-precision
input, the quantized output and its scales, the element format, the scale
layout and e8m0 rounding the call asked for), encoding AITER's semantics:

* ``dynamic_per_token_scaled_quant`` has two regimes: when the input's last
  dim is 32/64/128 and the output is fp8/fp4 it is a per-group quant whose
  group ``(m, g)`` goes to flat ``g*M + m`` under ``shuffle_scale``.
* ``per_group_quant_hip(transpose_scale=True)`` returns a contiguous
  ``(M, G)`` tensor whose bytes are ``(G, M)``: strides lie, provenance tells.
* HIP producers round e8m0 with RoundUp; Triton ``dynamic_mxfp4_quant`` with
  its ``scaling_mode`` argument (default Even).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from quantguard.contracts.aiter._common import (
    element_of,
    flag,
    fp8_or_none,
    group_request,
    is_e8m0,
    is_fp4,
    load_torch,
    result_at,
    rows2d,
)
from quantguard.contracts.views import QuantView

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.calls import CallRecord

__all__ = [
    "dynamic_mxfp4",
    "flatten_group",
    "mx_hip",
    "per_group_hip",
    "per_group_scaled",
    "per_tensor",
    "per_tensor_hip",
    "per_token_hip",
    "per_token_out",
    "per_token_scaled",
    "pertoken_torch",
]


def per_token_scaled(call: CallRecord) -> QuantView | None:
    """``dynamic_per_token_scaled_quant``: per-token, or per-group when input's last dim is 32/64/128."""
    out, x, scales = call["out"], call["input"], call["scales"]
    shuffle = flag(call.get("shuffle_scale"))
    width = int(x.shape[-1])
    packed = is_fp4(out.dtype) or (out.dtype == load_torch().uint8)
    grouped = (
        width in (32, 64, 128)
        and (packed or element_of(out.dtype) is not None and element_of(out.dtype).family == "fp8")
        and int(out.shape[-1]) * (2 if packed else 1) != width
    )
    if grouped:
        rows = int(out.reshape(-1, out.shape[-1]).shape[0])
        x2d = x.reshape(rows, -1)
        layout = "transposed" if shuffle else "row_major"
        return QuantView(
            call.target,
            x2d,
            rows2d(out),
            scales,
            element_of(out.dtype, packed),
            q_read_as=fp8_or_none(out.dtype),
            group=width,
            encoding="fp32",
            requested_layout=layout,
            request=group_request("shuffle_scale", shuffle),
            alternatives=("row_major", "transposed"),
            valid_rows=call.get("num_rows"),
            scale_upper_bound=call.get("scale_ub"),
            packed_fp4=packed,
        )
    return QuantView(
        call.target,
        rows2d(x),
        rows2d(out),
        scales,
        element_of(out.dtype, packed),
        q_read_as=fp8_or_none(out.dtype),
        group=None,
        encoding="fp32",
        valid_rows=call.get("num_rows"),
        scale_upper_bound=call.get("scale_ub"),
        packed_fp4=packed,
    )


def _e8m0_request(shuffle: bool, group: int) -> str:
    if not shuffle:
        return "row_major"
    return "mx_swizzle" if group == 32 else "transposed"


def per_group_scaled(call: CallRecord) -> QuantView | None:
    """``dynamic_per_group_scaled_quant``: scale dtype picks e8m0 vs fp32; fp4 output is always e8m0."""
    out, x, scales = call["out"], call["input"], call["scales"]
    group = int(call.get("group_size") or 32)
    shuffle = flag(call.get("shuffle_scale"))
    packed = is_fp4(out.dtype) or (out.dtype == load_torch().uint8)
    e8m0 = packed or is_e8m0(scales.dtype) or scales.dtype == load_torch().uint8
    layout = _e8m0_request(shuffle, group) if e8m0 else ("transposed" if shuffle else "row_major")
    return QuantView(
        call.target,
        rows2d(x),
        rows2d(out),
        scales,
        element_of(out.dtype, packed),
        q_read_as=fp8_or_none(out.dtype),
        group=group,
        encoding="e8m0" if e8m0 else "fp32",
        requested_layout=layout,
        request=group_request("shuffle_scale", shuffle),
        alternatives=("row_major", "transposed", "padded", "mx_swizzle"),
        rounding="up" if e8m0 else None,
        rounding_source="the HIP quant kernels' default",
        valid_rows=call.get("num_rows"),
        packed_fp4=packed,
    )


def per_tensor(out_name: str, input_name: str, scale_name: str, static: bool) -> Callable[..., QuantView]:
    """Per-tensor producers writing into ``out`` (HIP: out/input/scale; Triton: qx/x_in/scale_*)."""

    def interpret(call: CallRecord) -> QuantView:
        out = call[out_name]
        return QuantView(
            call.target,
            rows2d(call[input_name]),
            rows2d(out),
            call[scale_name],
            element_of(out.dtype),
            q_read_as=fp8_or_none(out.dtype),
            group=0,
            static=static,
        )

    return interpret


def per_token_out(call: CallRecord) -> QuantView | None:
    """Triton ``dynamic_per_token_quant_fp8_i8(qx, x_in, scale_out)``: row scales, written by strides."""
    out, x, scale = call["qx"], call["x_in"], call["scale_out"]
    return QuantView(
        call.target, rows2d(x), rows2d(out), scale, element_of(out.dtype), q_read_as=fp8_or_none(out.dtype), group=None
    )


def per_token_hip(call: CallRecord) -> QuantView | None:
    y, scale = result_at(call, 0), result_at(call, 1)
    if y is None:
        return None
    return QuantView(
        call.target,
        rows2d(call["x"]),
        rows2d(y),
        scale,
        element_of(y.dtype),
        q_read_as=fp8_or_none(y.dtype),
        group=None,
        valid_rows=call.get("num_rows"),
    )


def per_group_hip(call: CallRecord) -> QuantView | None:
    """``per_group_quant_hip``: ``transpose_scale`` becomes ``shuffle_scale`` of the kernel it calls."""
    y, scale = result_at(call, 0), result_at(call, 1)
    if y is None:
        return None
    group = int(call.get("group_size") or 128)
    transpose = flag(call.get("transpose_scale"))
    e8m0 = is_e8m0(scale.dtype)
    layout = _e8m0_request(transpose, group) if e8m0 else ("transposed" if transpose else "row_major")
    return QuantView(
        call.target,
        rows2d(call["x"]),
        rows2d(y),
        scale,
        element_of(y.dtype),
        q_read_as=fp8_or_none(y.dtype),
        group=group,
        encoding="e8m0" if e8m0 else "fp32",
        requested_layout=layout,
        request=group_request("transpose_scale", transpose),
        alternatives=("row_major", "transposed"),
        rounding="up" if e8m0 else None,
        rounding_source="the HIP quant kernels' default",
        valid_rows=call.get("num_rows"),
    )


def mx_hip(call: CallRecord) -> QuantView | None:
    """``per_1x32_mx_quant_hip``: fp4 → e8m0 (MX-swizzled when ``shuffle``); fp8 → fp32 unless scale_type."""
    y, scale = result_at(call, 0), result_at(call, 1)
    if y is None:
        return None
    packed = is_fp4(y.dtype) or y.dtype == load_torch().uint8
    shuffle = flag(call.get("shuffle"))
    e8m0 = packed or is_e8m0(scale.dtype) or scale.dtype == load_torch().uint8
    layout = _e8m0_request(shuffle, 32) if e8m0 else "row_major"
    return QuantView(
        call.target,
        rows2d(call["x"]),
        rows2d(y),
        scale,
        element_of(y.dtype, packed),
        q_read_as=fp8_or_none(y.dtype),
        group=32,
        encoding="e8m0" if e8m0 else "fp32",
        requested_layout=layout,
        request=group_request("shuffle", shuffle),
        alternatives=("row_major", "padded", "transposed", "mx_swizzle"),
        rounding="up" if e8m0 else None,
        rounding_source="the HIP quant kernels' default",
        valid_rows=call.get("num_rows"),
        packed_fp4=packed,
    )


def per_tensor_hip(call: CallRecord) -> QuantView | None:
    y, scale = result_at(call, 0), result_at(call, 1)
    if y is None:
        return None
    return QuantView(
        call.target,
        rows2d(call["x"]),
        rows2d(y),
        scale,
        element_of(y.dtype),
        q_read_as=fp8_or_none(y.dtype),
        group=0,
        static=call.get("scale") is not None,
    )


def pertoken_torch(call: CallRecord) -> QuantView | None:
    """Torch reference ``pertoken_quant``: scale 1 for all-zero rows, optional smooth scale."""
    y, scale = result_at(call, 0), result_at(call, 1)
    if y is None:
        return None
    view = QuantView(
        call.target,
        rows2d(call["x"]),
        rows2d(y),
        scale,
        element_of(y.dtype),
        q_read_as=fp8_or_none(y.dtype),
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


def dynamic_mxfp4(call: CallRecord) -> QuantView | None:
    """Triton ``dynamic_mxfp4_quant(x, scaling_mode)``: e8m0 rounding comes from the argument."""
    q, scale = result_at(call, 0), result_at(call, 1)
    if q is None:
        return None
    mode_text = str(call.get("scaling_mode") or "even").lower()
    return QuantView(
        call.target,
        rows2d(call["x"]),
        rows2d(q),
        scale,
        element_of(None, True),
        group=32,
        encoding="e8m0",
        requested_layout="logical",
        rounding=_SCALING_MODES.get(mode_text),
        rounding_source=f"scaling_mode={mode_text!r}",
        packed_fp4=True,
    )


def flatten_group(call: CallRecord) -> QuantView | None:
    """Triton ``fused_flatten_fp8_group_quant``: (M, N1, N2) → (M, N1*N2); ``transpose_scale`` → (G, M) memory."""
    q, scale = result_at(call, 0), result_at(call, 1)
    if q is None:
        return None
    x = call["x"]
    transpose = flag(call.get("transpose_scale"))
    return QuantView(
        call.target,
        x.reshape(x.shape[0], -1),
        q,
        scale,
        element_of(q.dtype),
        q_read_as=fp8_or_none(q.dtype),
        group=int(call["group_size"]),
        requested_layout="transposed" if transpose else "row_major",
        request=group_request("transpose_scale", transpose),
        alternatives=("row_major", "transposed"),
    )
