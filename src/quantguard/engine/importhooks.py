"""Run a callback every time a watched module finishes loading, through wrapt's post-import hooks.

``wrapt.importer`` does the work: its finder chains the module's loader, and a
hook registered with ``wrapt.register_post_import_hook`` runs once the module
has executed (wrapt 1.15 or later: it drops a hook once fired).  Three things
wrapt does differently from what the engine needs are adapted here:

- wrapt forgets a hook once it fired, so a module removed from ``sys.modules``
  and imported again would go unpatched: the finder below arms a new hook
  each time a watched module is about to be imported anew;
- wrapt cannot remove a hook: after :func:`unwatch` an armed hook still fires,
  and calls nothing;
- wrapt calls a hook at once when its module is already imported; quantguard
  patches loaded modules itself, so a watch only ever arms for a module that
  is not loaded yet.

``importlib.reload`` is not an import anew: a reloaded module is not reported.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

import wrapt
from wrapt.importer import ImportHookFinder

__all__ = ["watch", "unwatch"]

_callbacks: dict[str, list[Callable[[ModuleType], None]]] = {}
#: Names with a wrapt hook waiting for their next import (it stays registered after ``unwatch``).
_armed: set[str] = set()
_lock = threading.RLock()


def _arm(module_name: str) -> None:
    """Register a wrapt hook for the next import of ``module_name``, unless one is waiting already."""
    with _lock:
        if module_name in _armed or module_name not in _callbacks:
            return
        _armed.add(module_name)
    # outside the lock: if another thread imported the module meanwhile, wrapt calls the hook right here
    wrapt.register_post_import_hook(_loaded, module_name)


def _loaded(module: ModuleType) -> None:
    """wrapt's hook: the module executed; call whoever watches it now."""
    with _lock:
        _armed.discard(module.__name__)
        callbacks = list(_callbacks.get(module.__name__, ()))
    for callback in callbacks:
        callback(module)


class _RearmingFinder(ImportHookFinder):
    """wrapt's finder, arming a fresh hook first when a watched module is imported anew."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname in _callbacks and fullname not in sys.modules:
            _arm(fullname)
        return super().find_spec(fullname, path, target)


_finder = _RearmingFinder()


def watch(module_name: str, callback: Callable[[ModuleType], None]) -> None:
    """Call ``callback(module)`` whenever ``module_name`` is imported from now on.

    If the module is already imported the callback is *not* called here; the
    caller patches loaded modules itself.
    """
    with _lock:
        _callbacks.setdefault(module_name, []).append(callback)
        # at the front: a finder before it that found the module would keep the hook from being chained
        if not sys.meta_path or sys.meta_path[0] is not _finder:
            if _finder in sys.meta_path:
                sys.meta_path.remove(_finder)
            sys.meta_path.insert(0, _finder)
    if module_name not in sys.modules:
        _arm(module_name)


def unwatch(module_name: str, callback: Callable[[ModuleType], None]) -> None:
    """Stop calling ``callback`` for ``module_name`` (a hook already armed with wrapt then calls nothing)."""
    with _lock:
        callbacks = _callbacks.get(module_name, [])
        if callback in callbacks:
            callbacks.remove(callback)
        if not callbacks:
            _callbacks.pop(module_name, None)
        if not _callbacks and _finder in sys.meta_path:
            sys.meta_path.remove(_finder)
