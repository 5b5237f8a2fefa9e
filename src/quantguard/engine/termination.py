"""A summary when an orchestrator stops the process with SIGTERM.

Kubernetes, systemd and Slurm stop a canary with SIGTERM.  Python's default
action for it kills the process without running ``atexit``, so the
``quantguard.summary`` event (the one a report sums per process) would be
lost exactly in production.  The handler emits the summary, then hands the
signal on: to the handler that was installed before ours (a server's graceful
shutdown keeps working), or, where that was the default action, by restoring
the default and re-sending the signal so the process still dies of SIGTERM
with the exit status orchestrators expect.  An ignored SIGTERM stays
ignored.  Only the main thread can install signal handlers; elsewhere this is
skipped (the ``atexit`` summary still covers normal exits).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["TerminationSummary"]


class TerminationSummary:
    """Installs (and removes) the SIGTERM handler that emits the summary, chaining the previous one."""

    def __init__(self, emit_summary: Callable[[], None]) -> None:
        self._emit_summary = emit_summary
        self._previous: Any = None
        self._installed = False

    def install(self, wanted: bool) -> None:
        if not wanted:
            self.uninstall()
            return
        if self._installed or not hasattr(signal, "SIGTERM"):
            return
        if threading.current_thread() is not threading.main_thread():
            return
        try:
            previous = signal.getsignal(signal.SIGTERM)
            if previous is signal.SIG_IGN or previous is None:
                return  # ignored on purpose (or set from C): not ours to change
            signal.signal(signal.SIGTERM, self._on_sigterm)
        except (ValueError, OSError):  # not the main interpreter, or signals unavailable
            return
        self._previous = previous
        self._installed = True

    def uninstall(self) -> None:
        """Put the previous handler back, unless someone replaced ours since (theirs stays)."""
        if not self._installed:
            return
        self._installed = False
        try:
            if threading.current_thread() is threading.main_thread() and (
                signal.getsignal(signal.SIGTERM) == self._on_sigterm
            ):
                signal.signal(signal.SIGTERM, self._previous)
        except (ValueError, OSError):
            pass
        self._previous = None

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        try:
            self._emit_summary()
        except Exception:
            pass
        previous = self._previous
        if callable(previous):
            previous(signum, frame)
            return
        # The default action: die of SIGTERM as if we had never been here.
        self._installed = False
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
