"""The models ``validate accuracy`` compares: a reference, its quantized variants, prompts.

A :class:`ModelSpec` is everything the comparison needs and nothing about
metrics: the FP16/BF16 reference, the transformer layers to hook, calibration
token-id batches, generation prompts, how to get logits and greedy tokens, and
how to build the model under one
:class:`~quantguard.validate.accuracy.configurations.Configuration`, and how
to turn token ids back into text when the model has a tokenizer.

:func:`user_model` loads a user's ``--model module:function``; the ready-made
names are in :mod:`quantguard.validate.accuracy.ready_models`:

* ``module:function``: the function returns ``(model, inputs)`` with inputs
  a (B, T) token-id tensor, a list of prompts (token-id lists or 1D tensors) or
  a list of (B, T) batches; or a dict with ``model``, ``prompts`` (token-id
  lists, or strings) and ``tokenize`` (``str -> list[int]``, needed for strings).
  The model is called as ``model(input_ids)`` with (B, T) ids and may return
  logits, an object with ``.logits`` or a tuple whose first item is the logits.
* ``tiny-llama``, a checkpoint directory, a config.json or a cached model id:
  a ``transformers`` causal LM (:mod:`quantguard.validate.accuracy.models_hf`).
* ``sim``: the simulator's ATOM-like workload (:mod:`quantguard.validate.accuracy.models_sim`).

Models other than ``sim`` are quantized by swapping their ``nn.Linear`` layers
for AITER-backed or pure-torch ones
(:func:`quantguard.validate.accuracy.configurations.swapped`).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from quantguard.validate.accuracy.configurations import Configuration, aiter_path, swapped
from quantguard.validate.quantize import UnsupportedPath

__all__ = [
    "LoadOptions",
    "ModelError",
    "ModelSpec",
    "Variant",
    "greedy_generate",
    "prompt_batches",
    "recompute_step",
    "seeded_prompts",
    "supported",
    "swapper_spec",
    "user_model",
]

LogitsFn = Callable[[nn.Module, torch.Tensor], torch.Tensor]
#: One greedy step: (model, ids so far (B, T), state) -> (next-token logits (B, V), new state).
StepFn = Callable[[nn.Module, torch.Tensor, object], tuple[torch.Tensor, object]]
GenerateFn = Callable[[nn.Module, Sequence[Sequence[int]], int], list[list[int]]]
DecodeFn = Callable[[Sequence[int]], str]

_PROMPT_LENGTH = 16
_PROMPT_SEED = 1234


class ModelError(ValueError):
    """``--model`` (or what it returned) cannot be validated; the message says why."""


@dataclass(frozen=True)
class LoadOptions:
    """What loading a model needs to know about the run (``arch`` is ``None`` when no AITER is set up)."""

    arch: str | None
    device: torch.device
    dtype: torch.dtype
    num_prompts: int
    skip: tuple[str, ...]
    layers: str | None = None
    ck_free: bool = False
    faults: tuple[str, ...] = ()


@dataclass(frozen=True)
class Variant:
    """A model under one configuration, and what runs inside it."""

    model: nn.Module
    kernels: str
    quantized: tuple[str, ...]
    kept: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelSpec:
    """A reference model plus everything needed to compare its quantized variants with it.

    ``check(config)`` raises :class:`UnsupportedPath` for a configuration the
    model cannot run; ``variant(config)`` builds the quantized model for the
    duration of a ``with`` block. ``thresholds`` are this model's own cosine
    defaults (family or configuration name -> minimum), applied over the
    global ones and under the command line's. ``decode`` turns token ids into
    text (``None``: the model has no tokenizer, generations stay token ids).
    """

    name: str
    description: str
    reference: nn.Module
    layers: tuple[str, ...]
    calibration: tuple[torch.Tensor, ...]
    prompts: tuple[tuple[int, ...], ...]
    logits: LogitsFn
    generate: GenerateFn
    check: Callable[[Configuration], None]
    variant: Callable[[Configuration], AbstractContextManager[Variant]]
    thresholds: Mapping[str, float] = field(default_factory=dict)
    decode: DecodeFn | None = None

    def with_decode(self, decode: DecodeFn | None) -> ModelSpec:
        return replace(self, decode=decode)


def seeded_prompts(count: int, vocab_size: int, length: int = _PROMPT_LENGTH) -> tuple[tuple[int, ...], ...]:
    """``count`` deterministic random prompts of ``length`` token ids."""
    gen = torch.Generator().manual_seed(_PROMPT_SEED)
    return tuple(tuple(torch.randint(0, vocab_size, (length,), generator=gen).tolist()) for _ in range(count))


def _batches_by_length(prompts: Sequence[Sequence[int]]) -> dict[int, list[int]]:
    groups: dict[int, list[int]] = {}
    for index, prompt in enumerate(prompts):
        groups.setdefault(len(prompt), []).append(index)
    return groups


def recompute_step(logits: LogitsFn) -> StepFn:
    """A greedy step for any model: the whole sequence again, no cache."""

    def step(model: nn.Module, ids: torch.Tensor, state: object) -> tuple[torch.Tensor, object]:
        return logits(model, ids)[:, -1], None

    return step


@torch.no_grad()
def greedy_generate(
    step: StepFn, model: nn.Module, prompts: Sequence[Sequence[int]], max_new_tokens: int, device: torch.device
) -> list[list[int]]:
    """Greedy decoding; prompts of equal length decode together as one batch."""
    results: list[list[int]] = [[] for _ in prompts]
    for length, indices in _batches_by_length(prompts).items():
        ids = torch.tensor([list(prompts[i]) for i in indices], dtype=torch.long, device=device)
        state = None
        for _ in range(max_new_tokens):
            next_logits, state = step(model, ids, state)
            ids = torch.cat([ids, next_logits.argmax(-1, keepdim=True)], dim=1)
        for row, index in enumerate(indices):
            results[index] = ids[row, length:].tolist()
    return results


def _logits_of(output: object) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    if hasattr(output, "logits"):
        return output.logits
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise ModelError(
        f"the model returned {type(output).__name__}; expected logits, an object with "
        ".logits, or a tuple starting with the logits"
    )


def _call_model(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    return _logits_of(model(ids))


def _transformer_layers(model: nn.Module, pattern: str | None) -> tuple[str, ...]:
    """Names of the transformer layers: ``pattern`` matches, else the longest uniform ModuleList."""
    if pattern is not None:
        names = tuple(name for name, _ in model.named_modules() if name and re.fullmatch(pattern, name))
        if not names:
            raise ModelError(f"--layers {pattern!r} matches no module of the model")
        return names
    best: tuple[str, ...] = ()
    for name, module in model.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) <= len(best):
            continue
        children = list(module)
        uniform = len({type(child) for child in children}) == 1
        if uniform and all(any(isinstance(m, nn.Linear) for m in child.modules()) for child in children):
            best = tuple(f"{name}.{index}" if name else str(index) for index in range(len(children)))
    if not best:
        raise ModelError(
            "cannot find the transformer layers (no ModuleList of identical blocks with "
            "linear layers); name them with --layers REGEX"
        )
    return best


def swapper_spec(
    name: str,
    description: str,
    model: nn.Module,
    calibration: Sequence[torch.Tensor],
    prompts: Sequence[Sequence[int]],
    options: LoadOptions,
    logits: LogitsFn = _call_model,
    step: StepFn | None = None,
) -> ModelSpec:
    """A spec whose variants swap ``model``'s linears for quantized ones (AITER or pure torch) in place.

    ``step`` decodes with the model's own cache; without one, generation
    recomputes the whole sequence every token.
    """
    step = step or recompute_step(logits)
    reference = model.to(device=options.device, dtype=options.dtype).eval()
    layers = _transformer_layers(reference, options.layers)

    def check(config: Configuration) -> None:
        if config.pure_torch:
            return
        if options.arch is None:
            raise UnsupportedPath(f"{config.name} runs on AITER: install AITER, or add --sim for the simulator")
        aiter_path(config, options.arch)

    @contextmanager
    def variant(config: Configuration) -> Iterator[Variant]:
        with swapped(reference, config, options.arch, options.skip) as swap:
            yield Variant(reference, swap.kernels, tuple(swap.swapped), dict(swap.kept))

    def generate(target: nn.Module, prompt_ids: Sequence[Sequence[int]], max_new_tokens: int) -> list[list[int]]:
        return greedy_generate(step, target, prompt_ids, max_new_tokens, options.device)

    return ModelSpec(
        name=name,
        description=description,
        reference=reference,
        layers=layers,
        calibration=tuple(batch.to(options.device) for batch in calibration),
        prompts=tuple(tuple(int(t) for t in prompt) for prompt in prompts[: options.num_prompts]),
        logits=logits,
        generate=generate,
        check=check,
        variant=variant,
    )


def _as_batches(inputs: object) -> list[torch.Tensor]:
    """Calibration batches (B, T) from a tensor, one prompt, or a list of prompts/batches."""
    if isinstance(inputs, torch.Tensor):
        items: list[object] = [inputs]
    elif isinstance(inputs, (list, tuple)) and inputs and all(isinstance(t, int) for t in inputs):
        items = [list(inputs)]
    elif isinstance(inputs, (list, tuple)) and inputs:
        items = list(inputs)
    else:
        raise ModelError(f"calibration inputs must be token ids (a tensor or lists of ints), got {inputs!r:.80}")
    batches = []
    for item in items:
        batch = torch.as_tensor(item, dtype=torch.long)
        if batch.dim() == 1:
            batch = batch.unsqueeze(0)
        if batch.dim() != 2 or batch.shape[1] == 0:
            raise ModelError(f"a calibration batch must be (B, T) token ids, got shape {tuple(batch.shape)}")
        batches.append(batch)
    return batches


def prompt_batches(prompts: Sequence[Sequence[int]]) -> list[torch.Tensor]:
    return [
        torch.tensor([list(prompts[i]) for i in indices], dtype=torch.long)
        for indices in _batches_by_length(prompts).values()
    ]


def _from_dict(returned: Mapping[str, object]) -> tuple[nn.Module, list[torch.Tensor], list[list[int]]]:
    if "model" not in returned or "prompts" not in returned:
        raise ModelError("a dict from --model must have 'model' and 'prompts' (and 'tokenize' for text prompts)")
    tokenize = returned.get("tokenize")
    prompts: list[list[int]] = []
    for prompt in returned["prompts"]:  # type: ignore[union-attr]
        if isinstance(prompt, str):
            if tokenize is None:
                raise ModelError("text prompts need a 'tokenize' callable (str -> list of token ids)")
            prompt = tokenize(prompt)
        prompts.append([int(t) for t in torch.as_tensor(prompt).reshape(-1).tolist()])
    if not prompts or not all(prompts):
        raise ModelError("'prompts' must be a non-empty list of non-empty prompts")
    return returned["model"], prompt_batches(prompts), prompts  # type: ignore[return-value]


def user_model(target: str, options: LoadOptions) -> ModelSpec:
    module_name, _, function_name = target.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as exc:
        raise ModelError(f"cannot load --model {target!r}: {exc}") from exc
    returned = factory()
    if isinstance(returned, Mapping):
        model, calibration, prompts = _from_dict(returned)
    elif isinstance(returned, (tuple, list)) and len(returned) == 2:
        model, calibration = returned[0], _as_batches(returned[1])
        prompts = [row.tolist() for batch in calibration for row in batch]
    else:
        raise ModelError(f"{target} must return (model, inputs) or a dict with 'model' and 'prompts'")
    if not isinstance(model, nn.Module):
        raise ModelError(f"{target} returned a {type(model).__name__} as the model; expected a torch nn.Module")
    return swapper_spec(target, f"{target} ({type(model).__name__})", model, calibration, prompts, options)


def supported(spec: ModelSpec, config: Configuration) -> str | None:
    """Why ``spec`` cannot run ``config``, or ``None`` when it can."""
    try:
        spec.check(config)
    except UnsupportedPath as exc:
        return str(exc)
    return None
