"""AITER's fused norm/activation + quant producers, as contracts (facts from AITER e4048607).

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
from typing import TYPE_CHECKING, Any

from quantguard.contracts.base import Contract
from quantguard.contracts.views import QuantView

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.calls import CallRecord

__all__ = ["CONTRACTS", "rms_norm"]

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
_MX_ALTERNATIVES = ("row_major", "padded", "transposed", "mx_swizzle")


def _torch() -> Any:
    import torch

    return torch


def _element(dtype: Any, packed_fp4: bool = False) -> Any:
    from quantguard.numerics.formats import FP4_E2M1, element_format

    return FP4_E2M1 if packed_fp4 else element_format(dtype)


def _is_packed_fp4(dtype: Any) -> bool:
    return str(dtype).endswith("float4_e2m1fn_x2") or dtype == _torch().uint8


def _fp8_or_none(dtype: Any) -> Any:
    """The dtype a producer writes fp8 bytes in (what its own output means), else None."""
    element = _element(dtype)
    return dtype if element is not None and element.family == "fp8" else None


def _flag(value: Any) -> bool:
    return bool(value) if not hasattr(value, "shape") else False


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
    torch = _torch()
    values = x.to(torch.float32)
    normalized = values * torch.rsqrt(values.pow(2).mean(dim=-1, keepdim=True) + float(epsilon))
    scale = weight.to(torch.float32)
    return normalized * (1.0 + scale if gemma else scale)


def _kernel_input(x: Any, residual: Any = None, split_k: bool = False) -> Any:
    """What a fused kernel normalizes or activates, in float32: its split-K partials summed (a 3-D
    input, for the ``fused_reduce_*`` kernels), plus the residual it adds first."""
    torch = _torch()
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


def _interpret_rmsnorm_quant(call: CallRecord) -> QuantView | None:
    """``(add_)rmsnorm_quant``: writes ``out``/``scale`` in place; group_size/shuffle_scale pick the layout."""
    out, scale = call["out"], call["scale"]
    x = _kernel_input(call["input"], call.get("residual_in"))
    normalized = rms_norm(_rows(x), call["weight"], call["epsilon"], _flag(call.get("gemma_norm")))
    packed = _is_packed_fp4(out.dtype)
    group = int(call.get("group_size") or 0)
    shuffle = _flag(call.get("shuffle_scale"))
    request = f"group_size={group}, shuffle_scale={shuffle!r}"
    if group == 0:
        return QuantView(
            call.target,
            normalized,
            _rows(out),
            scale,
            _element(out.dtype, packed),
            q_read_as=_fp8_or_none(out.dtype),
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
        _element(out.dtype, packed),
        q_read_as=_fp8_or_none(out.dtype),
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


def _interpret_rms_fp8_static(call: CallRecord) -> QuantView | None:
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
        _element(q.dtype),
        q_read_as=_fp8_or_none(q.dtype),
        group=0,
        static=True,
    )


def silu_mul(x: Any) -> Any:
    """``silu(a) * b`` for ``x = [a, b]`` split on the last dim, in float32."""
    torch = _torch()
    values = x.to(torch.float32)
    gate, up = values.chunk(2, dim=-1)
    return torch.nn.functional.silu(gate) * up


def _interpret_silu_mul_fp8_static(call: CallRecord) -> QuantView | None:
    """``fused_silu_mul_fp8_per_tensor_static_quant``: silu(first half) * second half / inp_scale."""
    q = _first(call.result)
    if q is None:
        return None
    return QuantView(
        call.target,
        silu_mul(_rows(call["inp"])),
        _rows(q),
        call["inp_scale"],
        _element(q.dtype),
        q_read_as=_fp8_or_none(q.dtype),
        group=0,
        static=True,
    )


def _interpret_static_fp8(call: CallRecord) -> QuantView | None:
    """MoE ``downcast_to_static_fp8(x, scale)``: x / scale into the arch's fp8."""
    q = _first(call.result)
    if q is None:
        return None
    return QuantView(
        call.target,
        _rows(call["x"]),
        _rows(q),
        call["scale"],
        _element(q.dtype),
        q_read_as=_fp8_or_none(q.dtype),
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
        _element(None, True),
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


def _interpret_rms_mxfp4(call: CallRecord) -> QuantView | None:
    """``fused_rms_mxfp4_quant``: rmsnorm(x1 [+ res1]) to MXFP4; ``shuffle`` → MX swizzle."""
    q, scale = _pair(call.result)
    if q is None:
        return None
    x = _kernel_input(call["x1"], call.get("res1"))
    shuffle = _flag(call.get("shuffle"))
    normalized = rms_norm(_rows(x), call["x1_weight"], call["x1_epsilon"])
    return _mx_view(call, normalized, q, scale, shuffle, "even", _EVEN_SOURCE, f"shuffle={shuffle!r}")


def _interpret_reduce_rms_mxfp4(call: CallRecord) -> QuantView | None:
    """``fused_reduce_rms_mxfp4_quant``: rmsnorm((split-K sum of) x1 [+ res1]) to MXFP4."""
    q, scale = _pair(call.result)
    if q is None:
        return None
    x = _kernel_input(call["x1"], call.get("res1"), split_k=True)
    shuffle = _flag(call.get("shuffle"))
    normalized = rms_norm(x, call["x1_weight"], call["x1_epsilon"])
    return _mx_view(call, normalized, q, scale, shuffle, "even", _EVEN_SOURCE, f"shuffle={shuffle!r}")


def _interpret_act_mul_mxfp4(call: CallRecord) -> QuantView | None:
    """``fused_reduce_act_mul_and_mxfp4_quant``: (split-K sum of) x, silu(a) * b, to MXFP4."""
    q, scale = _pair(call.result)
    if q is None or str(call["activation"]) != "silu":
        return None  # the gelu variants' exact formula is not modelled
    x = _kernel_input(call["x"], split_k=True)
    shuffle = _flag(call.get("shuffle"))
    return _mx_view(call, silu_mul(x), q, scale, shuffle, "even", _EVEN_SOURCE, f"shuffle={shuffle!r}")


def _interpret_moe_mxfp4(call: CallRecord) -> QuantView | None:
    """MoE ``mxfp4_quant(x)``: uint8 (M, K/2) and row-major uint8 (M, K/32) scales, Even rounding."""
    q, scale = _pair(call.result)
    if q is None:
        return None
    return _mx_view(call, _rows(call["x"]), q, scale, False, "even", _EVEN_SOURCE)


def _interpret_downcast_mxfp(call: CallRecord) -> QuantView | None:
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
    packed = q.dtype == _torch().uint8
    x, q2d, scales = _rows(moved(src)), _rows(moved(q)), moved(scale).reshape(-1, moved(scale).shape[-1])
    return QuantView(
        call.target,
        x,
        q2d,
        scales,
        _element(q.dtype, packed),
        q_read_as=_fp8_or_none(q.dtype),
        group=32,
        encoding="e8m0",
        requested_layout="row_major",
        alternatives=("row_major", "transposed"),
        rounding="up",
        rounding_source="DEQUANT_SCALE_ROUNDING_MODE=ROUND_UP (default)",
        packed_fp4=packed,
    )


def _interpret_reduce_rms_fp8_group(call: CallRecord) -> QuantView | None:
    """``fused_reduce_rms_fp8_group_quant``: rmsnorm((split-K sum of) inp1 [+ res1]) per-group fp8."""
    q, scale = _pair(call.result)
    if q is None:
        return None
    x = _kernel_input(call["inp1"], call.get("res1"), split_k=True)
    transpose = _flag(call.get("transpose_scale"))
    return QuantView(
        call.target,
        rms_norm(x, call["inp1_weight"], call["inp1_epsilon"]),
        q,
        scale,
        _element(q.dtype),
        q_read_as=_fp8_or_none(q.dtype),
        group=int(call.get("group_size") or 128),
        requested_layout="transposed" if transpose else "row_major",
        request=f"transpose_scale={transpose!r}",
        alternatives=("row_major", "transposed"),
    )


def _interpret_qk_rmsnorm_group(call: CallRecord) -> QuantView | None:
    """``fused_qk_rmsnorm_group_quant``: rmsnorm(q [+ q_residual]) per-group fp8 into q_out_quantized/q_out_scale.

    Only the fp8 output with fp32 scales is interpreted: the fp4x2 output's
    e8m0 rounding is not documented, and without ``q_out_scale`` nothing is quantized.
    """
    out, scale, q = call.get("q_out_quantized"), call.get("q_out_scale"), call.get("q")
    torch = _torch()
    if out is None or scale is None or q is None or scale.dtype != torch.float32 or _fp8_or_none(out.dtype) is None:
        return None
    x = _kernel_input(q, call.get("q_residual"))
    transpose = _flag(call.get("transpose_scale"))
    normalized = rms_norm(_rows(x), call["q_weight"], call.get("q_epsilon", 1e-6), _flag(call.get("gemma_norm")))
    return QuantView(
        call.target,
        normalized,
        _rows(out),
        scale,
        _element(out.dtype),
        q_read_as=_fp8_or_none(out.dtype),
        group=int(call.get("group_size") or 128),
        requested_layout="transposed" if transpose else "row_major",
        request=f"transpose_scale={transpose!r}",
        alternatives=("row_major", "transposed"),
    )


def _interpret_torch_per_tensor(call: CallRecord) -> QuantView | None:
    """Torch reference ``per_tensor_quant``: x / (amax / dtype max), or x / the given scale."""
    q, scale = _pair(call.result)
    if q is None:
        return None
    view = QuantView(
        call.target,
        _rows(call["x"]),
        _rows(q),
        scale,
        _element(q.dtype),
        q_read_as=_fp8_or_none(q.dtype),
        group=0,
        static=call.get("scale") is not None,
    )
    maximum = call.get("dtypeMax")
    if maximum is not None and view.element is not None:
        from dataclasses import replace

        view.element = replace(view.element, max=float(maximum))
    return view


# -- the contracts -----------------------------------------------------------------------------


def _producer(
    target: str,
    backend: str,
    interpret: Callable[..., Any],
    params: tuple[str, ...],
    key: tuple[str, ...],
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
        _interpret_rmsnorm_quant,
        ("out", "input", "scale", "weight", "epsilon", "group_size", "shuffle_scale", "gemma_norm"),
        ("out", "input", "scale+", "weight@", "group_size=", "shuffle_scale=", "gemma_norm="),
        layout_params=("group_size", "shuffle_scale"),
        relied={"group_size": "0", "shuffle_scale": "False"},
        description="RMSNorm + quant (per-token, per-group fp32, e8m0 MX-swizzled with shuffle_scale); "
        "layout checked by dequantization",
    ),
    _producer(
        _RMS + "add_rmsnorm_quant",
        "hip",
        _interpret_rmsnorm_quant,
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
            "out",
            "input",
            "residual_in",
            "residual_out",
            "scale+",
            "weight@",
            "group_size=",
            "shuffle_scale=",
            "gemma_norm=",
        ),
        layout_params=("group_size", "shuffle_scale"),
        relied={"group_size": "0", "shuffle_scale": "False"},
        description="residual add + RMSNorm + quant; same scale layouts as rmsnorm_quant",
    ),
    _producer(
        _TQ + "fused_fp8_quant.fused_rms_fp8_per_tensor_static_quant",
        "triton",
        _interpret_rms_fp8_static,
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
        ("inp1", "inp1_weight@", "inp1_scale", "inp2?", "dtype_quant=", "res1?"),
        checks=_STATIC_CHECKS,
        honored=("res1",),
        description="RMSNorm + static per-tensor fp8 quant (divides by inp1_scale)",
    ),
    _producer(
        _TQ + "fused_fp8_quant.fused_silu_mul_fp8_per_tensor_static_quant",
        "triton",
        _interpret_silu_mul_fp8_static,
        ("inp", "inp_scale", "dtype_quant", "silu_convert_to_inp_type"),
        ("inp", "inp_scale", "dtype_quant="),
        checks=_STATIC_CHECKS,
        description="silu(gate) * up + static per-tensor fp8 quant",
    ),
    _producer(
        _TQ + "fused_fp8_quant.fused_reduce_rms_fp8_group_quant",
        "triton",
        _interpret_reduce_rms_fp8_group,
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
            "inp1",
            "inp1_weight@",
            "inp2?",
            "inp3?",
            "group_size=",
            "dtype_quant=",
            "res1?",
            "transpose_scale=",
            "is_x_scale_strided=",
        ),
        layout_params=("transpose_scale", "group_size"),
        honored=("transpose_scale", "group_size"),
        relied={"transpose_scale": "False", "group_size": "128"},
        description="split-K reduce + RMSNorm + per-group fp8; transpose_scale=True → (G, M) bytes",
    ),
    _producer(
        _TQ + "fused_mxfp4_quant.fused_rms_mxfp4_quant",
        "triton",
        _interpret_rms_mxfp4,
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
        ("x1", "x1_weight@", "x2?", "res1?", "shuffle=", "scale_shuffle_padding="),
        layout_params=("shuffle",),
        honored=("shuffle",),
        relied={"shuffle": "False"},
        description="RMSNorm + MXFP4 (Even e8m0; shuffle=True → MX swizzle)",
    ),
    _producer(
        _TQ + "fused_mxfp4_quant.fused_reduce_rms_mxfp4_quant",
        "triton",
        _interpret_reduce_rms_mxfp4,
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
        ("x1", "x1_weight@", "x2?", "x3?", "res1?", "shuffle=", "scale_shuffle_padding="),
        layout_params=("shuffle",),
        honored=("shuffle",),
        relied={"shuffle": "False"},
        description="split-K reduce + RMSNorm + MXFP4 (Even e8m0; shuffle=True → MX swizzle)",
    ),
    _producer(
        _TQ + "fused_mxfp4_quant.fused_reduce_act_mul_and_mxfp4_quant",
        "triton",
        _interpret_act_mul_mxfp4,
        ("x", "activation", "x2", "scaling_mode", "shuffle", "scale_shuffle_padding", "dtype"),
        ("x", "activation=", "x2?", "shuffle=", "scale_shuffle_padding="),
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
        _interpret_moe_mxfp4,
        ("x", "block_size_m", "block_size_n"),
        ("x",),
        checks=_EXACT_CHECKS,
        description="MoE MXFP4 activation quant: uint8 (M, K/2), uint8 e8m0 (M, K/32), Even rounding",
    ),
    _producer(
        _MOE + "quant_moe.downcast_to_mxfp",
        "triton",
        _interpret_downcast_mxfp,
        ("src_tensor", "out_quant_type", "axis", "DEQUANT_SCALE_ROUNDING_MODE"),
        ("src_tensor", "out_quant_type=", "axis=", "DEQUANT_SCALE_ROUNDING_MODE="),
        checks=_EXACT_CHECKS,
        description="MoE weight MXFP4/MXFP8 quant along axis; e8m0 rounded up (ROUND_DOWN calls not interpreted)",
    ),
    _producer(
        _MOE + "quant_moe.downcast_to_static_fp8",
        "triton",
        _interpret_static_fp8,
        ("x", "scale"),
        ("x", "scale"),
        checks=_STATIC_CHECKS,
        description="MoE static per-tensor fp8 quant (x / scale, arch fp8)",
    ),
    _producer(
        "aiter.ops.fused_qk_rmsnorm_group_quant.fused_qk_rmsnorm_group_quant",
        "hip",
        _interpret_qk_rmsnorm_group,
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
            "q_out_quantized?",
            "q_out_scale?",
            "q?",
            "q_weight?",
            "q_residual?",
            "group_size=",
            "transpose_scale=",
            "gemma_norm=",
        ),
        layout_params=("transpose_scale", "group_size"),
        relied={"transpose_scale": "False"},
        description="q/k RMSNorm + per-group fp8 of q (fp32 scales; (G, M) bytes with transpose_scale); "
        "fp4x2 output: metadata checks only",
    ),
    _producer(
        "aiter.ops.quant.per_tensor_quant",
        "torch",
        _interpret_torch_per_tensor,
        ("x", "scale", "scale_dtype", "quant_dtype", "dtypeMax"),
        ("x", "scale?", "scale_dtype=", "quant_dtype=", "dtypeMax="),
        checks=_EXACT_CHECKS,
        description="torch reference per-tensor quant (static when scale is given)",
    ),
]
