"""The guarded CK-free run of ``validate ckfree`` on the simulator's ATOM-like workload.

One deployment (``quantguard.sim.workload.deploy`` with ``ck_free=True``, so
ATOM gets ``ATOM_CK_FREE=1``) runs with quantguard enabled the way a canary
runs it (``mode="log"``, ``on_block="log"``: every ASM block and violation is
reported and the original kernel still runs, so the numbers show what the
deployment really computes). Inside it:

* per-layer outputs over the calibration prompts (prefill, M > 1) are compared
  with the BF16 reference of the same master weights (float64 sums: cosine and
  norm ratio);
* the first prompt is greedy-decoded (M = 1 steps with the latent KV cache);
  its tokens are compared with the reference's own greedy tokens, and its
  output embeddings (the last decoder layer's output that produced each token)
  and logits with the reference's on the same token history.

Then quantguard is disabled and ``probes`` runs on the same installed
simulator (the checklist items that call AITER and ATOM directly). Errors of
the workload are kept, not raised: a CK-free deployment that cannot run is a
finding.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

import quantguard
from quantguard.numerics.metrics import Metrics
from quantguard.testing import CapturedEvents, capture_events
from quantguard.validate.accuracy.metrics import LayerStats
from quantguard.validate.accuracy.models import seeded_prompts

__all__ = ["Generation", "LayerMetrics", "SimSettings", "WorkloadRun", "run_sim"]


@dataclass(frozen=True)
class SimSettings:
    """The simulated deployment and what the workload runs on it."""

    arch: str
    backend: str
    preshuffle: bool | None
    faults: tuple[str, ...]
    device: torch.device
    prompts: int
    tokens: int
    log: str


@dataclass(frozen=True)
class LayerMetrics:
    """One module's output against the reference's; ``gated`` layers decide the verdict."""

    name: str
    metrics: Metrics
    gated: bool


@dataclass(frozen=True)
class Generation:
    prompt: tuple[int, ...]
    reference: tuple[int, ...]
    tokens: tuple[int, ...]
    embedding: Metrics
    logits: Metrics

    @property
    def matched(self) -> int:
        return sum(a == b for a, b in zip(self.tokens, self.reference))

    @property
    def token_match(self) -> float:
        return self.matched / len(self.reference) if self.reference else float("nan")


@dataclass
class WorkloadRun:
    """What the guarded run produced; ``error`` is set when the deployment could not run to the end."""

    events: CapturedEvents
    deployment: dict[str, Any] = field(default_factory=dict)
    positions: int = 0
    layers: list[LayerMetrics] = field(default_factory=list)
    generation: Generation | None = None
    error: str | None = None
    seconds: float = 0.0


def _layer_names(num_layers: int) -> list[tuple[str, bool]]:
    """Transformer layers (gated) and their attention/MoE outputs (shown, to localize a drop)."""
    names = []
    for index in range(num_layers):
        names += [(f"layers.{index}", True), (f"layers.{index}.attn", False), (f"layers.{index}.mlp", False)]
    return names


def _last_rows(model: nn.Module, run: Callable[[], Any], count: int) -> tuple[Any, torch.Tensor, torch.Tensor]:
    """Run ``run()``; the last-position output embedding and logits of each of the first ``count`` forwards."""
    hidden: list[torch.Tensor] = []
    logits: list[torch.Tensor] = []
    handles = [
        model.layers[-1].register_forward_hook(lambda m, a, out: hidden.append(out[-1:].detach().float())),
        model.register_forward_hook(lambda m, a, out: logits.append(out[-1:].detach().float())),
    ]
    try:
        result = run()
    finally:
        for handle in handles:
            handle.remove()
    return result, torch.cat(hidden[:count]), torch.cat(logits[:count])


def _teacher_forced(reference: nn.Module, prompt: Sequence[int], tokens: Sequence[int]) -> tuple[torch.Tensor, ...]:
    """The reference's output embeddings and logits where it predicts each of ``tokens`` after ``prompt``."""
    hidden: list[torch.Tensor] = []
    handle = reference.layers[-1].register_forward_hook(lambda m, a, out: hidden.append(out.detach().float()))
    try:
        ids = torch.tensor([*prompt, *tokens[:-1]], device=reference.embed.weight.device)
        logits = reference(ids)
    finally:
        handle.remove()
    rows = slice(len(prompt) - 1, len(prompt) - 1 + len(tokens))
    return hidden[0][rows], logits[rows].float()


def _metrics(out: torch.Tensor, ref: torch.Tensor) -> Metrics:
    stats = LayerStats()
    stats.add(out, ref)
    return stats.metrics()


def _measure(
    run: WorkloadRun,
    model: nn.Module,
    reference: nn.Module,
    prompts: list[list[int]],
    expected: list[dict[str, torch.Tensor]],
    reference_tokens: list[int],
    tokens: int,
) -> None:
    from quantguard.sim import workload

    names = _layer_names(len(model.layers))
    stats = {name: LayerStats() for name, _ in names}
    for prompt, want in zip(prompts, expected):
        got = workload.capture_outputs(model, prompt, list(stats))
        for name, layer_stats in stats.items():
            layer_stats.add(got[name], want[name])
    run.positions = sum(len(prompt) for prompt in prompts)
    run.layers = [LayerMetrics(name, stats[name].metrics(), gated) for name, gated in names]
    if tokens == 0:
        return
    prompt = prompts[0]
    generated, hidden, logits = _last_rows(model, lambda: workload.generate(model, prompt, tokens), tokens)
    ref_hidden, ref_logits = _teacher_forced(reference, prompt, generated)
    run.generation = Generation(
        tuple(prompt),
        tuple(reference_tokens),
        tuple(generated),
        _metrics(hidden, ref_hidden),
        _metrics(logits, ref_logits),
    )


def run_sim(settings: SimSettings, probes: Callable[[], list[Any]]) -> tuple[WorkloadRun, list[Any]]:
    """Run the guarded CK-free workload, then ``probes()`` on the same simulator with quantguard off."""
    from quantguard.sim import workload

    started = time.perf_counter()
    reference = workload.build_reference(device=settings.device)
    config = reference.config
    prompts = [list(prompt) for prompt in seeded_prompts(settings.prompts, config.vocab_size)]
    if len(prompts[0]) + settings.tokens > config.max_positions:
        raise ValueError(
            f"--tokens {settings.tokens}: the workload has {config.max_positions} positions, "
            f"{len(prompts[0])} of them taken by the prompt"
        )
    names = [name for name, _ in _layer_names(config.num_layers)]
    expected = [workload.capture_outputs(reference, prompt, names) for prompt in prompts]
    reference_tokens = workload.generate(reference, prompts[0], settings.tokens) if settings.tokens else []
    items: list[Any] = []
    with capture_events() as events:
        run = WorkloadRun(events)
        # no gfx/ck_free overrides: the guard must detect the CK-free gfx950 build by itself, as in production
        quantguard.enable(
            mode="log", on_block="log", log=settings.log, seed=0, label=f"validate ckfree {settings.arch}"
        )
        try:
            with workload.deploy(
                arch=settings.arch,
                ck_free=True,
                backend=settings.backend,
                preshuffle=settings.preshuffle,
                faults=settings.faults,
                device=settings.device,
            ) as deployment:
                run.deployment = {
                    "backend": deployment.backend,
                    "preshuffle": deployment.preshuffle,
                    "env": dict(deployment.env),
                }
                try:
                    model = workload.build_model(deployment)
                    _measure(run, model, reference, prompts, expected, reference_tokens, settings.tokens)
                except (Exception, SystemExit) as exc:  # SystemExit: the JIT builder may exit
                    run.error = f"{type(exc).__name__}: {str(exc).strip() or repr(exc)}"
                finally:
                    quantguard.disable()
                items = probes()
        finally:
            if quantguard.is_enabled():
                quantguard.disable()
    run.seconds = time.perf_counter() - started
    return run, items
