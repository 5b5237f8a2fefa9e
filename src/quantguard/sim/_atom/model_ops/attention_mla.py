"""Simulated ``atom.model_ops.attention_mla``: multi-head latent attention (MLA) core.

Keys and values are compressed into a cached latent ``c_kv``; ``kv_b_proj``
decompresses it per head into ``[k_nope; v]``. After loading, its weight is
split into ``W_UK``/``W_UV`` and re-quantized per batched tensor to FP8 for
the absorbed path, which runs AITER's batched Triton FP8 GEMM twice (query
into latent space, latent output back to value space). A CK-path prefill
decompresses K/V with ``kv_b_proj`` instead; decode and the Triton path
always use the absorbed GEMMs. No rotary embedding is modelled.
"""

import math

import torch
from aiter import dtypes

from aiter.ops.triton.batched_gemm_a8w8_a_per_token_group_prequant_w_per_batched_tensor_quant import (  # isort: skip
    batched_gemm_a8w8_a_per_token_group_prequant_w_per_batched_tensor_quant as _aiter_triton_fp8_bmm,
)
from atom.model_ops.linear import LinearBase, use_triton_gemm
from torch import nn

__all__ = ["MLAAttention", "dynamic_per_batched_tensor_quant"]


def dynamic_per_batched_tensor_quant(x: torch.Tensor, dtype: torch.dtype = dtypes.fp8):
    """FP8-quantize a whole batched tensor with one scale; returns (values, dequant scale)."""
    limit = torch.finfo(dtype).max
    amax = x.float().abs().amax().clamp(min=1e-10)
    scale = limit / amax
    values = (x.float() * scale).clamp(-limit, limit).to(dtype)
    return values, scale.reciprocal().reshape(1)


class MLAAttention(nn.Module):
    """Causal attention of ``q`` (T, H, d) over a latent cache (S, r) with absorbed FP8 weights."""

    def __init__(self, num_heads: int, head_dim: int, kv_lora_rank: int, kv_b_proj: LinearBase):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.kv_lora_rank = kv_lora_rank
        self.kv_b_proj = kv_b_proj

    def process_weights_after_loading(self) -> None:
        """Split the dense ``kv_b_proj`` weight into FP8 ``W_K`` (H, r, d) and ``W_V`` (H, d, r)."""
        weight = self.kv_b_proj.weight.data.view(self.num_heads, 2 * self.head_dim, self.kv_lora_rank)
        w_uk, w_uv = weight.split(self.head_dim, dim=1)
        self.W_K, self.W_K_scale = dynamic_per_batched_tensor_quant(w_uk.transpose(1, 2).contiguous())
        self.W_V, self.W_V_scale = dynamic_per_batched_tensor_quant(w_uv.contiguous())

    def forward(self, q: torch.Tensor, latent_cache: torch.Tensor, start: int) -> torch.Tensor:
        """Attention output (T, H * d) for queries at positions ``start .. start + T - 1``."""
        tokens = q.shape[0]
        positions = torch.arange(start, start + tokens, device=q.device).unsqueeze(1)
        mask = torch.arange(latent_cache.shape[0], device=q.device).unsqueeze(0) > positions
        if tokens > 1 and not use_triton_gemm():
            return self._decompressed(q, latent_cache, mask)
        return self._absorbed(q, latent_cache, mask)

    def _softmax(self, scores, mask):
        scores = scores.float() / math.sqrt(self.head_dim)
        return torch.softmax(scores.masked_fill(mask, float("-inf")), dim=-1)

    def _decompressed(self, q, latent_cache, mask):
        kv = self.kv_b_proj(latent_cache).view(-1, self.num_heads, 2 * self.head_dim)
        k_nope, v = kv.float().split(self.head_dim, dim=-1)
        probs = self._softmax(torch.einsum("thd,shd->hts", q.float(), k_nope), mask)
        out = torch.einsum("hts,shd->thd", probs, v)
        return out.reshape(q.shape[0], -1).to(q.dtype)

    def _absorbed(self, q, latent_cache, mask):
        q_latent = _aiter_triton_fp8_bmm(
            q, self.W_K, self.W_K_scale, group_size=128, transpose_bm=True, transpose_bm_in=True
        )
        probs = self._softmax(torch.einsum("thr,sr->hts", q_latent.float(), latent_cache.float()), mask)
        out_latent = torch.einsum("hts,sr->thr", probs, latent_cache.float()).to(q.dtype)
        out = _aiter_triton_fp8_bmm(
            out_latent, self.W_V, self.W_V_scale, group_size=128, transpose_bm=True, transpose_bm_in=True
        )
        return out.reshape(q.shape[0], -1)
