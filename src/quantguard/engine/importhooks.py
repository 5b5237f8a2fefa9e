"""Run a callback every time a watched module finishes loading.

Modelled on ``wrapt.importer`` (a meta-path finder whose chained loader
notifies after ``exec_module``), with two differences quantguard needs:
watches persist across re-imports (a module removed from ``sys.modules`` and
imported again is patched again), and watches can be removed on ``disable()``.
The finder keeps itself at the front of ``sys.meta_path`` so it sees imports
before other finders resolve them.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

__all__ = ["watch", "unwatch"]

_callbacks: dict[str, list[Callable[[ModuleType], None]]] = {}
_lock = threading.RLock()


class _NotifyingLoader:
    """Proxy for a loader that notifies quantguard after the module executed."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)

    def create_module(self, spec: Any) -> Any:
        create = getattr(self._loader, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module: ModuleType) -> None:
        if getattr(module, "__loader__", None) is self:
            module.__loader__ = self._loader
        spec = getattr(module, "__spec__", None)
        if spec is not None and spec.loader is self:
            spec.loader = self._loader
        self._loader.exec_module(module)
        _notify(module)


class _WatchFinder:
    """Meta-path finder: for watched names, find the real spec and chain its loader."""

    def __init__(self) -> None:
        self._in_progress = threading.local()

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        with _lock:
            if fullname not in _callbacks:
                return None
        busy = getattr(self._in_progress, "names", None)
        if busy is None:
            busy = self._in_progress.names = set()
        if fullname in busy:
            return None
        busy.add(fullname)
        try:
            spec = importlib.util.find_spec(fullname)
        except (ImportError, ValueError):
            return None
        finally:
            busy.discard(fullname)
        if (
            spec is not None
            and spec.loader is not None
            and hasattr(spec.loader, "exec_module")
            and not isinstance(spec.loader, _NotifyingLoader)
        ):
            spec.loader = _NotifyingLoader(spec.loader)
        return spec


_finder = _WatchFinder()


def _ensure_finder_first() -> None:
    if not sys.meta_path or sys.meta_path[0] is not _finder:
        try:
            sys.meta_path.remove(_finder)
        except ValueError:
            pass
        sys.meta_path.insert(0, _finder)


def _notify(module: ModuleType) -> None:
    with _lock:
        callbacks = list(_callbacks.get(module.__name__, ()))
    for callback in callbacks:
        callback(module)


def watch(module_name: str, callback: Callable[[ModuleType], None]) -> None:
    """Call ``callback(module)`` whenever ``module_name`` is imported from now on.

    If the module is already imported the callback is *not* called here; the
    caller patches loaded modules itself.
    """
    with _lock:
        _callbacks.setdefault(module_name, []).append(callback)
        _ensure_finder_first()


def unwatch(module_name: str, callback: Callable[[ModuleType], None]) -> None:
    with _lock:
        callbacks = _callbacks.get(module_name, [])
        if callback in callbacks:
            callbacks.remove(callback)
        if not callbacks:
            _callbacks.pop(module_name, None)
        if not _callbacks and _finder in sys.meta_path:
            sys.meta_path.remove(_finder)
