"""Running ``validate accuracy``: one reference pass, then each configuration against it.

The reference pass stores every hooked layer output and the logits of each
calibration batch, plus greedy generations. A configuration's pass compares
each layer output with the stored one as it is produced (forward hooks), so
quantized activations are never stored. Verdicts are data: a configuration
fails with the list of reasons (flagged layers, overall cosine, garbled
generations, or the error that stopped it); a configuration that errored has
no metrics (NaN, shown as n/a), never partial ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from quantguard.numerics.metrics import Metrics
from quantguard.validate.accuracy.configurations import FAMILIES, Configuration
from quantguard.validate.accuracy.metrics import (
    BleuScore,
    LayerStats,
    LogitsStats,
    corpus_bleu,
    generation_nll,
    token_match,
)
from quantguard.validate.accuracy.models import ModelError, ModelSpec

__all__ = [
    "DEFAULT_THRESHOLDS",
    "FAMILIES",
    "GARBLED_BELOW",
    "ConfigResult",
    "LayerResult",
    "Reference",
    "evaluate",
    "run_reference",
]

#: Minimum per-layer cosine per family (the issue's FP8 and FP4 values; INT4 as FP4).
DEFAULT_THRESHOLDS = {"fp8": 0.999, "fp4": 0.995, "int4": 0.995}
#: A generation is garbled when fewer of its tokens match the reference's.
GARBLED_BELOW = 0.5


@dataclass(frozen=True)
class Reference:
    """What the reference model produced: layer outputs, (B, T, V) logits per calibration batch, tokens.

    ``texts`` are the generations decoded (empty without a tokenizer); ``perplexity`` is the reference's
    own on its greedy generations (the quantized models are scored on the same tokens).
    """

    layer_outputs: Mapping[str, Sequence[torch.Tensor]]
    logits: Sequence[torch.Tensor]
    generations: Sequence[Sequence[int]]
    texts: Sequence[str] = ()
    perplexity: float = float("nan")

    @property
    def sequences(self) -> int:
        return sum(logits.shape[0] for logits in self.logits)

    @property
    def positions(self) -> int:
        return sum(logits.reshape(-1, logits.shape[-1]).shape[0] for logits in self.logits)


@dataclass(frozen=True)
class LayerResult:
    """One transformer layer under one configuration; ``problems`` empty means not flagged."""

    name: str
    cosine: float
    norm_ratio: float
    nonfinite: int
    problems: tuple[str, ...]

    @property
    def flagged(self) -> bool:
        return bool(self.problems)


@dataclass
class ConfigResult:
    """Everything measured for one configuration, and its verdict."""

    config: Configuration
    threshold: float
    kernels: str = ""
    quantized: tuple[str, ...] = ()
    kept: Mapping[str, str] = field(default_factory=dict)
    layers: list[LayerResult] = field(default_factory=list)
    overall_cosine: float = float("nan")
    kl: float = float("nan")
    top1: float = float("nan")
    logits_cosine: float = float("nan")
    perplexity: float = float("nan")
    reference_perplexity: float = float("nan")
    token_matches: list[float] = field(default_factory=list)
    generations: list[list[int]] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    bleu: BleuScore | None = None
    error: str | None = None
    failures: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def family(self) -> str:
        return self.config.family

    @property
    def perplexity_delta(self) -> float:
        """Perplexity of the calibration tokens minus the reference's (NaN when not measured)."""
        return self.perplexity - self.reference_perplexity

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def flagged(self) -> list[LayerResult]:
        return [layer for layer in self.layers if layer.flagged]

    @property
    def garbled(self) -> list[int]:
        return [index for index, match in enumerate(self.token_matches) if match < GARBLED_BELOW]

    @property
    def token_match(self) -> float:
        return sum(self.token_matches) / len(self.token_matches) if self.token_matches else float("nan")


def _first_tensor(output: object) -> torch.Tensor | None:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    return None


@contextmanager
def _layer_hooks(model: nn.Module, names: Sequence[str], sink: Callable[[str, torch.Tensor], None]) -> Iterator[None]:
    def hook_for(name: str):
        def hook(module: nn.Module, args: tuple, output: object) -> None:
            tensor = _first_tensor(output)
            if tensor is not None:
                sink(name, tensor.detach())

        return hook

    handles = [model.get_submodule(name).register_forward_hook(hook_for(name)) for name in names]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def run_reference(spec: ModelSpec, max_new_tokens: int) -> Reference:
    """Layer outputs and logits of every calibration batch, and greedy generations, of the reference."""
    outputs: dict[str, list[torch.Tensor]] = {name: [] for name in spec.layers}
    logits = []
    with _layer_hooks(spec.reference, spec.layers, lambda name, tensor: outputs[name].append(tensor.clone())):
        for batch in spec.calibration:
            logits.append(spec.logits(spec.reference, batch).float())
    silent = [name for name, tensors in outputs.items() if not tensors]
    if silent:
        raise ModelError(f"these layers never produced a tensor in the reference forward: {', '.join(silent)}")
    generations = spec.generate(spec.reference, spec.prompts, max_new_tokens)
    texts = [spec.decode(tokens) for tokens in generations] if spec.decode else []
    return Reference(outputs, logits, generations, texts, _perplexity(spec, spec.reference, generations))


def _perplexity(spec: ModelSpec, model: nn.Module, generations: Sequence[Sequence[int]]) -> float:
    """Perplexity of ``model`` on the generated tokens of every prompt + generation (one forward per length)."""
    nll, count = 0.0, 0
    groups: dict[int, list[int]] = {}
    for index, prompt in enumerate(spec.prompts):
        groups.setdefault(len(prompt), []).append(index)
    device = spec.calibration[0].device if spec.calibration else None
    for length, indices in groups.items():
        ids = torch.tensor([list(spec.prompts[i]) + list(generations[i]) for i in indices], device=device)
        part, n = generation_nll(spec.logits(model, ids).float(), ids, length)
        nll, count = nll + part, count + n
    return math.exp(nll / count) if count and math.isfinite(nll) else float("nan")


class _LayerComparison:
    """Compares the n-th output of each layer with the reference's n-th, as it is produced."""

    def __init__(self, reference: Reference):
        self.reference = reference
        self.stats = {name: LayerStats() for name in reference.layer_outputs}
        self.seen = dict.fromkeys(reference.layer_outputs, 0)

    def __call__(self, name: str, tensor: torch.Tensor) -> None:
        expected = self.reference.layer_outputs[name]
        index = self.seen[name]
        self.seen[name] += 1
        if index < len(expected):
            self.stats[name].add(tensor, expected[index])

    def check_complete(self) -> None:
        for name, count in self.seen.items():
            wanted = len(self.reference.layer_outputs[name])
            if count != wanted:
                raise RuntimeError(f"layer {name} ran {count} times in the quantized model, {wanted} in the reference")


def layer_problems(metrics: Metrics, threshold: float, norm_tolerance: float, digits: int = 5) -> tuple[str, ...]:
    """Why ``metrics`` fail the gate (empty: they pass); the cosine is shown to ``digits`` digits, enough
    for the threshold (a 0.9999 gate must not print ``0.99995 < 0.9999``)."""
    problems = []
    if metrics.nonfinite:
        problems.append(f"{metrics.nonfinite} non-finite values")
    if not metrics.cosine >= threshold:
        problems.append(f"cosine {metrics.cosine:.{digits}f} < {threshold}")
    if not abs(metrics.norm_ratio - 1.0) <= norm_tolerance:
        problems.append(f"norm ratio {metrics.norm_ratio:.4f} outside 1 ± {norm_tolerance}")
    return tuple(problems)


def _verdict(result: ConfigResult) -> list[str]:
    if result.error is not None:
        return [f"error: {result.error}"]
    failures = [f"{layer.name}: {'; '.join(layer.problems)}" for layer in result.flagged]
    if not result.overall_cosine >= result.threshold:
        failures.append(f"overall cosine {result.overall_cosine:.5f} < {result.threshold}")
    if result.garbled:
        failures.append(
            f"{len(result.garbled)} of {len(result.token_matches)} generations garbled "
            f"(token match < {GARBLED_BELOW:.0%})"
        )
    return failures


def evaluate(
    spec: ModelSpec,
    reference: Reference,
    config: Configuration,
    threshold: float,
    norm_tolerance: float,
    max_new_tokens: int,
) -> ConfigResult:
    """Run one configuration against the reference and decide its verdict.

    Any error while building or running the quantized model (a kernel that
    cannot build, a shape it rejects, an exiting JIT) fails the configuration
    with its message instead of ending the validation.
    """
    result = ConfigResult(config, threshold)
    comparison = _LayerComparison(reference)
    logits = LogitsStats()
    try:
        with spec.variant(config) as variant, torch.no_grad():
            result.kernels, result.quantized, result.kept = variant.kernels, variant.quantized, variant.kept
            with _layer_hooks(variant.model, spec.layers, comparison):
                for batch, ref_logits in zip(spec.calibration, reference.logits):
                    logits.add(ref_logits, spec.logits(variant.model, batch).float())
            comparison.check_complete()
            result.generations = spec.generate(variant.model, spec.prompts, max_new_tokens)
            result.perplexity = _perplexity(spec, variant.model, reference.generations)
    except (Exception, SystemExit) as exc:  # SystemExit: AITER's JIT may exit on a failed build
        result.error = f"{type(exc).__name__}: {exc}"
        result.failures = _verdict(result)
        return result
    for name, stats in comparison.stats.items():
        metrics = stats.metrics()
        result.layers.append(
            LayerResult(
                name,
                metrics.cosine,
                metrics.norm_ratio,
                metrics.nonfinite,
                layer_problems(metrics, threshold, norm_tolerance),
            )
        )
    result.overall_cosine = LayerStats.pooled(comparison.stats.values()).metrics().cosine
    result.kl, result.top1, result.logits_cosine = logits.kl, logits.top1, logits.cosine
    result.reference_perplexity = reference.perplexity
    result.token_matches = [token_match(got, want) for got, want in zip(result.generations, reference.generations)]
    if spec.decode is not None:
        result.texts = [spec.decode(tokens) for tokens in result.generations]
    if max_new_tokens > 0:
        result.bleu = corpus_bleu(result.generations, reference.generations, spec.decode)
    result.failures = _verdict(result)
    return result
