"""The ready-made models of ``quantguard validate accuracy --model``, and the loader that picks one.

Apart from :mod:`quantguard.validate.accuracy.models` (what a model spec is and how a
user's ``module:function`` becomes one), so the model definitions it offers
(:mod:`~quantguard.validate.accuracy.models_llama`, :mod:`~quantguard.validate.accuracy.models_sim`)
depend on the spec types and never the other way round.
"""

from __future__ import annotations

from quantguard.validate.accuracy.models import (
    LoadOptions,
    ModelError,
    ModelSpec,
    prompt_batches,
    seeded_prompts,
    swapper_spec,
    user_model,
)

__all__ = ["READY_MADE", "load_model"]

READY_MADE: tuple[str, ...] = ("tiny-llama", "sim")


def _tiny_llama(options: LoadOptions) -> ModelSpec:
    from quantguard.validate.accuracy.models_llama import TinyLlamaConfig, build_tiny_llama

    config = TinyLlamaConfig()
    built = build_tiny_llama(config)
    prompts = seeded_prompts(options.num_prompts, config.vocab_size)
    description = (
        f"tiny-llama ({built.implementation} Llama, {config.num_layers} layers, "
        f"hidden {config.hidden_size}, vocab {config.vocab_size}, seeded weights)"
    )
    return swapper_spec(
        "tiny-llama", description, built.model, prompt_batches(prompts), prompts, options, built.logits, built.step
    )


def load_model(target: str, options: LoadOptions) -> ModelSpec:
    """The :class:`ModelSpec` for ``--model`` (a ready-made name or ``module:function``)."""
    if target == "tiny-llama":
        return _tiny_llama(options)
    if target == "sim":
        from quantguard.validate.accuracy.models_sim import sim_workload

        return sim_workload(options)
    if ":" not in target:
        raise ModelError(f"--model must be one of {', '.join(READY_MADE)} or module:function, got {target!r}")
    return user_model(target, options)
