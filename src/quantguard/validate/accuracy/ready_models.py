"""The loader that turns ``--model`` into a model spec: ``sim``, ``module:function`` or a transformers model.

Apart from :mod:`quantguard.validate.accuracy.models` (what a model spec is and how a
user's ``module:function`` becomes one), so the model sources it offers
(:mod:`~quantguard.validate.accuracy.models_hf`, :mod:`~quantguard.validate.accuracy.models_sim`)
depend on the spec types and never the other way round.
"""

from __future__ import annotations

from pathlib import Path

from quantguard.validate.accuracy.models import LoadOptions, ModelSpec, user_model

__all__ = ["load_model"]


def _is_callable_target(target: str) -> bool:
    """``package.module:function``, not a path that happens to hold a colon."""
    module, sep, function = target.partition(":")
    return bool(sep and module and function.isidentifier()) and not Path(target).expanduser().exists()


def load_model(target: str, options: LoadOptions) -> ModelSpec:
    """The :class:`ModelSpec` for ``--model`` (see :data:`~quantguard.validate.accuracy.models_hf.ACCEPTED`)."""
    if target == "sim":
        from quantguard.validate.accuracy.models_sim import sim_workload

        return sim_workload(options)
    if _is_callable_target(target):
        return user_model(target, options)
    from quantguard.validate.accuracy.models_hf import hf_model

    return hf_model(target, options)
