"""Simulated ``aiter.ops.triton.quant.fused_fp8_quant``: Triton fused norm/activation + FP8 quant.

The kernels work in fp32 whatever the input dtype: RMSNorm is
``x * rsqrt(sum(x^2) / N + eps) * w``, SiLU is ``a / (1 + exp(-a))``.
Per-group scales are ``max(amax, 1e-10) / dtype_max`` and groups are divided
by them (the kernels multiply by ``1 / scale``: the same FP8 byte but in rare
rounding ties); static per-tensor quantization multiplies by ``1 / scale``
(the first element of the scale tensor). The high-precision side outputs (unquantized normed input, second
normed input, residual sum) are stored in the input's dtype (``dtype`` where
the wrapper has one). The Triton wrappers are plain functions, as in AITER.
"""

import torch

from quantguard.sim._kernels import fp8 as _fp8
from quantguard.sim._kernels import quantize as _quantize

from ....utility import dtypes

__all__ = [
    "fused_flatten_fp8_group_quant",
    "fused_reduce_rms_fp8_group_quant",
    "fused_rms_fp8_per_tensor_static_quant",
    "fused_silu_mul_fp8_per_tensor_static_quant",
]

fp8_dtype = dtypes.fp8


def _rms_norm(rows: torch.Tensor, weight: torch.Tensor, epsilon) -> torch.Tensor:
    """RMSNorm of fp32 ``rows`` over the last dim, in fp32, as the kernels compute it."""
    mean_square = rows.square().sum(-1, keepdim=True) / rows.shape[-1]
    return rows * torch.rsqrt(mean_square + epsilon) * weight.float()


def _group_quant(rows: torch.Tensor, group_size: int, dtype_quant):
    """(M, N) fp32 -> FP8 (M, N) and fp32 scales (M, ceil(N / group_size)).

    A last partial group is padded with zeros, as the kernels' masked loads do.
    """
    width = rows.shape[-1]
    groups = -(-width // group_size)
    padded = torch.nn.functional.pad(rows, (0, groups * group_size - width))
    scale = _quantize.fp32_scale(_quantize.group_amax(padded, group_size), dtype_quant)
    values = _quantize.apply(padded, scale, group_size, dtype_quant)
    return values[:, :width].contiguous(), scale


def _scale_layout(scale: torch.Tensor, transpose_scale: bool, is_x_scale_strided: bool) -> torch.Tensor:
    """Present (M, G) scales as the wrappers do.

    ``transpose_scale`` stores them in a (G, M) buffer; ``is_x_scale_strided``
    returns that buffer as a column-major (M, G) view (strides (1, M)), else
    as a contiguous (M, G) reshape of the same bytes (what the CK bpreshuffle
    GEMM tells apart by ``stride(0) != 1``).
    """
    if not transpose_scale:
        return scale
    buffer = scale.T.contiguous()
    return buffer.T if is_x_scale_strided else buffer.view(scale.shape)


def _static_quant(values: torch.Tensor, scale: torch.Tensor, dtype_quant) -> torch.Tensor:
    """fp32 ``values * (1 / scale[0])``, saturated into ``dtype_quant``."""
    return _fp8.saturate(values * (1.0 / scale.float().reshape(-1)[0]), dtype_quant)


def fused_rms_fp8_per_tensor_static_quant(
    inp1,
    inp1_weight,
    inp1_epsilon,
    inp1_scale,
    inp2=None,
    inp2_weight=None,
    inp2_epsilon=None,
    dtype_quant=fp8_dtype,
    res1=None,
    output_unquantized_inp1=False,
    rmsnorm_convert_to_inp1_type=False,
):
    """RMSNorm (M, N1) ``inp1`` (plus ``res1``) and quantize it with the static scale ``inp1_scale``.

    Returns ``(out1_fp8, out1, out2, out_res1)``: FP8 (M, N1); the normed
    ``inp1`` before quantization with ``output_unquantized_inp1``, else None;
    RMSNorm of ``inp2`` (M, N2) with ``inp2_weight``/``inp2_epsilon``, else
    None; ``inp1 + res1`` when ``res1`` is given, else None. All three in
    ``inp1``'s dtype. ``rmsnorm_convert_to_inp1_type`` rounds the normed values
    to ``inp1``'s dtype before quantizing (``out1`` is not affected).
    """
    rows, cols = inp1.shape
    if inp2 is not None and inp2.shape[0] != rows:
        raise AssertionError("The leading dimension should be identical between inp1 and inp2")
    summed = inp1.float()
    out_res1 = None
    if res1 is not None:
        if tuple(res1.shape) != (rows, cols):
            raise AssertionError("The shape should be identical between inp1 and res1")
        summed = summed + res1.float()
        out_res1 = summed.to(inp1.dtype)
    normed = _rms_norm(summed, inp1_weight, inp1_epsilon)
    out1 = normed.to(inp1.dtype) if output_unquantized_inp1 else None
    if rmsnorm_convert_to_inp1_type:
        normed = normed.to(inp1.dtype).float()
    out1_fp8 = _static_quant(normed, inp1_scale, dtype_quant)
    out2 = None
    if inp2 is not None:
        out2 = _rms_norm(inp2.float(), inp2_weight, inp2_epsilon).to(inp1.dtype)
    return out1_fp8, out1, out2, out_res1


def fused_flatten_fp8_group_quant(
    x: torch.Tensor,
    group_size,
    dtype_quant=fp8_dtype,
    transpose_scale: bool = False,
):
    """Flatten (M, N1, N2) to (M, N1 * N2) and FP8-quantize groups along each N2 segment.

    Each N2 segment has ceil(N2 / group_size) groups. The scale is (M, groups);
    with ``transpose_scale`` it is a column-major view (strides (1, M)).
    """
    m, n1, n2 = x.shape
    segment_groups = -(-n2 // group_size)
    padded = torch.nn.functional.pad(x.float(), (0, segment_groups * group_size - n2))
    values, scale = _group_quant(padded.reshape(m, -1), group_size, dtype_quant)
    out = values.view(m, n1, -1)[..., :n2].reshape(m, n1 * n2)
    return out, _scale_layout(scale, transpose_scale, is_x_scale_strided=True)


def _split_k_sum(tensor: torch.Tensor, split_k: bool) -> torch.Tensor:
    return tensor.float().sum(0) if split_k else tensor.float()


def fused_reduce_rms_fp8_group_quant(
    inp1,
    inp1_weight,
    inp1_epsilon,
    inp2=None,
    inp2_weight=None,
    inp2_epsilon=None,
    inp3=None,
    group_size=128,
    dtype_quant=fp8_dtype,
    dtype=None,
    res1=None,
    output_unquantized_inp1=False,
    out3=None,
    transpose_scale=False,
    is_x_scale_strided: bool = False,
):
    """Sum split-K partials, RMSNorm ``inp1`` (plus ``res1``) and FP8-quantize it per group.

    ``inp1`` is (M, N1), or (SPK, M, N1) split-K partials (SPK > 1) summed in
    fp32; ``inp2`` then is (SPK, M, N2) too. Returns
    ``((out1_fp8, out1_bs), out1, out2, out_res1, out3)``: FP8 (M, N1) and
    fp32 scales (M, ceil(N1 / group_size)); the normed ``inp1`` with
    ``output_unquantized_inp1``; RMSNorm of (the summed) ``inp2``; the
    (summed) ``inp1 + res1``; the split-K sum of ``inp3`` (SPK, M, N3),
    written into ``out3`` when given. Side outputs are in ``dtype`` (default
    ``inp1``'s) and None when not requested. ``out3`` is written only in the
    split-K case (the wrapper launches the reduction programs only then).

    ``transpose_scale`` stores the scales as (G, M) bytes, returned as a
    contiguous (M, G) tensor, or with ``is_x_scale_strided`` as a view with
    strides (1, M).
    """
    out_dtype = dtype if dtype is not None else inp1.dtype
    split_k = inp1.dim() == 3
    if split_k:
        partials, rows, cols = inp1.shape
        if partials <= 1:
            raise AssertionError("Split-k dimension should have more than 1 element.")
    else:
        partials, (rows, cols) = 1, inp1.shape
    if inp2 is not None and split_k and not (inp2.dim() == 3 and inp2.shape[0] == partials and inp2.shape[1] == rows):
        raise AssertionError(f"Incompatible shapes {inp1.shape=}, {inp2.shape=}")
    if inp3 is not None and not (inp3.dim() == 3 and inp3.shape[0] == partials and inp3.shape[1] == rows):
        raise AssertionError(f"Incompatible shapes {inp1.shape=}, {inp3.shape=}")

    summed = _split_k_sum(inp1, split_k)
    out_res1 = None
    if res1 is not None:
        if tuple(res1.shape) != (rows, cols):
            raise AssertionError("The shape should be identical between inp1 and res1")
        summed = summed + res1.float()
        out_res1 = summed.to(out_dtype)
    normed = _rms_norm(summed, inp1_weight, inp1_epsilon)
    out1 = normed.to(out_dtype) if output_unquantized_inp1 else None
    out1_fp8, scale = _group_quant(normed, group_size, dtype_quant)
    out1_bs = _scale_layout(scale, transpose_scale, is_x_scale_strided)

    out2 = None
    if inp2 is not None:
        out2 = _rms_norm(_split_k_sum(inp2, split_k), inp2_weight, inp2_epsilon).to(out_dtype)
    if inp3 is not None:
        if out3 is None:
            out3 = torch.empty((rows, inp3.shape[2]), dtype=out_dtype, device=inp1.device)
        if split_k:
            out3.copy_(inp3.float().sum(0))
    return (out1_fp8, out1_bs), out1, out2, out_res1, out3


def fused_silu_mul_fp8_per_tensor_static_quant(
    inp,
    inp_scale,
    dtype_quant=fp8_dtype,
    silu_convert_to_inp_type=False,
):
    """``silu(gate) * up`` for ``inp = [gate, up]`` (M, 2N), quantized with the static ``inp_scale``.

    Returns the FP8 (M, N) tensor only. ``silu_convert_to_inp_type`` rounds
    the product to ``inp``'s dtype before quantizing.
    """
    cols = inp.shape[1]
    if cols % 2:
        raise AssertionError(f"the last dimension ({cols}) of inp must be even")
    gate, up = inp.float().split(cols // 2, dim=1)
    product = gate / (1.0 + torch.exp(-gate)) * up
    if silu_convert_to_inp_type:
        product = product.to(inp.dtype).float()
    return _static_quant(product, inp_scale, dtype_quant)
