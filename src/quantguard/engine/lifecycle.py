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

from quantguard import events, telemetry
from quantguard.config import Config, resolve_config
from quantguard.config_audit import audit_config
from quantguard.contracts.base import Contract
from quantguard.engine.audits import Audits
from quantguard.engine.references import StaleReferences
from quantguard.engine.reporter import emit_internal_error
from quantguard.engine.runtime import Runtime
from quantguard.engine.termination import TerminationSummary

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


def enable(**options: Any) -> Runtime | None:
    """Turn quantguard on (or reconfigure it).

    Raises :class:`~quantguard.errors.ConfigError` (a ``ValueError``) on bad
    options: that is the caller's input.  An internal error while enabling is
    never raised into the host: it is logged as ``quantguard.internal_error``
    (target ``quantguard.enable``), everything already patched is restored,
    quantguard stays off (``is_enabled()`` is False) and ``None`` is returned.
    """
    global _runtime
    with _lock:
        config = resolve_config(options, os.environ)
        if _runtime is not None and config == _runtime.config:
            return _runtime
        try:
            return _reconfigure(_runtime, config) if _runtime is not None else _start(config)
        except Exception as exc:
            _fail_closed("quantguard.enable", exc)
            return None


def _start(config: Config) -> Runtime:
    global _runtime, _atexit_registered
    events.configure(config.log, config.log_format)
    runtime = Runtime(config, registered_contracts())
    runtime.extensions += [Audits(), StaleReferences()]
    _runtime = runtime
    _announce(runtime, reconfigured=False)
    runtime.apply_all()
    _warn_about_config(runtime)
    telemetry.start(runtime)
    if not _atexit_registered:
        atexit.register(_at_exit)
        _atexit_registered = True
    _termination.install(config.summary_at_exit)
    return runtime


def _reconfigure(runtime: Runtime, config: Config) -> Runtime:
    events.configure(config.log, config.log_format)
    runtime.reconfigure(config)
    _announce(runtime, reconfigured=True)
    _warn_about_config(runtime)
    telemetry.start(runtime)
    _termination.install(config.summary_at_exit)
    return runtime


def _announce(runtime: Runtime, reconfigured: bool) -> None:
    events.emit(
        events.ENABLED,
        "info",
        reconfigured=reconfigured,
        config=_config_summary(runtime.config),
        contracts=len(runtime.contracts),
        platform=runtime.platform.as_dict(),
    )


def _warn_about_config(runtime: Runtime) -> None:
    """One ``quantguard.config_warning`` per setting that cannot do what it says (see config_audit)."""
    for warning in audit_config(runtime.config, runtime.contracts, os.environ):
        events.emit(events.CONFIG_WARNING, "warning", **warning.as_fields())


def _fail_closed(stage: str, exc: BaseException) -> None:
    """An internal error in enable/disable: log it, restore every original, leave quantguard off."""
    global _runtime
    runtime, _runtime = _runtime, None
    _termination.uninstall()
    telemetry.stop()
    emit_internal_error(stage, "lifecycle", exc)
    if runtime is None:
        return
    for step in (Runtime.unapply_all, _stop_executor, _remove_layer_hooks):
        try:
            step(runtime)
        except Exception as again:  # restore what can be restored; say what could not
            emit_internal_error(stage, "lifecycle_rollback", again)


def _stop_executor(runtime: Runtime) -> None:
    if runtime._executor is not None:
        runtime._executor.stop()


def _remove_layer_hooks(runtime: Runtime) -> None:
    for hooks in runtime.layer_hooks:
        hooks.remove()
    runtime.layer_hooks.clear()


def disable() -> dict[str, Any] | None:
    """Restore every original, emit ``quantguard.summary`` and ``quantguard.disabled``.

    Never raises: an internal error is logged, the restoring goes on, and
    quantguard ends off either way.
    """
    global _runtime
    with _lock:
        runtime = _runtime
        if runtime is None:
            return None
        try:
            summary = runtime.emit_summary()
            _stop_executor(runtime)
            telemetry.stop()  # its last counts are written while every guard still holds its own
            restored = runtime.unapply_all()
            _remove_layer_hooks(runtime)
        except Exception as exc:
            _fail_closed("quantguard.disable", exc)
            return None
        _runtime = None
        _termination.uninstall()
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
    _emit_final_summary()


def _emit_final_summary() -> None:
    telemetry.flush()  # the last counts into a multiprocess directory, before the process goes
    runtime = _runtime
    if runtime is not None and runtime.config.summary_at_exit:
        try:
            runtime.emit_summary()
        except Exception:
            pass


_termination = TerminationSummary(_emit_final_summary)


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
