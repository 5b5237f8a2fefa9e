"""Simulated ``atom.model_ops.linear``: ATOM's linear layers and their AITER dispatch.

Kernels are imported by name at module import, as in ATOM, and the Triton
aliases are bound only when ``use_triton_gemm()`` holds at that moment. Each
layer stores ``self.quant_func = get_hip_quant(self.quant_type)`` when it is
built, so wrapping ``aiter.get_hip_quant`` later does not reach it.

Per-quant-type dispatch:

* per_1x128: quantize with ``transpose_scale=ATOM_FP8_BLOCKSCALE_WEIGHT_PRESHUFFLE``;
  preshuffle -> ``gemm_a8w8_blockscale_bpreshuffle`` (column-major x_scale),
  else Triton ``gemm_a8w8_blockscale`` when ``use_triton_gemm()``, else
  ``gemm_a8w8_blockscale`` (row-major x_scale).
* per_Token: int8 -> ``gemm_a8w8``; Triton -> ``gemm_a8w8_triton``; else
  ``gemm_a8w8_bpreshuffle``.
* per_Tensor: Triton -> ``gemm_a8w8_triton``; else hipBLASLt ``tgemm.mm``.
* per_1x32 (MXFP4): see :func:`gemm_a4w4_quant`.
"""

from functools import partial as functools_partial

import torch
from aiter import (
    QuantType,
    dtypes,
    gemm_a4w4,
    gemm_a8w8,
    gemm_a8w8_blockscale,
    gemm_a8w8_blockscale_bpreshuffle,
    gemm_a8w8_bpreshuffle,
    get_hip_quant,
)
from aiter.tuned_gemm import tgemm
from aiter.utility import fp4_utils
from atom.model_ops.utils import (
    MXFP4_QUANT_BLOCK_SIZE,
    atom_parameter,
    normalize_e4m3fn_to_e4m3fnuz,
    shuffle_weights,
)
from atom.utils import envs
from torch import nn

from quantguard.sim import _state
from quantguard.sim._kernels import gemm as _gemm

__all__ = [
    "LinearBase",
    "fp8_checkpoint_fixup",
    "gemm_a4w4_quant",
    "load_fp8_into_dense",
    "use_fp4_non_shuffle_triton_gemm",
    "use_triton_gemm",
]


if envs.CK_FREE_BRANCH:

    def use_triton_gemm() -> bool:
        """CK-free branch: Triton when requested or forced by ``ATOM_CK_FREE=1``."""
        return envs.ATOM_USE_TRITON_GEMM or envs.ATOM_CK_FREE

else:

    def use_triton_gemm() -> bool:
        """ATOM main: Triton only when requested (``ATOM_USE_TRITON_GEMM``); CK-free is not consulted."""
        return envs.ATOM_USE_TRITON_GEMM


def use_fp4_non_shuffle_triton_gemm() -> bool:
    return envs.ATOM_USE_FP4_NON_SHUFFLE_TRITON_GEMM


if use_fp4_non_shuffle_triton_gemm():
    from aiter.ops.triton.gemm_afp4wfp4 import gemm_afp4wfp4
else:
    gemm_afp4wfp4 = None

if use_triton_gemm():
    from aiter.ops.triton.gemm.basic.gemm_a8w8 import gemm_a8w8 as gemm_a8w8_triton
    from aiter.ops.triton.gemm.basic.gemm_a8w8_blockscale import (
        gemm_a8w8_blockscale as gemm_a8w8_blockscale_triton,
    )
    from aiter.ops.triton.gemm_afp4wfp4 import gemm_afp4wfp4_preshuffle
else:
    gemm_afp4wfp4_preshuffle = None
    gemm_a8w8_blockscale_triton = None
    gemm_a8w8_triton = None


# --------------------------------------------------------------------------
# Checkpoint loading (where the copy incidents live)
# --------------------------------------------------------------------------


def _copy_checkpoint_tensor(param: nn.Parameter, loaded_weight: torch.Tensor) -> None:
    """ATOM's loader: same-width dtypes are copied as bytes, others converted."""
    if param.data.dtype != loaded_weight.dtype:
        if param.data.element_size() == loaded_weight.element_size():
            if {param.data.dtype, loaded_weight.dtype} == {torch.float16, torch.bfloat16}:
                loaded_weight = loaded_weight.to(param.data.dtype)
            else:
                param.data = param.data.view(loaded_weight.dtype)
        else:
            loaded_weight = loaded_weight.to(param.data.dtype)
    loaded_weight = loaded_weight.reshape(param.data.shape)
    if param.data.dtype == dtypes.fp4x2:
        param.data.view(torch.uint8).copy_(loaded_weight.view(torch.uint8))
    else:
        param.data.copy_(loaded_weight)


if _state.fault_active("e8m0_copy_zero_fill", "atom"):

    def weight_loader_process(param: nn.Parameter, loaded_weight: torch.Tensor) -> None:
        # The broken loader converts e8m0 scales numerically into uint8 bytes.
        if loaded_weight.dtype == dtypes.fp8_e8m0 and param.data.dtype == torch.uint8:
            param.data.copy_(loaded_weight.reshape(param.data.shape))
            return
        _copy_checkpoint_tensor(param, loaded_weight)

else:
    weight_loader_process = _copy_checkpoint_tensor


if _state.fault_active("fp8_copy_drops_scale", "atom"):

    def load_fp8_into_dense(dense: torch.Tensor, fp8_weight: torch.Tensor, block_scale: torch.Tensor) -> None:
        # The broken loader lets copy_ convert the FP8 values and forgets the scale.
        dense.copy_(fp8_weight)

else:

    def load_fp8_into_dense(dense: torch.Tensor, fp8_weight: torch.Tensor, block_scale: torch.Tensor) -> None:
        """Dequantize a 128x128-block FP8 checkpoint weight into a dense parameter."""
        rows, cols = fp8_weight.shape
        dense.copy_(fp8_weight.float() * _gemm.expand(block_scale, rows, cols, 128, 128))


if _state.fault_active("missing_e4m3fnuz_normalization", "atom"):

    def fp8_checkpoint_fixup(weight, weight_scale, input_scale=None):
        # The broken gfx942 load path hands e4m3fn bytes to the kernels unchanged.
        return weight, weight_scale, input_scale

else:
    #: What the gfx942 load path applies to e4m3fn checkpoint weights.
    fp8_checkpoint_fixup = normalize_e4m3fn_to_e4m3fnuz


# --------------------------------------------------------------------------
# MXFP4 GEMM
# --------------------------------------------------------------------------


def gemm_a4w4_quant(
    x: torch.Tensor,
    x_scale: torch.Tensor | None,
    weight: torch.Tensor,
    otype: torch.dtype,
    weight_scale: torch.Tensor,
    params_dtype: torch.dtype,
    input_scale: torch.Tensor | None,
    output_size: int,
) -> torch.Tensor:
    """MXFP4 linear: non-shuffle Triton, preshuffle Triton, or AITER's ``gemm_a4w4``.

    Activations are quantized with ``get_hip_quant(per_1x32)``; the preshuffle
    Triton GEMM swizzles activation scales only when M >= 32.
    """
    quant_func = get_hip_quant(QuantType.per_1x32)
    m = x.view(-1, x.size(-1)).shape[0]
    if params_dtype == dtypes.fp4x2 and use_fp4_non_shuffle_triton_gemm():
        if x_scale is None:
            x, x_scale = quant_func(x, quant_dtype=params_dtype, scale=input_scale, shuffle=False)
        y = gemm_afp4wfp4(
            x.view(torch.uint8),
            weight.view(torch.uint8),
            x_scale.view(torch.uint8),
            weight_scale.view(torch.uint8),
            otype,
        )
    elif params_dtype == dtypes.fp4x2 and use_triton_gemm() and gemm_afp4wfp4_preshuffle is not None:
        shuffled = m >= MXFP4_QUANT_BLOCK_SIZE
        if x_scale is None:
            x, x_scale = quant_func(x, quant_dtype=params_dtype, scale=input_scale, shuffle=shuffled)
        x_scale = (
            x_scale.view(torch.uint8).view(x_scale.shape[0] // MXFP4_QUANT_BLOCK_SIZE, -1)
            if shuffled
            else x_scale[:m].view(torch.uint8)
        )
        y = gemm_afp4wfp4_preshuffle(
            x.view(torch.uint8),
            weight.view(torch.uint8).view(weight.shape[0] // 16, -1),
            x_scale,
            weight_scale.view(torch.uint8).view(weight_scale.shape[0] // MXFP4_QUANT_BLOCK_SIZE, -1),
        )
    else:
        if x_scale is None:
            x, x_scale = quant_func(x, quant_dtype=params_dtype, scale=input_scale, shuffle=True)
        y = gemm_a4w4(x, weight, x_scale, weight_scale, dtype=otype)
    return y[:m, :output_size].to(otype)


# --------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------


class LinearBase(nn.Module):
    """A linear layer whose weights come from a (possibly quantized) checkpoint.

    ``quant_type``/``params_dtype`` describe the runtime weights. A
    ``QuantType.No`` layer with ``source_quant_dtype`` set receives an FP8
    128x128-block checkpoint and keeps a dense copy after loading.
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        bias: bool = False,
        quant_type: QuantType = QuantType.No,
        params_dtype: torch.dtype | None = None,
        source_quant_dtype: torch.dtype | None = None,
        prefix: str = "",
    ):
        super().__init__()
        self.prefix = prefix
        self.input_size = input_size
        self.output_size = output_size
        self.quant_type = quant_type
        self.params_dtype = params_dtype or dtypes.bf16
        self.source_quant_dtype = source_quant_dtype
        blocks = ((output_size + 127) // 128, (input_size + 127) // 128)
        if source_quant_dtype is not None:
            weight_dtype, scale_shape, scale_dtype = source_quant_dtype, blocks, dtypes.fp32
        elif quant_type == QuantType.per_Tensor:
            weight_dtype, scale_shape, scale_dtype = self.params_dtype, (1, 1), dtypes.fp32
        elif quant_type == QuantType.per_Token:
            weight_dtype, scale_shape, scale_dtype = self.params_dtype, (output_size, 1), dtypes.fp32
        elif quant_type == QuantType.per_1x128:
            scale_dtype = dtypes.fp8_e8m0 if envs.ATOM_FP8_BLOCKSCALE_USE_E8M0_SCALE else dtypes.fp32
            weight_dtype, scale_shape = self.params_dtype, blocks
        elif quant_type == QuantType.per_1x32:
            # The e8m0 scales live in a uint8 parameter: the checkpoint's
            # float8_e8m0fnu bytes must be copied, not converted.
            weight_dtype, scale_dtype = self.params_dtype, torch.uint8
            scale_shape = (output_size, (input_size + 31) // 32)
        else:
            weight_dtype, scale_shape, scale_dtype = self.params_dtype, None, None
        packed = weight_dtype in (dtypes.fp4x2, dtypes.i4x2)
        weight_shape = (output_size, input_size // 2 if packed else input_size)
        self.weight = atom_parameter(torch.empty(weight_shape, dtype=weight_dtype))
        self.weight_scale = None if scale_shape is None else atom_parameter(torch.empty(scale_shape, dtype=scale_dtype))
        self.bias = atom_parameter(torch.empty(output_size, dtype=dtypes.bf16)) if bias else None
        self.need_normalize_e4m3fn_to_e4m3fnuz = self.params_dtype == torch.float8_e4m3fnuz
        self.quant_func = get_hip_quant(self.quant_type)

    def weight_loader(self, param: nn.Parameter, loaded_weight: torch.Tensor) -> None:
        weight_loader_process(param, loaded_weight)

    def process_weights_after_loading(self) -> None:
        """Turn checkpoint tensors into what the kernels read (dense, normalized, shuffled)."""
        if self.source_quant_dtype is not None:
            dense = torch.empty(self.weight.shape, dtype=dtypes.bf16, device=self.weight.device)
            load_fp8_into_dense(dense, self.weight.data, self.weight_scale.data)
            self.weight = atom_parameter(dense)
            self.weight_scale = None
            return
        if self.need_normalize_e4m3fn_to_e4m3fnuz and self.weight_scale is not None:
            self.weight.data, self.weight_scale.data, _ = fp8_checkpoint_fixup(self.weight.data, self.weight_scale.data)
        if self._needs_shuffle():
            shuffle_weights(self.weight)
        if self.quant_type == QuantType.per_1x32 and not use_fp4_non_shuffle_triton_gemm():
            self.weight_scale.data = fp4_utils.e8m0_shuffle(self.weight_scale.data)

    def _needs_shuffle(self) -> bool:
        if self.quant_type == QuantType.per_Token:
            triton = use_triton_gemm() and gemm_a8w8_triton is not None
            return self.params_dtype == dtypes.fp8 and not triton
        if self.quant_type == QuantType.per_1x32:
            return not use_fp4_non_shuffle_triton_gemm()
        if self.quant_type == QuantType.per_1x128:
            return envs.ATOM_FP8_BLOCKSCALE_WEIGHT_PRESHUFFLE
        return False

    def forward(
        self,
        x: torch.Tensor,
        x_scale: torch.Tensor | None = None,
        otype=dtypes.bf16,
    ) -> torch.Tensor:
        if self.quant_type == QuantType.No:
            return tgemm.mm(x, self.weight, self.bias, otype=otype)
        if x_scale is None and self.quant_type != QuantType.per_1x32:
            quant_func = self.quant_func
            if self.quant_type == QuantType.per_1x128:
                quant_func = functools_partial(
                    self.quant_func,
                    transpose_scale=envs.ATOM_FP8_BLOCKSCALE_WEIGHT_PRESHUFFLE,
                    **({"scale_type": dtypes.fp8_e8m0} if envs.ATOM_FP8_BLOCKSCALE_USE_E8M0_SCALE else {}),
                )
            x, x_scale = quant_func(x, quant_dtype=self.params_dtype, scale=getattr(self, "input_scale", None))
        if self.quant_type == QuantType.per_Tensor:
            return self._per_tensor(x, x_scale, otype)
        if self.quant_type == QuantType.per_Token:
            return self._per_token(x, x_scale, otype)
        if self.quant_type == QuantType.per_1x128:
            y = self._per_1x128(x, x_scale, otype)
        else:
            y = gemm_a4w4_quant(
                x,
                x_scale,
                self.weight,
                otype,
                self.weight_scale.data,
                self.params_dtype,
                getattr(self, "input_scale", None),
                self.output_size,
            )
        return y if self.bias is None else y + self.bias

    def _per_tensor(self, x, x_scale, otype):
        if use_triton_gemm() and gemm_a8w8_triton is not None:
            rows, cols = x.shape[0], self.weight.shape[0]
            return gemm_a8w8_triton(
                x,
                self.weight,
                x_scale.reshape(-1)[:1].float().expand(rows).contiguous(),
                self.weight_scale.reshape(-1)[:1].float().expand(cols).contiguous(),
                bias=self.bias,
                dtype=otype,
            )
        return tgemm.mm(x, self.weight, self.bias, otype=otype, scale_a=x_scale, scale_b=self.weight_scale)

    def _per_token(self, x, x_scale, otype):
        if self.params_dtype == dtypes.i8:
            return gemm_a8w8(x, self.weight, x_scale, self.weight_scale, self.bias, dtype=otype)
        if use_triton_gemm() and gemm_a8w8_triton is not None:
            return gemm_a8w8_triton(
                x,
                self.weight,
                x_scale.reshape(-1).float(),
                self.weight_scale.reshape(-1).float(),
                bias=self.bias,
                dtype=otype,
            )
        y = gemm_a8w8_bpreshuffle(x, self.weight, x_scale, self.weight_scale, dtype=otype)
        return y if self.bias is None else y + self.bias

    def _per_1x128(self, x, x_scale, otype):
        if envs.ATOM_FP8_BLOCKSCALE_WEIGHT_PRESHUFFLE:
            return gemm_a8w8_blockscale_bpreshuffle(x, self.weight, x_scale, self.weight_scale, otype)
        if use_triton_gemm() and gemm_a8w8_blockscale_triton is not None:
            return gemm_a8w8_blockscale_triton(x, self.weight, x_scale, self.weight_scale, otype)
        return gemm_a8w8_blockscale(x, self.weight, x_scale, self.weight_scale, dtype=otype)
