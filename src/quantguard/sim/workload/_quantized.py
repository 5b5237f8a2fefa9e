"""The quantized model: ATOM layers filled from the quantized checkpoint."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from quantguard.contracts import aiter_paths
from quantguard.sim.workload._config import ModelConfig
from quantguard.sim.workload._model import Decoder

__all__ = ["build_quantized_decoder", "load_checkpoint"]


def _layer_kind(scheme: str):
    """The ``QuantType`` and parameter dtype ATOM builds a layer of ``scheme`` with (from the AITER path table)."""
    from aiter import QuantType, dtypes

    if scheme == "bf16":
        return QuantType.No, None
    form = aiter_paths.SCHEMES[scheme]
    return getattr(QuantType, form.quant_type), getattr(dtypes, form.quant_dtype)


def _family(name: str) -> str:
    return name.split(".", 2)[2] if name.startswith("layers.") else name


class _AtomParts:
    def __init__(self, config: ModelConfig, schemes: Mapping[str, str]):
        self.config, self.schemes = config, schemes

    def linear(self, name: str, in_features: int, out_features: int) -> nn.Module:
        from aiter import dtypes
        from atom.model_ops.linear import LinearBase

        family = _family(name)
        if family == "attn.core.kv_b_proj":
            return LinearBase(in_features, out_features, source_quant_dtype=dtypes.fp8, prefix=name)
        quant_type, params_dtype = _layer_kind(self.schemes.get(family, "bf16"))
        return LinearBase(in_features, out_features, quant_type=quant_type, params_dtype=params_dtype, prefix=name)

    def experts(self, name: str) -> nn.Module:
        from atom.model_ops.moe import FusedMoE

        cfg = self.config
        quant_type, params_dtype = _layer_kind(self.schemes["mlp.experts"])
        return FusedMoE(
            cfg.num_experts,
            cfg.top_k,
            cfg.hidden_size,
            cfg.moe_intermediate_size,
            cfg.num_expert_group,
            cfg.topk_group,
            routed_scaling_factor=cfg.routed_scaling_factor,
            quant_type=quant_type,
            params_dtype=params_dtype,
            prefix=name,
        )

    def mla_core(self, name: str, kv_b_proj: nn.Module) -> nn.Module:
        from atom.model_ops.attention_mla import MLAAttention

        cfg = self.config
        return MLAAttention(cfg.num_heads, cfg.head_dim, cfg.kv_lora_rank, kv_b_proj)


def load_checkpoint(model: nn.Module, tensors: Mapping[str, torch.Tensor]) -> None:
    """Load the checkpoint with the simulated ATOM's loader (``atom.model_loader.loader.load_model``).

    Each tensor goes through its module's ``weight_loader``; then every layer's
    ``process_weights_after_loading()`` and its quant method's, as ATOM main
    does (children first: the MLA core needs its ``kv_b_proj`` already dense).
    """
    from atom.model_loader.loader import load_model

    load_model(model, tensors)


def build_quantized_decoder(config: ModelConfig, schemes: Mapping[str, str]) -> Decoder:
    """An empty ATOM model (parameters on the current default device)."""
    return Decoder(config, _AtomParts(config, schemes))
