"""Running the models: greedy generation and per-layer comparison with forward hooks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

from quantguard.sim.workload._model import Decoder

__all__ = ["capture_outputs", "generate", "layer_errors"]


def generate(model: Decoder, prompt_ids: Sequence[int], max_new_tokens: int = 50) -> list[int]:
    """Greedy decoding: one prefill over the prompt, then one token per step (M = 1 GEMMs)."""
    device = model.embed.weight.device
    cache = model.new_cache()
    logits = model(torch.tensor(list(prompt_ids), device=device), cache)
    tokens: list[int] = []
    for _ in range(max_new_tokens):
        tokens.append(int(logits[-1].argmax()))
        logits = model(torch.tensor(tokens[-1:], device=device), cache)
    return tokens


def capture_outputs(
    model: Decoder, input_ids: Sequence[int], names: Iterable[str] | None = None
) -> dict[str, torch.Tensor]:
    """Tensor outputs of the named modules (default: every named module) for one forward."""
    wanted = dict(model.named_modules())
    selected = set(wanted) - {""} if names is None else set(names)
    outputs: dict[str, torch.Tensor] = {}

    def recorder(name: str):
        def hook(module: nn.Module, args: tuple, output: object) -> None:
            if isinstance(output, torch.Tensor):
                outputs[name] = output.detach().float().clone()

        return hook

    handles = [wanted[name].register_forward_hook(recorder(name)) for name in selected]
    try:
        model(torch.tensor(list(input_ids), device=model.embed.weight.device))
    finally:
        for handle in handles:
            handle.remove()
    return outputs


def layer_errors(model: Decoder, reference: Decoder, input_ids: Sequence[int]) -> dict[str, float]:
    """Relative L2 error ``|y - y_ref| / |y_ref|`` of every module both models share."""
    shared = set(dict(model.named_modules())) & set(dict(reference.named_modules())) - {""}
    got = capture_outputs(model, input_ids, shared)
    want = capture_outputs(reference, input_ids, shared)
    return {
        name: float((got[name] - want[name]).norm() / want[name].norm().clamp_min(1e-30))
        for name in sorted(got.keys() & want.keys())
        if got[name].shape == want[name].shape
    }
