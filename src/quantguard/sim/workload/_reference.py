"""Dense BF16 parts for the reference model: the master weights, no quantization, no AITER.

Every reference parameter has the name of its master weight, so the model is
filled by one copy per parameter.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from quantguard.numerics.routing import grouped_topk, routing_scores
from quantguard.sim.workload._config import ModelConfig
from quantguard.sim.workload._model import Decoder

__all__ = ["DenseMLACore", "build_reference_decoder", "route"]


def _empty(*shape: int, dtype: torch.dtype = torch.bfloat16) -> nn.Parameter:
    return nn.Parameter(torch.empty(*shape, dtype=dtype), requires_grad=False)


class DenseLinear(nn.Module):
    """``x @ W^T`` with BF16 weights, accumulated in fp32."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.weight = _empty(out_features, in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() @ self.weight.float().T).to(torch.bfloat16)


def route(config: ModelConfig, bias: torch.Tensor, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """DeepSeek-V3 routing in fp32: (T, top_k) weights (renormalized, times the scaling factor) and ids."""
    scores = routing_scores(logits, "sigmoid")
    return grouped_topk(
        scores, config.top_k, bias, config.num_expert_group, config.topk_group, True, config.routed_scaling_factor
    )


class DenseExperts(nn.Module):
    """Group-limited, bias-corrected sigmoid routing and dense SiLU experts."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        experts, inter, hidden = config.num_experts, config.moe_intermediate_size, config.hidden_size
        self.w13_weight = _empty(experts, 2 * inter, hidden)
        self.w2_weight = _empty(experts, hidden, inter)
        self.e_score_correction_bias = _empty(experts, dtype=torch.float32)

    def route(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return route(self.config, self.e_score_correction_bias, logits)

    def forward(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        weights, ids = self.route(logits)
        out = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
        for token in range(x.shape[0]):
            for weight, expert in zip(weights[token].tolist(), ids[token].tolist()):
                gate, up = (x[token].float() @ self.w13_weight[expert].float().T).chunk(2)
                hidden = (torch.nn.functional.silu(gate) * up).to(torch.bfloat16).float()
                out[token] += weight * (hidden @ self.w2_weight[expert].float().T)
        return out.to(torch.bfloat16)


class DenseMLACore(nn.Module):
    """Exact causal attention over K/V decompressed from the latent cache."""

    def __init__(self, config: ModelConfig, kv_b_proj: DenseLinear):
        super().__init__()
        self.num_heads, self.head_dim = config.num_heads, config.head_dim
        self.kv_b_proj = kv_b_proj

    def forward(self, q: torch.Tensor, latents: torch.Tensor, start: int) -> torch.Tensor:
        tokens = q.shape[0]
        kv = self.kv_b_proj(latents).float().view(-1, self.num_heads, 2 * self.head_dim)
        k, v = kv.split(self.head_dim, dim=-1)
        scores = torch.einsum("thd,shd->hts", q.float(), k) / math.sqrt(self.head_dim)
        positions = torch.arange(start, start + tokens, device=q.device).unsqueeze(1)
        mask = torch.arange(latents.shape[0], device=q.device).unsqueeze(0) > positions
        probs = torch.softmax(scores.masked_fill(mask, float("-inf")), dim=-1)
        return torch.einsum("hts,shd->thd", probs, v).reshape(tokens, -1).to(torch.bfloat16)


class _DenseParts:
    def __init__(self, config: ModelConfig):
        self.config = config

    def linear(self, name: str, in_features: int, out_features: int) -> nn.Module:
        return DenseLinear(in_features, out_features)

    def experts(self, name: str) -> nn.Module:
        return DenseExperts(self.config)

    def mla_core(self, name: str, kv_b_proj: nn.Module) -> nn.Module:
        return DenseMLACore(self.config, kv_b_proj)


def build_reference_decoder(config: ModelConfig, weights: Mapping[str, torch.Tensor]) -> Decoder:
    """The BF16 model of the fp32 master ``weights``, on the current default device."""
    model = Decoder(config, _DenseParts(config))
    for name, param in model.named_parameters():
        param.data.copy_(weights[name])
    return model.eval()
