"""How AITER's fused norm/activation + quant producers read (facts from AITER e4048607).

ATOM's quantized linear layers mostly receive their activations from fused
producers, not from the plain quant entry points: RMSNorm + quant
(``rmsnorm_quant``, ``add_rmsnorm_quant``, Triton ``fused_rms_*``), SiLU-mul +
quant and the MoE ``downcast_*`` helpers.  Each adapter here returns a
:class:`QuantView` of the *quantized output and its scales* against the
high-precision values the kernel quantized (the normalized or activated
input, recomputed in float32 from the arguments), so the provenance and
quant-numerics checks apply and a consuming GEMM can be checked against the
layout the producer was asked to write.

What each adapter encodes, read from the AITER sources:

* ``rmsnorm_quant``/``add_rmsnorm_quant`` (HIP ``module_rmsnorm_quant``):
  ``group_size=0`` is per-token with fp32 ``(M, 1)`` scales; ``group_size>0``
  writes one scale per group, a 1-byte scale dtype meaning e8m0;
  ``shuffle_scale=True`` means the MX swizzle for e8m0/group 32 and ``(G, M)``
  bytes otherwise (the buffers ATOM allocates for it).  ``add_`` normalizes
  ``input + residual_in``.  ``gemma_norm`` multiplies by ``1 + weight``.
* Triton ``fused_rms_mxfp4_quant``, ``fused_reduce_act_mul_and_mxfp4_quant``
  and MoE ``mxfp4_quant`` use the Even e8m0 rounding of ``_mxfp4_quant_op``
  whatever ``scaling_mode`` says; ``shuffle=True`` writes the MX swizzle into a
  ``(pad256(M), pad8(G))`` buffer, else scales are stored through strides.
* ``downcast_to_mxfp`` rounds e8m0 up (``ceil_pow2(amax / max)``) by default;
  its ``ROUND_DOWN`` mode is not one of the four modes quantguard models, so
  such calls get no view.
* ``fused_reduce_rms_fp8_group_quant(transpose_scale=True)`` returns an
  ``(M, G)`` tensor holding ``(G, M)`` bytes (contiguous, or a stride(0) == 1
  view with ``is_x_scale_strided``).
* Static per-tensor producers (``fused_rms_fp8_per_tensor_static_quant``,
  ``fused_silu_mul_fp8_per_tensor_static_quant``, ``downcast_to_static_fp8``)
  divide by the scale they are given.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from quantguard.contracts.aiter._common import element_of, flag, fp8_or_none, load_torch
from quantguard.contracts.views import QuantView

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.calls import CallRecord

__all__ = [
    "act_mul_mxfp4",
    "downcast_mxfp",
    "moe_mxfp4",
    "qk_rmsnorm_group",
    "reduce_rms_fp8_group",
    "reduce_rms_mxfp4",
    "rms_fp8_static",
    "rms_mxfp4",
    "rms_norm",
    "rmsnorm_quant",
    "silu_mul",
    "silu_mul_fp8_static",
    "static_fp8",
    "torch_per_tensor",
]

_MX_ALTERNATIVES = ("row_major", "padded", "transposed", "mx_swizzle")


def _is_packed_fp4(dtype: Any) -> bool:
    return str(dtype).endswith("float4_e2m1fn_x2") or dtype == load_torch().uint8


def _pair(result: Any) -> tuple[Any, Any]:
    """``(q, scale)`` from results shaped ``(q, scale)`` or ``((q, scale), ...)``."""
    if isinstance(result, (tuple, list)) and result:
        first = result[0]
        if isinstance(first, (tuple, list)) and len(first) >= 2:
            return first[0], first[1]
        if len(result) >= 2:
            return result[0], result[1]
    return None, None


def _first(result: Any) -> Any:
    return result[0] if isinstance(result, (tuple, list)) and result else result


def rms_norm(x: Any, weight: Any, epsilon: float, gemma: bool = False) -> Any:
    """RMSNorm in float32 over the last dim: ``x / rms(x) * w`` (Gemma: ``* (1 + w)``)."""
    torch = load_torch()
    values = x.to(torch.float32)
    normalized = values * torch.rsqrt(values.pow(2).mean(dim=-1, keepdim=True) + float(epsilon))
    scale = weight.to(torch.float32)
    return normalized * (1.0 + scale if gemma else scale)


def _kernel_input(x: Any, residual: Any = None, split_k: bool = False) -> Any:
    """What a fused kernel normalizes or activates, in float32: its split-K partials summed (a 3-D
    input, for the ``fused_reduce_*`` kernels), plus the residual it adds first."""
    torch = load_torch()
    values = x.to(torch.float32)
    if split_k and values.dim() == 3:
        values = values.sum(dim=0)
    return values if residual is None else values + residual.to(torch.float32)


def _rows(tensor: Any) -> Any:
    return tensor.reshape(-1, tensor.shape[-1])


def _group_layout(e8m0: bool, shuffle: bool, group: int) -> str:
    if not shuffle:
        return "row_major"
    return "mx_swizzle" if e8m0 and group == 32 else "transposed"


# -- HIP fused RMSNorm + quant -----------------------------------------------------------------


def rmsnorm_quant(call: CallRecord) -> QuantView | None:
    """``(add_)rmsnorm_quant``: writes ``out``/``scale`` in place; group_size/shuffle_scale pick the layout."""
    out, scale = call["out"], call["scale"]
    x = _kernel_input(call["input"], call.get("residual_in"))
    normalized = rms_norm(_rows(x), call["weight"], call["epsilon"], flag(call.get("gemma_norm")))
    packed = _is_packed_fp4(out.dtype)
    group = int(call.get("group_size") or 0)
    shuffle = flag(call.get("shuffle_scale"))
    request = f"group_size={group}, shuffle_scale={shuffle!r}"
    if group == 0:
        return QuantView(
            call.target,
            normalized,
            _rows(out),
            scale,
            element_of(out.dtype, packed),
            q_read_as=fp8_or_none(out.dtype),
            group=None,
            request=request,
            packed_fp4=packed,
        )
    e8m0 = packed or scale.element_size() == 1
    return QuantView(
        call.target,
        normalized,
        _rows(out),
        scale,
        element_of(out.dtype, packed),
        q_read_as=fp8_or_none(out.dtype),
        group=group,
        encoding="e8m0" if e8m0 else "fp32",
        requested_layout=_group_layout(e8m0, shuffle, group),
        request=request,
        alternatives=_MX_ALTERNATIVES if e8m0 else ("row_major", "transposed"),
        rounding="up" if e8m0 else None,
        rounding_source="the HIP quant kernels' default",
        packed_fp4=packed,
    )


# -- Triton fused producers --------------------------------------------------------------------


def rms_fp8_static(call: CallRecord) -> QuantView | None:
    """``fused_rms_fp8_per_tensor_static_quant``: rmsnorm(inp1 [+ res1]) / inp1_scale, returned first."""
    q = _first(call.result)
    if q is None:
        return None
    x = _kernel_input(call["inp1"], call.get("res1"))
    normalized = rms_norm(_rows(x), call["inp1_weight"], call["inp1_epsilon"])
    return QuantView(
        call.target,
        normalized,
        _rows(q),
        call["inp1_scale"],
        element_of(q.dtype),
        q_read_as=fp8_or_none(q.dtype),
        group=0,
        static=True,
    )


def silu_mul(x: Any) -> Any:
    """``silu(a) * b`` for ``x = [a, b]`` split on the last dim, in float32."""
    torch = load_torch()
    values = x.to(torch.float32)
    gate, up = values.chunk(2, dim=-1)
    return torch.nn.functional.silu(gate) * up


def silu_mul_fp8_static(call: CallRecord) -> QuantView | None:
    """``fused_silu_mul_fp8_per_tensor_static_quant``: silu(first half) * second half / inp_scale."""
    q = _first(call.result)
    if q is None:
        return None
    return QuantView(
        call.target,
        silu_mul(_rows(call["inp"])),
        _rows(q),
        call["inp_scale"],
        element_of(q.dtype),
        q_read_as=fp8_or_none(q.dtype),
        group=0,
        static=True,
    )


def static_fp8(call: CallRecord) -> QuantView | None:
    """MoE ``downcast_to_static_fp8(x, scale)``: x / scale into the arch's fp8."""
    q = _first(call.result)
    if q is None:
        return None
    return QuantView(
        call.target,
        _rows(call["x"]),
        _rows(q),
        call["scale"],
        element_of(q.dtype),
        q_read_as=fp8_or_none(q.dtype),
        group=0,
        static=True,
    )


def _mx_view(
    call: CallRecord, x: Any, q: Any, scale: Any, shuffle: bool, rounding: str, source: str, request: str = ""
) -> QuantView:
    rows = int(x.shape[0])
    return QuantView(
        call.target,
        x,
        q[:rows],
        scale,
        element_of(None, True),
        group=32,
        encoding="e8m0",
        requested_layout="mx_swizzle" if shuffle else "logical",
        request=request,
        alternatives=("logical", "row_major", "mx_swizzle"),
        rounding=rounding,
        rounding_source=source,
        packed_fp4=True,
    )


_EVEN_SOURCE = "Triton _mxfp4_quant_op (always Even)"


def rms_mxfp4(call: CallRecord) -> QuantView | None:
    """``fused_rms_mxfp4_quant``: rmsnorm(x1 [+ res1]) to MXFP4; ``shuffle`` → MX swizzle."""
    q, scale = _pair(call.result)
    if q is None:
        return None
    x = _kernel_input(call["x1"], call.get("res1"))
    shuffle = flag(call.get("shuffle"))
    normalized = rms_norm(_rows(x), call["x1_weight"], call["x1_epsilon"])
    return _mx_view(call, normalized, q, scale, shuffle, "even", _EVEN_SOURCE, f"shuffle={shuffle!r}")


def reduce_rms_mxfp4(call: CallRecord) -> QuantView | None:
    """``fused_reduce_rms_mxfp4_quant``: rmsnorm((split-K sum of) x1 [+ res1]) to MXFP4."""
    q, scale = _pair(call.result)
    if q is None:
        return None
    x = _kernel_input(call["x1"], call.get("res1"), split_k=True)
    shuffle = flag(call.get("shuffle"))
    normalized = rms_norm(x, call["x1_weight"], call["x1_epsilon"])
    return _mx_view(call, normalized, q, scale, shuffle, "even", _EVEN_SOURCE, f"shuffle={shuffle!r}")


def act_mul_mxfp4(call: CallRecord) -> QuantView | None:
    """``fused_reduce_act_mul_and_mxfp4_quant``: (split-K sum of) x, silu(a) * b, to MXFP4."""
    q, scale = _pair(call.result)
    if q is None or str(call["activation"]) != "silu":
        return None  # the gelu variants' exact formula is not modelled
    x = _kernel_input(call["x"], split_k=True)
    shuffle = flag(call.get("shuffle"))
    return _mx_view(call, silu_mul(x), q, scale, shuffle, "even", _EVEN_SOURCE, f"shuffle={shuffle!r}")


def moe_mxfp4(call: CallRecord) -> QuantView | None:
    """MoE ``mxfp4_quant(x)``: uint8 (M, K/2) and row-major uint8 (M, K/32) scales, Even rounding."""
    q, scale = _pair(call.result)
    if q is None:
        return None
    return _mx_view(call, _rows(call["x"]), q, scale, False, "even", _EVEN_SOURCE)


def downcast_mxfp(call: CallRecord) -> QuantView | None:
    """``downcast_to_mxfp(src, out_quant_type, axis)``: quantized along ``axis``; e8m0 rounded up by default."""
    q, scale = _pair(call.result)
    if q is None:
        return None
    mode = call.get("DEQUANT_SCALE_ROUNDING_MODE")
    if mode is not None and getattr(mode, "name", str(mode)).upper().endswith("ROUND_DOWN"):
        return None  # floor_pow2(amax / max): not one of AITER's four modes
    src = call["src_tensor"]
    axis = int(call["axis"]) % src.dim()
    last = src.dim() - 1
    moved = (lambda t: t.transpose(axis, last)) if axis != last else (lambda t: t)
    packed = q.dtype == load_torch().uint8
    x, q2d, scales = _rows(moved(src)), _rows(moved(q)), moved(scale).reshape(-1, moved(scale).shape[-1])
    return QuantView(
        call.target,
        x,
        q2d,
        scales,
        element_of(q.dtype, packed),
        q_read_as=fp8_or_none(q.dtype),
        group=32,
        encoding="e8m0",
        requested_layout="row_major",
        alternatives=("row_major", "transposed"),
        rounding="up",
        rounding_source="DEQUANT_SCALE_ROUNDING_MODE=ROUND_UP (default)",
        packed_fp4=packed,
    )


def reduce_rms_fp8_group(call: CallRecord) -> QuantView | None:
    """``fused_reduce_rms_fp8_group_quant``: rmsnorm((split-K sum of) inp1 [+ res1]) per-group fp8."""
    q, scale = _pair(call.result)
    if q is None:
        return None
    x = _kernel_input(call["inp1"], call.get("res1"), split_k=True)
    transpose = flag(call.get("transpose_scale"))
    return QuantView(
        call.target,
        rms_norm(x, call["inp1_weight"], call["inp1_epsilon"]),
        q,
        scale,
        element_of(q.dtype),
        q_read_as=fp8_or_none(q.dtype),
        group=int(call.get("group_size") or 128),
        requested_layout="transposed" if transpose else "row_major",
        request=f"transpose_scale={transpose!r}",
        alternatives=("row_major", "transposed"),
    )


def qk_rmsnorm_group(call: CallRecord) -> QuantView | None:
    """``fused_qk_rmsnorm_group_quant``: rmsnorm(q [+ q_residual]) per-group fp8 into q_out_quantized/q_out_scale.

    Only the fp8 output with fp32 scales is interpreted: the fp4x2 output's
    e8m0 rounding is not documented, and without ``q_out_scale`` nothing is quantized.
    """
    out, scale, q = call.get("q_out_quantized"), call.get("q_out_scale"), call.get("q")
    torch = load_torch()
    if out is None or scale is None or q is None or scale.dtype != torch.float32 or fp8_or_none(out.dtype) is None:
        return None
    x = _kernel_input(q, call.get("q_residual"))
    transpose = flag(call.get("transpose_scale"))
    normalized = rms_norm(_rows(x), call["q_weight"], call.get("q_epsilon", 1e-6), flag(call.get("gemma_norm")))
    return QuantView(
        call.target,
        normalized,
        _rows(out),
        scale,
        element_of(out.dtype),
        q_read_as=fp8_or_none(out.dtype),
        group=int(call.get("group_size") or 128),
        requested_layout="transposed" if transpose else "row_major",
        request=f"transpose_scale={transpose!r}",
        alternatives=("row_major", "transposed"),
    )


def torch_per_tensor(call: CallRecord) -> QuantView | None:
    """Torch reference ``per_tensor_quant``: x / (amax / dtype max), or x / the given scale."""
    q, scale = _pair(call.result)
    if q is None:
        return None
    view = QuantView(
        call.target,
        _rows(call["x"]),
        _rows(q),
        scale,
        element_of(q.dtype),
        q_read_as=fp8_or_none(q.dtype),
        group=0,
        static=call.get("scale") is not None,
    )
    maximum = call.get("dtypeMax")
    if maximum is not None and view.element is not None:
        from dataclasses import replace

        view.element = replace(view.element, max=float(maximum))
    return view
