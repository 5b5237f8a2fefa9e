"""Scale tensors at GEMM boundaries: shape, dtype and memory layout (``scale_shape``, ``scale_dtype``, ``scale_layout``).

A plan check: it reads metadata only, so its verdict is cached per signature.
What each kernel expects comes from the contract's view:

* per-token: x_scale ``(M, 1)``, w_scale ``(N, 1)`` (or one value);
* block: x_scale ``(M, ceil(K/128))``, w_scale ``(ceil(N/128), ceil(K/128))``;
* MX: e8m0 ``(M, ceil(K/32))``, or the padded ``(pad256(M), pad8(G))`` buffer
  when the kernel reads the MX swizzle;
* kernels that read raw memory need a dense buffer in the layout they read:
  a column-major *view* handed to a row-major kernel is read transposed.

Weights are checked too (same K, matching element family, preshuffle
divisibility), and the output dtype against what the kernel can produce.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch

from quantguard.checks._common import dtype_name
from quantguard.checks.base import Finding, PlanCheck, register_check
from quantguard.contracts.views import GemmView
from quantguard.numerics.layouts import pad_to

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.calls import CallRecord

__all__ = ["ScaleTensors"]


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _shape(tensor: Any) -> list[int]:
    return list(tensor.shape)


def _is_e8m0_like(dtype: torch.dtype) -> bool:
    return dtype in (torch.uint8, torch.float8_e8m0fnu)


@register_check
class ScaleTensors(PlanCheck):
    name = "scale_tensors"
    reports = ("scale_shape", "scale_dtype", "scale_layout", "weight_layout", "gemm_shape")
    summary = "x_scale/w_scale shapes, dtypes and layouts against what the kernel reads"

    def check(self, call: CallRecord) -> Iterable[Finding]:
        view = call.view
        if not isinstance(view, GemmView):
            return []
        findings: list[Finding] = []
        findings += [replace(f, variant="operands") for f in self._operands(view)]
        if view.scheme != "batched_prequant":
            findings += [replace(f, variant="x_scale") for f in self._x_scale(view)]
        findings += [replace(f, variant="w_scale") for f in self._w_scale(view)]
        if view.allowed_out_dtypes and view.out_dtype is not None and view.out_dtype not in view.allowed_out_dtypes:
            findings.append(
                Finding(
                    "scale_dtype",
                    f"output dtype {dtype_name(view.out_dtype)} is not produced by "
                    f"{view.kernel} (accepted: {', '.join(dtype_name(d) for d in view.allowed_out_dtypes)})",
                    details={"out_dtype": dtype_name(view.out_dtype)},
                )
            )
        return findings

    def _operands(self, view: GemmView) -> list[Finding]:
        findings = []
        x, w = view.x, view.w
        width = int(x.shape[-1])
        if w is not None and int(w.shape[-1]) != width:
            findings.append(
                Finding(
                    "gemm_shape",
                    f"x has K={width} per row but w has {int(w.shape[-1])}",
                    details={"x_shape": _shape(x), "w_shape": _shape(w)},
                )
            )
        if w is not None and x.element_size() == 1 and w.element_size() == 1 and view.scheme != "batched_prequant":
            x_int, w_int = x.dtype == torch.int8, w.dtype == torch.int8
            if x_int != w_int:
                findings.append(
                    Finding(
                        "scale_dtype",
                        f"x is {dtype_name(x.dtype)} but w is {dtype_name(w.dtype)}: "
                        "int8 and fp8 operands cannot be mixed",
                        details={"x_dtype": dtype_name(x.dtype), "w_dtype": dtype_name(w.dtype)},
                    )
                )
        layout = view.shuffle_layout
        if layout is not None and w is not None:
            n, k_bytes = int(w.shape[-2]), int(w.shape[-1])
            if n % layout[0] or k_bytes % (2 * layout[1]):
                findings.append(
                    Finding(
                        "weight_layout",
                        f"a weight preshuffled with layout {layout} needs N % {layout[0]} "
                        f"== 0 and K % {2 * layout[1]} == 0; w is {_shape(w)}",
                        details={"w_shape": _shape(w), "layout": list(layout)},
                    )
                )
        return findings

    def _x_scale(self, view: GemmView) -> list[Finding]:
        scale = view.x_scale
        findings: list[Finding] = []
        details = {
            "x_scale_shape": _shape(scale) if scale is not None else None,
            "x_scale_stride": list(scale.stride()) if scale is not None else None,
            "x_scale_dtype": dtype_name(scale.dtype) if scale is not None else None,
            "m": view.m,
            "k": view.k,
            "scheme": view.scheme,
            "expected_layout": view.x_scale_layout,
        }
        if scale is None:
            if view.scheme != "per_tensor":
                findings.append(Finding("scale_shape", "x_scale is missing", details=details))
            return findings
        m, k = view.m, view.k
        if view.scheme in ("per_token", "per_tensor"):
            if scale.numel() not in (m, 1):
                findings.append(
                    Finding(
                        "scale_shape",
                        f"x_scale has {scale.numel()} values {_shape(scale)}; "
                        f"{view.kernel} reads one per row (M={m}) or one per tensor",
                        details=details,
                    )
                )
        elif view.scheme == "block":
            groups = _cdiv(k, view.block_k)
            if scale.dim() != 2 or tuple(scale.shape) != (m, groups):
                findings.append(
                    Finding(
                        "scale_shape",
                        f"x_scale is {_shape(scale)}; expected (M, ceil(K/{view.block_k})) = ({m}, {groups})",
                        details=details,
                    )
                )
        elif view.scheme == "mx":
            groups = _cdiv(k, view.mx_group)
            needed = pad_to(m, 256) * pad_to(groups, 8) if view.x_scale_layout == "mx_swizzle" else m * groups
            if scale.numel() < needed:
                findings.append(
                    Finding(
                        "scale_shape",
                        f"x_scale has {scale.numel()} bytes {_shape(scale)}; the "
                        f"{view.x_scale_layout} layout for M={m}, K={k} needs {needed}",
                        details=details,
                    )
                )
        findings += self._dtype("x_scale", scale, view, details)
        findings += self._layout(view, scale, details)
        return findings

    def _dtype(self, name: str, scale: Any, view: GemmView, details: dict[str, Any]) -> list[Finding]:
        if view.scheme == "mx":
            if not _is_e8m0_like(scale.dtype):
                return [
                    Finding(
                        "scale_dtype",
                        f"{name} is {dtype_name(scale.dtype)}; MX kernels read e8m0 bytes (float8_e8m0fnu or uint8)",
                        details=details,
                    )
                ]
            return []
        accepted = view.x_scale_dtypes or (torch.float32,)
        if scale.dtype not in accepted:
            return [
                Finding(
                    "scale_dtype",
                    f"{name} is {dtype_name(scale.dtype)}; {view.kernel} reads "
                    f"{' or '.join(dtype_name(d) for d in accepted)}",
                    details=details,
                )
            ]
        return []

    def _layout(self, view: GemmView, scale: Any, details: dict[str, Any]) -> list[Finding]:
        if scale.dim() != 2 or scale.shape[0] <= 1 or scale.shape[1] <= 1:
            return []
        expected = view.x_scale_layout
        transposed_view = scale.stride(0) == 1 and scale.stride(1) == scale.shape[0]
        contiguous = scale.is_contiguous()
        if expected == "logical" or expected == "kernel_specific":
            return []
        if expected == "row_major" and not contiguous:
            kind = "a column-major view" if transposed_view else "a non-contiguous view"
            return [
                Finding(
                    "scale_layout",
                    f"x_scale is {kind} (strides {list(scale.stride())}); {view.kernel} reads "
                    "row-major (M, G) memory and ignores strides",
                    details=details,
                )
            ]
        if expected == "transposed" and not contiguous and not (transposed_view and view.x_scale_strided_ok):
            return [
                Finding(
                    "scale_layout",
                    f"x_scale has strides {list(scale.stride())}; {view.kernel} reads "
                    "(G, M) memory: pass a contiguous (M, G) tensor holding (G, M) bytes"
                    + (" or a view with stride(0) == 1" if view.x_scale_strided_ok else ""),
                    details=details,
                )
            ]
        return []

    def _w_scale(self, view: GemmView) -> list[Finding]:
        scale, w = view.w_scale, view.w
        if w is None:
            return []
        details = {
            "w_scale_shape": _shape(scale) if scale is not None else None,
            "w_scale_dtype": dtype_name(scale.dtype) if scale is not None else None,
            "w_shape": _shape(w),
            "n": view.n,
            "k": view.k,
            "scheme": view.scheme,
        }
        if scale is None:
            return [Finding("scale_shape", "w_scale is missing", details=details)]
        n, k = view.n, view.k
        findings = []
        if view.scheme in ("per_token", "per_tensor"):
            if scale.numel() not in (n, 1):
                findings.append(
                    Finding(
                        "scale_shape",
                        f"w_scale has {scale.numel()} values {_shape(scale)}; expected "
                        f"one per output channel (N={n}) or one per tensor",
                        details=details,
                    )
                )
        elif view.scheme == "batched_prequant":
            if scale.numel() not in (1, view.batch or 1):
                findings.append(
                    Finding(
                        "scale_shape",
                        f"w_scale has {scale.numel()} values; expected one per tensor (or per batch element)",
                        details=details,
                    )
                )
        elif view.scheme == "block":
            expected = (_cdiv(n, view.block_n), _cdiv(k, view.block_k))
            if scale.dim() != 2 or tuple(scale.shape) != expected:
                findings.append(
                    Finding(
                        "scale_shape",
                        f"w_scale is {_shape(scale)}; expected (ceil(N/{view.block_n}), "
                        f"ceil(K/{view.block_k})) = {expected}",
                        details=details,
                    )
                )
        elif view.scheme == "mx":
            groups = _cdiv(k, view.mx_group)
            needed = pad_to(n, 256) * pad_to(groups, 8) if view.w_scale_layout == "mx_swizzle" else n * groups
            if scale.numel() < needed:
                findings.append(
                    Finding(
                        "scale_shape",
                        f"w_scale has {scale.numel()} bytes {_shape(scale)}; the "
                        f"{view.w_scale_layout} layout for N={n}, K={k} needs {needed}",
                        details=details,
                    )
                )
        if view.scheme == "mx":
            findings += self._dtype("w_scale", scale, view, details)
        elif scale.dtype not in (view.x_scale_dtypes or (torch.float32,)) + (torch.float32,):
            findings.append(
                Finding(
                    "scale_dtype", f"w_scale is {dtype_name(scale.dtype)}; {view.kernel} reads float32", details=details
                )
            )
        return findings
