"""A small deterministic ATOM-like workload on the simulated AITER.

A two-layer DeepSeek-shaped decoder (MLA attention with an FP8 batched
absorption GEMM, routed MoE with a shared expert) built only from the
simulated ``atom`` layers, loaded from a quantized checkpoint of seeded fp32
master weights, plus two references with the same module names: the BF16 model of the master
weights (what quantization costs) and the precision-matched model of the
quantized checkpoint (what the kernels should compute from their operands)::

    with workload.deploy(arch="gfx950", backend="triton") as deployment:
        model = workload.build_model(deployment)
        tokens = workload.generate(model, [1, 2, 3], max_new_tokens=50)
    reference = workload.build_reference()
    matched = workload.build_matched_reference("gfx950")

Backends follow ATOM's rules (see :func:`deploy`); quant schemes per layer
family are in :data:`DEFAULT_SCHEMES`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

import quantguard.sim as sim
from quantguard.sim.workload._checkpoint import checkpoint, master_weights, to_device
from quantguard.sim.workload._config import DEFAULT_SCHEMES, SCHEMES, ModelConfig, resolve_schemes
from quantguard.sim.workload._deploy import BACKENDS, Deployment, deploy, register_tuned_configs
from quantguard.sim.workload._matched import arch_fp8, build_matched_decoder
from quantguard.sim.workload._model import Decoder, KVCache
from quantguard.sim.workload._quantized import build_quantized_decoder, load_checkpoint
from quantguard.sim.workload._reference import build_reference_decoder
from quantguard.sim.workload._run import capture_outputs, generate, layer_errors

__all__ = [
    "BACKENDS",
    "DEFAULT_SCHEMES",
    "SCHEMES",
    "Decoder",
    "Deployment",
    "KVCache",
    "ModelConfig",
    "arch_fp8",
    "build_matched_reference",
    "build_model",
    "build_reference",
    "capture_outputs",
    "deploy",
    "generate",
    "layer_errors",
]


def build_model(
    deployment: Deployment,
    schemes: Mapping[str, str] | None = None,
    config: ModelConfig = ModelConfig(),
) -> Decoder:
    """Build the ATOM model, load its quantized checkpoint and post-process the weights.

    ``schemes`` overrides :data:`DEFAULT_SCHEMES` per layer family.
    """
    if not sim.is_installed() or not sim.current().atom:
        raise RuntimeError("build_model needs the simulator installed with atom=True; use deploy()")
    resolved = resolve_schemes(deployment.arch, schemes)
    tensors = checkpoint(master_weights(config), resolved)
    with torch.device(deployment.device):
        model = build_quantized_decoder(config, resolved)
    register_tuned_configs(deployment.backend, model)
    load_checkpoint(model, {name: to_device(t, deployment.device) for name, t in tensors.items()})
    return model.eval()


def build_reference(config: ModelConfig = ModelConfig(), device: str | torch.device = "cpu") -> Decoder:
    """The unquantized BF16 model of the same master weights (needs no simulator)."""
    device = torch.device(device)
    weights = {name: tensor.to(device) for name, tensor in master_weights(config).items()}
    with device:
        return build_reference_decoder(config, weights)


def build_matched_reference(
    arch: str,
    schemes: Mapping[str, str] | None = None,
    config: ModelConfig = ModelConfig(),
    device: str | torch.device = "cpu",
    absorbed_prefill: bool = True,
    ck_moe: bool = False,
) -> Decoder:
    """The precision-matched model of ``arch``'s deployment (needs no simulator).

    The same quantized operands as :func:`build_model` (checkpoint weights and
    scales, activations quantized by each layer's recipe), multiplied in fp32:
    a clean deployment differs from it by accumulation order only.
    ``absorbed_prefill`` is True where ATOM's MLA prefill runs the absorbed
    FP8 GEMMs (Triton, which CK-free forces); False for a CK prefill.
    ``ck_moe``: the experts run AITER's CK ``fused_moe`` (fp32 stage outputs)
    rather than ATOM's Triton MoE (BF16 GEMM outputs).
    """
    with torch.device(device):
        return build_matched_decoder(arch, schemes, config, absorbed_prefill, ck_moe)
