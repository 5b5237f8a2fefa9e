"""Shapes and quantization schemes of the simulated ATOM workload."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from quantguard.contracts.aiter_paths import scheme_archs

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

    A default whose scheme AITER has no GEMM for on ``arch`` (MXFP4 on gfx942,
    :func:`~quantguard.contracts.aiter_paths.scheme_archs`) becomes
    ``fp8_blockscale``; asking for it there is an error.
    """
    schemes = {
        family: scheme if arch in scheme_archs(scheme) else "fp8_blockscale"
        for family, scheme in DEFAULT_SCHEMES.items()
    }
    for family, scheme in (overrides or {}).items():
        if family not in DEFAULT_SCHEMES:
            raise ValueError(f"unknown layer family {family!r}; known: {', '.join(DEFAULT_SCHEMES)}")
        allowed = _EXPERT_SCHEMES if family == "mlp.experts" else SCHEMES
        if scheme not in allowed:
            raise ValueError(f"scheme {scheme!r} is not available for {family!r}; accepted: {', '.join(allowed)}")
        if scheme != "bf16" and arch not in scheme_archs(scheme):
            raise ValueError(f"{scheme} GEMMs do not exist on {arch}")
        schemes[family] = scheme
    return schemes
