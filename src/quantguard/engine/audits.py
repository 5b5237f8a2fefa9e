"""Whole-process audits run when contracts are applied (not per call).

* Backend selection: in CK-free mode every ATOM selector on the linear,
  attention_mla and moe paths must choose Triton.
Each finding is reported once per runtime.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.runtime import Applied, Runtime

__all__ = ["Audits"]


class Audits:
    """A runtime extension: hooks called by :class:`~quantguard.engine.runtime.Runtime`."""

    def __init__(self) -> None:
        self._reported: set[tuple[str, str]] = set()

    def on_applied(self, runtime: "Runtime", applied: list["Applied"], initial: bool) -> None:
        self._backend_selection(runtime)

    def on_unapplied(self, runtime: "Runtime") -> None:
        self._reported.clear()

    def on_attach(self, runtime: "Runtime", model: Any, prefix: str) -> None:
        self._backend_selection(runtime)

    def _backend_selection(self, runtime: "Runtime") -> None:
        if not any(name.startswith("atom.model_ops") for name in list(sys.modules)):
            return  # nothing to audit, and no reason to import the checks (and torch) yet
        from quantguard.checks.backend_selection import audit_backend_selection

        try:
            for path, finding in audit_backend_selection(runtime.platform):
                if (path, finding.message) in self._reported:
                    continue
                self._reported.add((path, finding.message))
                runtime.reporter.violation(path, finding, f"<audit {path}>", {"backend": "atom"})
        except Exception as exc:
            runtime.reporter.internal_error("backend_selection", "audit", exc)
