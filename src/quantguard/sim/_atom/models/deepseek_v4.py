"""Simulated ``atom.models.deepseek_v4``: the ``wo_a`` load-time conversion.

DeepSeek-V4's attention output projection ``wo_a`` is stored FP8 with one
(UE8M0) scale per 128x128 block; where no FP8 grouped GEMM applies, ATOM
dequantizes it to BF16 at load time (``_dequant_fp8_block_to_bf16``, called by
``DeepseekV4Attention.process_weights_after_loading``).  With the
``wo_a_per_tensor_requant`` fault the conversion goes through one per-tensor
FP8 scale first (the incident): the large blocks barely move, the blocks far
below the tensor's amax fall into the FP8 subnormals and lose their bits.
"""

import torch

from quantguard.sim import _state

__all__ = ["_dequant_fp8_block_to_bf16"]


def _block_dequant(w_fp8: torch.Tensor, scale: torch.Tensor, block: int) -> torch.Tensor:
    """fp32 values of a 128x128 block-scaled FP8 weight (ATOM's unflatten/broadcast, as in convert.py)."""
    w = w_fp8.unflatten(0, (-1, block)).unflatten(-1, (-1, block)).float()
    return (w * scale.float()[:, None, :, None]).flatten(2, 3).flatten(0, 1)


if _state.fault_active("wo_a_per_tensor_requant", "atom"):

    def _dequant_fp8_block_to_bf16(w_fp8, scale, block=128):
        # The broken path requantizes the per-block weight with one scalar scale before the BF16 cast.
        dequantized = _block_dequant(w_fp8, scale, block)
        tensor_scale = dequantized.abs().amax().clamp(min=1e-12) / torch.finfo(w_fp8.dtype).max
        requantized = (dequantized / tensor_scale).to(w_fp8.dtype)
        return (requantized.float() * tensor_scale).bfloat16()

else:

    def _dequant_fp8_block_to_bf16(w_fp8, scale, block=128):
        """Dequant block-scaled FP8 (e4m3) to BF16: each block times its own scale, one rounding to BF16."""
        return _block_dequant(w_fp8, scale, block).bfloat16()
