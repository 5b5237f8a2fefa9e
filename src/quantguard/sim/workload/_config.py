"""Shapes and quantization schemes of the simulated ATOM workload."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = ["DEFAULT_SCHEMES", "SCHEMES", "ModelConfig", "resolve_schemes"]

#: Quantization schemes a layer family can use.
SCHEMES = ("bf16", "fp8_per_tensor", "fp8_per_token", "fp8_blockscale", "mxfp4")

#: Layer family -> scheme. ``attn.o_proj`` is MXFP4 where FP4 GEMMs exist (gfx950).
DEFAULT_SCHEMES: Mapping[str, str] = MappingProxyType(
    {
        "attn.q_proj": "fp8_blockscale",
        "attn.kv_a_proj": "fp8_per_token",
        "attn.o_proj": "mxfp4",
        "mlp.experts": "fp8_blockscale",
        "mlp.shared_expert.gate_up_proj": "fp8_per_token",
        "mlp.shared_expert.down_proj": "fp8_per_tensor",
    }
)

_EXPERT_SCHEMES = ("bf16", "fp8_per_token", "fp8_blockscale")


@dataclass(frozen=True)
class ModelConfig:
    """A DeepSeek-shaped decoder small enough to generate 50 tokens on a CPU in well under a second.

    Every dimension that a blockscale GEMM sees is a multiple of 128.
    """

    vocab_size: int = 512
    hidden_size: int = 256
    num_layers: int = 2
    num_heads: int = 2
    head_dim: int = 128
    kv_lora_rank: int = 128
    num_experts: int = 8
    top_k: int = 2
    num_expert_group: int = 4
    topk_group: int = 2
    moe_intermediate_size: int = 256
    shared_intermediate_size: int = 128
    routed_scaling_factor: float = 2.5
    max_positions: int = 256
    seed: int = 0


def resolve_schemes(arch: str, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The scheme of every layer family on ``arch``; ``overrides`` replace defaults.

    gfx942 has no FP4 GEMM, so its default ``attn.o_proj`` is ``fp8_blockscale`` and
    asking for ``mxfp4`` there is an error.
    """
    schemes = dict(DEFAULT_SCHEMES)
    if arch == "gfx942":
        schemes["attn.o_proj"] = "fp8_blockscale"
    for family, scheme in (overrides or {}).items():
        if family not in DEFAULT_SCHEMES:
            raise ValueError(f"unknown layer family {family!r}; known: {', '.join(DEFAULT_SCHEMES)}")
        allowed = _EXPERT_SCHEMES if family == "mlp.experts" else SCHEMES
        if scheme not in allowed:
            raise ValueError(f"scheme {scheme!r} is not available for {family!r}; accepted: {', '.join(allowed)}")
        if scheme == "mxfp4" and arch == "gfx942":
            raise ValueError("MXFP4 GEMMs do not exist on gfx942")
        schemes[family] = scheme
    return schemes
