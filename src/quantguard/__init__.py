"""quantguard: catch silent quantization bugs in LLM inference while the engine runs.

    import quantguard
    quantguard.enable()          # or QUANTGUARD_ENABLED=1 with no code change

Public API: :func:`enable`, :func:`disable`, :func:`is_enabled`,
:func:`register` (your own :class:`Contract`), :func:`attach` (name events by
model layer), :func:`scan_weights`, and the exceptions
:class:`QuantGuardError`, :class:`QuantGuardViolation`,
:class:`QuantGuardBlocked`.  Importing quantguard does not import torch.
"""

from __future__ import annotations

from typing import Any

from quantguard._version import __version__
from quantguard.contracts.base import Contract
from quantguard.engine.lifecycle import disable, enable, is_enabled, register
from quantguard.errors import ConfigError, QuantGuardBlocked, QuantGuardError, QuantGuardViolation

__all__ = [
    "__version__",
    "enable",
    "disable",
    "is_enabled",
    "register",
    "attach",
    "scan_weights",
    "Contract",
    "QuantGuardError",
    "QuantGuardViolation",
    "QuantGuardBlocked",
    "ConfigError",
]


def attach(model: Any, prefix: str = "") -> Any:
    """Name quantguard's events by the module running (``model.layers.3.self_attn.o_proj``).

    Registers forward hooks on ``model``'s modules; returns a handle whose
    ``remove()`` takes them off (``disable()`` also does).  Requires
    quantguard to be enabled.
    """
    from quantguard.engine.lifecycle import attach_model

    return attach_model(model, prefix)


def scan_weights(model: Any, **options: Any) -> list[Any]:
    """Scan a loaded model's parameters for silent loading bugs; see :mod:`quantguard.checks.weights`."""
    from quantguard.engine.weight_scan import scan_weights as _scan

    return _scan(model, **options)
