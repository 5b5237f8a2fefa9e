"""Run scenarios against the real AITER/ATOM trees (or the simulator) in worker processes.

The trees live in ``<repo>/../shared/third_party`` (CI clones the project with ``shared/``
beside it) or in ``$QUANTGUARD_THIRD_PARTY``.  Nothing here imports them: :class:`Worker`
starts ``real_worker.py`` in a subprocess and talks JSON lines to it.  A worker that dies,
hangs or fails to start raises :class:`WorkerError` carrying the tail of its stderr, so the
test that needed it fails with the reason instead of hanging.
"""

from __future__ import annotations

import importlib.util
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NoReturn

from quantguard.testing import CapturedEvents

__all__ = [
    "ARCHS",
    "ORDERS",
    "WORKERS",
    "Reply",
    "Worker",
    "WorkerError",
    "WorkerPool",
    "brief",
    "locate_third_party",
    "missing_requirements",
]

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
#: Pip packages the real import needs (``third_party/README.md``), as import names.
REQUIREMENTS = {
    "triton": "triton",
    "numpy": "numpy",
    "pandas": "pandas",
    "einops": "einops",
    "psutil": "psutil",
    "pyyaml": "yaml",
    "pyzmq": "zmq",
    "msgspec": "msgspec",
    "xxhash": "xxhash",
    "setproctitle": "setproctitle",
    "tokenizers": "tokenizers",
    "safetensors": "safetensors",
    "regex": "regex",
    "requests": "requests",
    "tqdm": "tqdm",
    "packaging": "packaging",
}

ARCHS = ("gfx942", "gfx950")
#: When quantguard is enabled, per arch: both orders are covered without a third real worker.
#: ``import_first``: AITER and ATOM imported, then ``enable()`` patches them in place;
#: ``enable_first``: ``enable()``, then the imports (the import hooks patch, as with
#: ``QUANTGUARD_ENABLED=1``; ATOM then binds the guards itself).
ORDERS = {"gfx942": "import_first", "gfx950": "enable_first"}
#: Every worker the tests use; started together on first use so their imports overlap.
WORKERS = tuple({"mode": mode, "gfx": gfx, "order": ORDERS[gfx]} for mode in ("real", "sim") for gfx in ARCHS)

START_TIMEOUT_S = float(os.environ.get("QUANTGUARD_REAL_START_TIMEOUT", "180"))
CALL_TIMEOUT_S = float(os.environ.get("QUANTGUARD_REAL_CALL_TIMEOUT", "120"))
#: Environment the worker must not inherit: it sets its own arch, build and quantguard options.
_SCRUBBED_PREFIXES = ("QUANTGUARD_", "ATOM_", "REAL_AITER_", "AITER_")
_SCRUBBED = ("TRITON_INTERPRET", "CK_DIR", "GPU_ARCHS", "ROCM_HOME", "ROCM_PATH")


def locate_third_party() -> tuple[Path | None, str]:
    """``(folder, "")`` holding ``real_aiter.py`` and the trees, or ``(None, why not)``."""
    configured = os.environ.get("QUANTGUARD_THIRD_PARTY")
    folder = Path(configured) if configured else REPO.parent / "shared" / "third_party"
    source = "$QUANTGUARD_THIRD_PARTY" if configured else "<repo>/../shared/third_party"
    if not (folder / "real_aiter.py").is_file():
        return None, (
            f"the real AITER/ATOM trees are not available: no real_aiter.py in {folder} ({source}); "
            "set QUANTGUARD_THIRD_PARTY to the third_party folder to run these tests"
        )
    return folder, ""


def missing_requirements() -> list[str]:
    """Pip names of the real-import requirements that are not installed (found without importing)."""
    return [package for package, module in REQUIREMENTS.items() if importlib.util.find_spec(module) is None]


class WorkerError(AssertionError):
    """The worker could not start, died, hung, or a scenario raised; the message says which."""


class Reply:
    """One scenario's answer (or the start-up's): its return value and the quantguard events it caused."""

    __slots__ = ("value", "events")

    def __init__(self, message: dict[str, Any]) -> None:
        self.value = message.get("value")
        self.events = CapturedEvents()
        self.events.extend(message.get("events", ()))

    def violations(self, check: str | None = None, target: str | None = None) -> list[dict[str, Any]]:
        return self.events.violations(check=check, target=target)

    def findings(self) -> set[tuple[str, str]]:
        """``(target, check)`` of every violation."""
        return {(event["target"], event["check"]) for event in self.events.violations()}

    def problems(self) -> list[dict[str, Any]]:
        """Events saying quantguard itself failed on this tree: internal errors and signature mismatches."""
        return self.events.named("internal_error") + self.events.named("target_mismatch")


def brief(events: list[dict[str, Any]]) -> list[str]:
    """Events in one line each, for assertion messages."""
    lines = []
    for event in events:
        parts = [event["event"].removeprefix("quantguard."), event.get("target", "")]
        parts += [str(event[key]) for key in ("check", "error", "differences", "message", "reason") if event.get(key)]
        lines.append(" ".join(parts)[:500])
    return lines


class Worker:
    """One worker process; started on first use, answering one scenario at a time."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self.name = "-".join(str(settings[key]) for key in ("mode", "gfx", "order"))
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in stop()
            prefix=f"quantguard-{self.name}-",
            suffix=".stderr",
            delete=False,
        )
        self._buffer = b""
        self._failure: str | None = None
        self.startup: Reply | None = None
        self.ready: dict[str, Any] = {}

    # -- process -----------------------------------------------------------------------------
    def start(self) -> None:
        """Launch the process without waiting for it (see :meth:`wait_ready`)."""
        if self._process is not None or self._failure is not None:
            return
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(_SCRUBBED_PREFIXES) and name not in _SCRUBBED
        }
        env.setdefault("OMP_NUM_THREADS", "1")
        self._process = subprocess.Popen(
            [sys.executable, str(HERE / "real_worker.py"), json.dumps(self.settings)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            cwd=str(HERE),
            env=env,
        )

    def wait_ready(self) -> Reply:
        """The start-up events (AITER/ATOM imported, quantguard enabled); ``ready`` holds the facts."""
        if self.startup is not None:
            return self.startup
        if self._failure is not None:
            raise WorkerError(self._failure)
        self.start()
        message = self._receive(START_TIMEOUT_S, "start")  # a failure here is remembered by _fail
        self.ready = message["ready"]
        self.startup = Reply(message)
        return self.startup

    def run(self, scenario: str, **params: Any) -> Reply:
        """Run one named scenario (``real_scenarios.SCENARIOS``); raise :class:`WorkerError` if it raised."""
        self.wait_ready()
        if self._failure is not None:  # an earlier call killed or lost the worker
            raise WorkerError(self._failure)
        assert self._process is not None and self._process.stdin is not None
        try:
            self._process.stdin.write((json.dumps({"scenario": scenario, "params": params}) + "\n").encode())
            self._process.stdin.flush()
        except OSError as exc:
            self._fail(f"could not send {scenario!r}: {exc!r}")
        message = self._receive(CALL_TIMEOUT_S, f"scenario {scenario!r}")
        if not message.get("ok"):
            raise WorkerError(
                f"[{self.name}] scenario {scenario!r} raised in the worker:\n{message.get('error')}"
                f"\nquantguard events:\n" + "\n".join(brief(message.get("events", [])))
            )
        return Reply(message)

    def close(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            try:
                if process.stdin is not None:
                    process.stdin.close()
                process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                process.kill()
                process.wait()
        self._stderr.close()
        try:
            os.unlink(self._stderr.name)
        except OSError:
            pass

    # -- protocol ------------------------------------------------------------------------------
    def _receive(self, timeout: float, what: str) -> dict[str, Any]:
        assert self._process is not None and self._process.stdout is not None
        stdout = self._process.stdout
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._process.kill()
                self._process.wait()
                self._fail(f"{what}: no answer within {timeout:g} s; worker killed")
            readable, _, _ = select.select([stdout], [], [], min(remaining, 1.0))
            if readable:
                chunk = os.read(stdout.fileno(), 1 << 20)
                if not chunk:
                    code = self._process.wait()
                    self._fail(f"{what}: worker exited with code {code}")
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            return json.loads(line)
        except ValueError:
            self._fail(f"{what}: unreadable answer {line[:300]!r}")

    def stderr_tail(self, limit: int = 6000) -> str:
        self._stderr.flush()
        try:
            text = Path(self._stderr.name).read_text(errors="replace")
        except OSError:
            return "<stderr unavailable>"
        return text[-limit:]

    def _fail(self, reason: str) -> NoReturn:
        self._failure = f"[{self.name}] {reason}\n--- worker stderr (tail) ---\n{self.stderr_tail()}"
        raise WorkerError(self._failure)


class WorkerPool:
    """The session's workers, by settings; started lazily, all stopped by :meth:`close`."""

    def __init__(self, third_party: Path) -> None:
        self.third_party = third_party
        self._workers: dict[str, Worker] = {}

    def get(self, mode: str, gfx: str, order: str = "import_first", **extra: Any) -> Worker:
        settings = {"mode": mode, "gfx": gfx, "order": order, "third_party": str(self.third_party), **extra}
        key = json.dumps(settings, sort_keys=True)
        if key not in self._workers:
            self._workers[key] = Worker(settings)
        return self._workers[key]

    def start_all(self, wanted: list[dict[str, Any]]) -> None:
        """Launch several workers at once so their imports overlap."""
        for settings in wanted:
            self.get(**settings).start()

    def close(self) -> None:
        for worker in self._workers.values():
            worker.close()
        self._workers.clear()
