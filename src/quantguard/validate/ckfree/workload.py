"""The guarded CK-free run of ``validate ckfree`` on the simulator's ATOM-like workload.

One deployment (``quantguard.sim.workload.deploy`` with ``ck_free=True``, so
ATOM gets ``ATOM_CK_FREE=1``) runs with quantguard enabled the way a canary
runs it (``mode="log"``, ``on_block="log"``: every ASM block and violation is
reported and the original kernel still runs, so the numbers show what the
deployment really computes). Inside it:

* per-layer outputs over the calibration prompts (prefill, M > 1) are compared
  with the **precision-matched** reference (``workload.build_matched_reference``:
  the same quantized weights and scales, activations quantized by the same
  recipe, products in fp32), layer by layer: each reference layer is fed the
  deployed layer's own input, so a deviation is that layer's and not an echo
  of an earlier one. The MoE routing (gate GEMM and top-k on the deployed MoE
  input) and the expert GEMMs (on the deployed input and routing) are compared
  the same way. The quantization error is the reference's too, so only the
  kernels' deviation remains; the end-to-end distance to the BF16 model of the
  master weights is kept as information;
* the first prompt is greedy-decoded (M = 1 steps with the latent KV cache);
  its tokens are compared with the BF16 reference's own greedy tokens, and its
  output embeddings (the last decoder layer's output that produced each token)
  and logits with the BF16 reference's on the same token history.

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


#: What a compared module's row is gated by: a transformer layer, a MoE part, or nothing (shown).
LAYER, MOE = "layer", "moe"


@dataclass(frozen=True)
class LayerMetrics:
    """One module's output against the precision-matched reference's (``bf16``: against the BF16
    model's, end to end, information only); ``gate`` says which threshold decides it, None: shown."""

    name: str
    metrics: Metrics
    gate: str | None
    bf16: Metrics | None = None
    routing_match: float | None = None  # share of tokens routed to the same experts

    @property
    def gated(self) -> bool:
        return self.gate is not None


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


def _layer_names(num_layers: int) -> list[tuple[str, str | None]]:
    """Transformer layers and MoE parts (gated), attention and MoE outputs (shown, to localize a drop)."""
    names: list[tuple[str, str | None]] = []
    for index in range(num_layers):
        layer = f"layers.{index}"
        names += [(layer, LAYER), (f"{layer}.attn", None), (f"{layer}.mlp", None)]
        names += [(f"{layer}.mlp.routing", MOE), (f"{layer}.mlp.experts", MOE)]
    return names


def _dense_routing(weights: torch.Tensor, ids: torch.Tensor, experts: int) -> torch.Tensor:
    """(T, top_k) weights and ids -> the (T, experts) routing matrix (0 for unchosen experts)."""
    dense = torch.zeros(weights.shape[0], experts, dtype=torch.float32, device=weights.device)
    return dense.scatter_(1, ids.long(), weights.float())


class _Captured:
    """The deployed model's layer inputs, module outputs, expert inputs and routing for one forward."""

    def __init__(self, model: nn.Module, modules: Sequence[str]):
        self.inputs: dict[str, torch.Tensor] = {}
        self.outputs: dict[str, torch.Tensor] = {}
        self.experts_args: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.routing: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._model, self._modules = model, modules

    def run(self, prompt: Sequence[int]) -> None:
        named = dict(self._model.named_modules())
        handles = []
        for name in self._modules:
            handles.append(named[name].register_forward_hook(self._record(name)))
        for index, layer in enumerate(self._model.layers):
            prefix = f"layers.{index}"
            handles.append(layer.register_forward_pre_hook(self._record_input(prefix)))
            experts = layer.mlp.experts
            handles.append(experts.register_forward_pre_hook(self._record_experts(prefix)))
            handles.append(experts.register_forward_hook(self._record(f"{prefix}.mlp.experts")))
            experts.select_experts = self._routing(prefix, experts.select_experts)
        try:
            self._model(torch.tensor(list(prompt), device=self._model.embed.weight.device))
        finally:
            for handle in handles:
                handle.remove()
            for layer in self._model.layers:
                del layer.mlp.experts.select_experts  # the class's method again

    def _record(self, name: str):
        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            self.outputs[name] = output.detach().float().clone()

        return hook

    def _record_input(self, prefix: str):
        def hook(module: nn.Module, args: tuple) -> None:
            self.inputs[prefix] = args[0].detach().clone()

        return hook

    def _record_experts(self, prefix: str):
        def hook(module: nn.Module, args: tuple) -> None:
            self.experts_args[prefix] = (args[0].detach().clone(), args[1].detach().clone())

        return hook

    def _routing(self, prefix: str, select: Callable[..., Any]) -> Callable[..., Any]:
        def recorded(*args: Any, **kwargs: Any) -> Any:  # the guard's routing wrapper passes keywords
            result = select(*args, **kwargs)
            self.routing[prefix] = (result[0].detach().clone(), result[1].detach().clone())
            return result

        return recorded


@dataclass(frozen=True)
class _Routing:
    """One MoE's routing for one prompt: (tokens, experts) weight matrices and same-expert flags."""

    deployed: torch.Tensor
    reference: torch.Tensor
    same: torch.Tensor


def _matched_outputs(
    matched: nn.Module, prompt: Sequence[int], got: _Captured, names: Sequence[str]
) -> tuple[dict[str, torch.Tensor], dict[str, _Routing]]:
    """The matched reference's module outputs (each layer fed the deployed layer's input, the expert
    GEMMs the deployed MoE input and routing) and each MoE's routing from the deployed MoE input."""
    outputs: dict[str, torch.Tensor] = {}
    named = dict(matched.named_modules())
    handles = []
    for index, layer in enumerate(matched.layers):
        deployed_input = got.inputs[f"layers.{index}"]
        handles.append(layer.register_forward_pre_hook(lambda m, args, x=deployed_input: (x, *args[1:])))
    for name in names:

        def hook(module: nn.Module, args: tuple, output: torch.Tensor, name: str = name) -> None:
            outputs[name] = output.detach().float().clone()

        handles.append(named[name].register_forward_hook(hook))
    try:
        matched(torch.tensor(list(prompt), device=matched.embed.weight.device))
    finally:
        for handle in handles:
            handle.remove()
    routing: dict[str, _Routing] = {}
    for index, layer in enumerate(matched.layers):
        prefix = f"layers.{index}"
        x, _ = got.experts_args[prefix]
        experts = layer.mlp.experts
        weights, ids = got.routing[prefix]
        outputs[f"{prefix}.mlp.experts"] = experts.combine(x, weights, ids).float()
        ref_weights, ref_ids = experts.route(layer.mlp.gate(x))
        count = experts.e_score_correction_bias.numel()
        routing[f"{prefix}.mlp.routing"] = _Routing(
            _dense_routing(weights, ids, count),
            _dense_routing(ref_weights, ref_ids, count),
            (ref_ids.long().sort(-1).values == ids.long().sort(-1).values).all(-1),
        )
    return outputs, routing


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


def _shown_modules(num_layers: int) -> list[str]:
    """The modules whose outputs forward hooks capture in both models (the MoE parts are recomputed)."""
    return [name for name, _ in _layer_names(num_layers) if not name.endswith((".routing", ".experts"))]


def _measure(
    run: WorkloadRun,
    model: nn.Module,
    matched: nn.Module,
    reference: nn.Module,
    prompts: list[list[int]],
    expected: list[dict[str, torch.Tensor]],
    reference_tokens: list[int],
    tokens: int,
) -> None:
    from quantguard.sim import workload

    names = _layer_names(len(model.layers))
    hooked = _shown_modules(len(model.layers))
    stats = {name: LayerStats() for name, _ in names}
    bf16 = {name: LayerStats() for name in hooked}
    same = {name: [0.0, 0] for name, _ in names if name.endswith(".routing")}
    for prompt, want in zip(prompts, expected):
        got = _Captured(model, hooked)
        got.run(prompt)
        ref, routing = _matched_outputs(matched, prompt, got, hooked)
        for name in hooked:
            stats[name].add(got.outputs[name], ref[name])
            bf16[name].add(got.outputs[name], want[name])
        for index in range(len(model.layers)):
            experts = f"layers.{index}.mlp.experts"
            stats[experts].add(got.outputs[experts], ref[experts])
        for name, routed in routing.items():
            stats[name].add(routed.deployed, routed.reference)
            same[name][0] += int(routed.same.sum())
            same[name][1] += routed.same.numel()
    run.positions = sum(len(prompt) for prompt in prompts)
    run.layers = [
        LayerMetrics(
            name,
            stats[name].metrics(),
            gate,
            bf16[name].metrics() if name in bf16 else None,
            same[name][0] / same[name][1] if name in same and same[name][1] else None,
        )
        for name, gate in names
    ]
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
    # the references need no simulator: built before the deployment, outside the guarded run
    matched = workload.build_matched_reference(settings.arch, config=config, device=settings.device)
    names = _shown_modules(config.num_layers)
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
                    _measure(run, model, matched, reference, prompts, expected, reference_tokens, settings.tokens)
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
