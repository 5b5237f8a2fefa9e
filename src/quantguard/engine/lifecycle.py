"""enable / disable / register / attach: the lifecycle behind quantguard's public API.

``enable()`` is idempotent and thread-safe; calling it again with other
options reconfigures the running instance.  ``disable()`` restores the exact
original objects everywhere they were replaced and emits a summary.
"""

from __future__ import annotations

import atexit
import os
import threading
from typing import Any

from quantguard import events
from quantguard.config import Config, resolve_config
from quantguard.contracts.base import Contract
from quantguard.engine.audits import Audits
from quantguard.engine.references import StaleReferences
from quantguard.engine.runtime import Runtime

__all__ = ["enable", "disable", "is_enabled", "register", "current_runtime", "registered_contracts"]

_lock = threading.RLock()
_runtime: Runtime | None = None
_user_contracts: dict[str, Contract] = {}
_atexit_registered = False


def current_runtime() -> Runtime | None:
    return _runtime


def is_enabled() -> bool:
    return _runtime is not None


def _builtin_contracts() -> list[Contract]:
    from quantguard.contracts import builtin_contracts

    return builtin_contracts()


def registered_contracts() -> list[Contract]:
    """Built-in contracts followed by user contracts (a user contract replaces a built-in one of the same target)."""
    merged = {c.target: c for c in _builtin_contracts()}
    merged.update(_user_contracts)
    return list(merged.values())


def _config_summary(config: Config) -> dict[str, Any]:
    return {
        "mode": config.mode,
        "targets": list(config.targets),
        "disabled_targets": list(config.disabled_targets),
        "sample_rate": config.sample_rate,
        "sample_first": config.sample_first,
        "log": config.log,
        "log_format": config.log_format,
        "on_block": config.on_block,
        "shadow": config.shadow,
        "gfx": config.gfx,
        "ck_free": config.ck_free,
        "e8m0_rounding": config.e8m0_rounding,
        "label": config.label,
    }


def enable(**options: Any) -> Runtime:
    """Turn quantguard on (or reconfigure it).  Raises ``ValueError`` on bad options."""
    global _runtime, _atexit_registered
    with _lock:
        config = resolve_config(options, os.environ)
        if _runtime is not None:
            if config == _runtime.config:
                return _runtime
            events.configure(config.log, config.log_format)
            _runtime.reconfigure(config)
            events.emit(
                events.ENABLED,
                "info",
                reconfigured=True,
                config=_config_summary(config),
                contracts=len(_runtime.contracts),
                platform=_runtime.platform.as_dict(),
            )
            return _runtime
        events.configure(config.log, config.log_format)
        runtime = Runtime(config, registered_contracts())
        runtime.extensions += [Audits(), StaleReferences()]
        _runtime = runtime
        events.emit(
            events.ENABLED,
            "info",
            reconfigured=False,
            config=_config_summary(config),
            contracts=len(runtime.contracts),
            platform=runtime.platform.as_dict(),
        )
        runtime.apply_all()
        if not _atexit_registered:
            atexit.register(_at_exit)
            _atexit_registered = True
        return runtime


def disable() -> dict[str, Any] | None:
    """Restore every original, emit ``quantguard.summary`` and ``quantguard.disabled``."""
    global _runtime
    with _lock:
        runtime = _runtime
        if runtime is None:
            return None
        summary = runtime.emit_summary()
        if runtime._executor is not None:
            runtime._executor.stop()
        restored = runtime.unapply_all()
        for hooks in runtime.layer_hooks:
            hooks.remove()
        runtime.layer_hooks.clear()
        _runtime = None
        events.emit(events.DISABLED, "info", restored_bindings=restored, violations=summary["violation_total"])
        return summary


def register(contract: Contract) -> Contract:
    """Add a contract (yours or an override of a built-in); applied now if quantguard is enabled."""
    if not isinstance(contract, Contract):
        raise TypeError(f"register() takes a quantguard.Contract, got {type(contract).__name__}")
    with _lock:
        _user_contracts[contract.target] = contract
        if _runtime is not None:
            _runtime.add_contract(contract)
    return contract


def unregister(target: str) -> None:
    with _lock:
        _user_contracts.pop(target, None)


def _at_exit() -> None:
    runtime = _runtime
    if runtime is not None and runtime.config.summary_at_exit:
        try:
            runtime.emit_summary()
        except Exception:
            pass


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.RLock()
    if _runtime is not None:
        _runtime.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def attach_model(model: Any, prefix: str = "") -> Any:
    from quantguard.engine.layers import LayerHooks

    with _lock:
        if _runtime is None:
            raise RuntimeError("quantguard.attach() needs quantguard.enable() first")
        hooks = LayerHooks(model, prefix)
        _runtime.layer_hooks.append(hooks)
        for extension in _runtime.extensions:
            extension.on_attach(_runtime, model, prefix)
        return hooks
