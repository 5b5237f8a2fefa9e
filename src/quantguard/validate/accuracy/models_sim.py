"""``--model sim``: the simulator's ATOM-like workload under each configuration.

Each quantized variant is what an ATOM deployment builds: ``workload.build_model``
inside ``workload.deploy(arch, ck_free, backend, preshuffle, faults)``, loaded
from the workload's quantized checkpoint and dispatched by the simulated ATOM
layers onto the simulated AITER. The reference is ``workload.build_reference()``
(BF16, same master weights, same module names). A configuration sets the
scheme of every dense linear family; the routed experts follow where ATOM's
MoE can (its Triton MoE, used for the Triton backend and CK-free builds, takes
FP8 blockscale experts only, and no MoE path takes MXFP4), otherwise they stay
FP8 blockscale. ATOM has no INT4 path, so ``int4`` is not offered, nor are the
pure-torch configurations (the workload runs on the simulated ATOM only). The
``ckfree`` configuration deploys a CK-free build.

The workload is far noisier than a trained LLM: its two layers are not
dominated by the residual stream, FP8 noise flips MoE routing, and its MLA
absorption GEMM is always FP8. Clean runs reach per-layer cosines of about
0.96 (FP8) and 0.89 (MXFP4), so its own thresholds (:data:`THRESHOLDS`)
replace the defaults meant for real models; the incidents it reproduces still
fall far below them or move the norm ratio.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from quantguard.validate.accuracy.configurations import Configuration
from quantguard.validate.accuracy.models import LoadOptions, ModelError, ModelSpec, Variant, seeded_prompts
from quantguard.validate.quantize import UnsupportedPath
from quantguard.validate.quantize_kernels import unsupported_arch

__all__ = ["THRESHOLDS", "WORKLOAD_SCHEMES", "sim_workload"]

#: Configurations the workload runs (the workload's schemes share validate's names).
WORKLOAD_SCHEMES = ("fp8_per_token", "fp8_blockscale", "mxfp4")

#: Cosine minimums for this workload, measured on clean runs of every arch and backend with margin.
THRESHOLDS = {"fp8": 0.94, "fp4": 0.85}


def _schemes(scheme: str, triton_moe: bool) -> dict[str, str]:
    from quantguard.sim import workload

    chosen = {family: scheme for family in workload.DEFAULT_SCHEMES}
    if scheme == "mxfp4" or (scheme == "fp8_per_token" and triton_moe):
        chosen["mlp.experts"] = "fp8_blockscale"
    return chosen


def _logits(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    # The workload's decoder takes one sequence (T,) at a time.
    return torch.stack([model(row) for row in ids])


def _generate(model: nn.Module, prompts: Sequence[Sequence[int]], max_new_tokens: int) -> list[list[int]]:
    from quantguard.sim import workload

    return [workload.generate(model, list(prompt), max_new_tokens) for prompt in prompts]


def sim_workload(options: LoadOptions) -> ModelSpec:
    """The spec of the simulated ATOM workload (installs the simulator per configuration)."""
    from quantguard.sim import faults, workload

    if options.dtype != torch.bfloat16:
        raise ModelError("the simulated workload's reference is BF16 only; drop --dtype")
    try:
        faults.parse(options.faults).check_reachable(arch=options.arch, ck_free=options.ck_free, atom=True)
    except ValueError as exc:
        raise ModelError(str(exc)) from exc
    config = workload.ModelConfig()
    prompts = seeded_prompts(options.num_prompts, config.vocab_size)

    def check(quant: Configuration) -> None:
        if quant.pure_torch:
            raise UnsupportedPath(f"{quant.name} runs in plain torch; the simulated workload runs on ATOM only")
        if quant.scheme not in WORKLOAD_SCHEMES:
            raise UnsupportedPath(
                f"{quant.scheme} has no ATOM path in the simulated workload; it runs {', '.join(WORKLOAD_SCHEMES)}"
            )
        reason = unsupported_arch(quant.scheme, options.arch)
        if reason:
            raise UnsupportedPath(reason)

    @contextmanager
    def variant(quant: Configuration) -> Iterator[Variant]:
        ck_free = options.ck_free or quant.ck_free
        triton = quant.backend == "triton" or ck_free
        schemes = _schemes(quant.scheme, triton)
        with workload.deploy(
            arch=options.arch,
            ck_free=ck_free,
            backend=quant.backend,
            preshuffle=quant.preshuffle,
            faults=options.faults,
            device=options.device,
        ) as deployment:
            model = workload.build_model(deployment, schemes=schemes)
            kernels = (
                f"simulated ATOM dispatch: backend {deployment.backend}"
                f"{' (CK-free: ATOM forces Triton)' if ck_free else ''}, "
                f"preshuffle {'on' if deployment.preshuffle else 'off'}; "
                + ", ".join(f"{family}={scheme}" for family, scheme in schemes.items())
            )
            yield Variant(model, kernels, tuple(schemes))

    return ModelSpec(
        name="sim",
        description=(
            f"sim (quantguard.sim ATOM-like workload: {config.num_layers} DeepSeek-shaped layers, "
            f"MLA + MoE, hidden {config.hidden_size}, vocab {config.vocab_size})"
        ),
        reference=workload.build_reference(device=options.device),
        layers=tuple(f"layers.{index}" for index in range(config.num_layers)),
        calibration=(torch.tensor(prompts, dtype=torch.long, device=options.device),),
        prompts=prompts,
        logits=_logits,
        generate=_generate,
        check=check,
        variant=variant,
        thresholds=THRESHOLDS,
    )
