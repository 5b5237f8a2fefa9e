"""Activation with no code change: ``QUANTGUARD_ENABLED=1`` at interpreter start.

Imported by the ``quantguard_autoload.pth`` hook only when the variable is
set (the hook itself costs one ``os.environ`` lookup otherwise), and by the
``sitecustomize`` that ``quantguard run`` puts on ``PYTHONPATH``.  A bad value
prints one message to stderr naming the variable, the value and what is
accepted, and quantguard stays disabled: it never breaks the host process at
start-up.
"""

from __future__ import annotations

import os
import sys

from quantguard import environment_variables as env

__all__ = ["enable_from_environment"]

_done = False


def _say(message: str) -> None:
    try:
        sys.stderr.write(f"quantguard: {message}\n")
    except Exception:
        pass


def enable_from_environment() -> bool:
    """Enable quantguard if ``QUANTGUARD_ENABLED`` says so; never raises.  Returns whether it is enabled."""
    global _done
    if _done:
        from quantguard.engine.lifecycle import is_enabled

        return is_enabled()
    _done = True
    try:
        from quantguard.config import parse_bool
        from quantguard.errors import ConfigError

        raw = os.environ.get(env.QUANTGUARD_ENABLED, "")
        if not raw.strip():
            return False
        try:
            wanted = parse_bool(raw, env.QUANTGUARD_ENABLED)
        except ConfigError as exc:
            _say(f"{exc}; quantguard stays disabled")
            return False
        if not wanted:
            return False
        from quantguard.engine.lifecycle import enable

        try:
            runtime = enable()
        except ConfigError as exc:
            _say(f"{exc}; quantguard stays disabled")
            return False
        if runtime is None:  # an internal error, logged as quantguard.internal_error; originals restored
            _say("could not enable (see the quantguard.internal_error event); quantguard stays disabled")
            return False
        return True
    except Exception as exc:  # start-up must never fail because of us
        _say(f"could not enable ({type(exc).__name__}: {exc}); quantguard stays disabled")
        return False
