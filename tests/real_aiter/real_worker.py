"""Worker process: one AITER (the real tree or quantguard's simulator) with quantguard enabled.

    python real_worker.py '<json settings>'

Started by :mod:`real_harness`, one per (package, arch, enable order) and pytest session.  The
real tree cannot share a process with the test session: ``real_aiter`` replaces the ``aiter``
package, Triton's active driver and environment variables process-wide, and the simulator
installs its own ``aiter`` and ``torch.ops.aiter.*`` ops in the test process.

Protocol (JSON lines): the worker writes one ``{"ready": ...}`` line when AITER is imported and
quantguard enabled, then answers each ``{"scenario": name, "params": {...}}`` line read from
stdin with one ``{"ok": ..., "value" | "error": ..., "events": [...]}`` line: the quantguard
events emitted while the scenario ran (all of them since start-up for the ready line).  Anything
else written to stdout (AITER's prints, a stray log) goes to stderr, which the harness keeps.

Settings: ``mode`` (``real`` | ``sim``), ``gfx``, ``third_party`` (real mode), ``order``
(``import_first``: import AITER and ATOM, then enable; ``enable_first``: enable, then import, so
the import hooks patch).  quantguard inspects every call (``sample_rate=1.0``); its own log goes
to a file in the worker's scratch folder.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import sys
import tempfile
import threading
import traceback
from typing import Any, TextIO

CU_NUM = {"gfx942": 304, "gfx950": 256}


class EventBuffer:
    """Every quantguard event, in order; :meth:`take` hands over those since the last take."""

    def __init__(self) -> None:
        self._events: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def __call__(self, event: dict[str, Any]) -> None:
        with self._lock:
            self._events.append(event)

    def take(self) -> list[dict[str, Any]]:
        with self._lock:
            taken, self._events = self._events, []
        return taken


class Context:
    """What a scenario sees: the imported ``aiter``, the settings, and the worker's scratch space."""

    def __init__(self, settings: dict[str, Any], scratch: str) -> None:
        self.mode: str = settings["mode"]
        self.gfx: str = settings["gfx"]
        self.settings = settings
        self.scratch = scratch
        self.import_errors: dict[str, str] = {}

    @property
    def aiter(self) -> Any:
        return importlib.import_module("aiter")

    @property
    def runtime(self) -> Any:
        from quantguard.engine.lifecycle import current_runtime

        return current_runtime()


def _protocol_stream() -> TextIO:
    """A private copy of stdout for the protocol; fd 1 (and sys.stdout) then point at stderr."""
    stream = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return stream


def _send(stream: TextIO, message: dict[str, Any]) -> None:
    from quantguard.events import to_jsonable

    stream.write(json.dumps(to_jsonable(message)) + "\n")
    stream.flush()


def _fake_ck_dir(scratch: str) -> str:
    """A CK checkout as AITER's build checks for it (``CK_DIR`` with its include folders)."""
    ck = os.path.join(scratch, "composable_kernel")
    for headers in ("include", os.path.join("library", "include")):
        os.makedirs(os.path.join(ck, headers), exist_ok=True)
    return ck


def _import_packages(context: Context) -> None:
    """Import AITER, ATOM's linear layer, and every module a built-in contract names."""
    from quantguard.contracts import builtin_contracts

    modules = ["aiter", "atom.model_ops.linear"]
    modules += sorted({contract.module for contract in builtin_contracts()} - set(modules))
    for name in modules:
        if name.split(".")[0] not in ("aiter", "atom"):
            continue
        try:
            importlib.import_module(name)
        except Exception as exc:  # a contract naming a module the tree lacks: reported, not fatal
            context.import_errors[name] = f"{type(exc).__name__}: {exc}"


def _prepare(settings: dict[str, Any], scratch: str) -> Context:
    context = Context(settings, scratch)
    if settings["mode"] == "real":
        os.environ["REAL_AITER_GFX"] = settings["gfx"]
        os.environ["AITER_LOG_LEVEL"] = "WARNING"
        # The shim's rocminfo prints no "Device Type: GPU" line, so AITER's CU count (the tuned-config
        # key) comes from CU_NUM: MI300X has 304 compute units, MI355X 256.
        os.environ["CU_NUM"] = str(CU_NUM[settings["gfx"]])
        os.environ["CK_DIR"] = _fake_ck_dir(scratch)  # a CK build: without it AITER counts as CK-free
        sys.path.insert(0, settings["third_party"])
        import real_aiter_triton

        real_aiter_triton.interpret_on_cpu()  # before anything imports AITER's Triton modules
        import real_aiter  # noqa: F401  (the import installs the shim)
    return context


def _install(context: Context) -> None:
    if context.mode == "sim":
        import quantguard.sim

        quantguard.sim.install(context.gfx, atom=True)
    _import_packages(context)
    if context.mode == "real":
        import real_aiter
        import real_kernels

        real_kernels.plug(real_aiter)


def _enable(context: Context) -> None:
    import quantguard

    quantguard.enable(sample_rate=1.0, log=os.path.join(context.scratch, "events.jsonl"))


def _statuses(context: Context) -> dict[str, dict[str, Any]]:
    runtime = context.runtime
    if runtime is None:
        return {}
    return {
        target: {"status": applied.status, "reason": applied.reason, "mismatch": list(applied.mismatch)}
        for target, applied in runtime.applied.items()
    }


def main(argv: list[str]) -> int:
    settings = json.loads(argv[1])
    stream = _protocol_stream()
    scratch = tempfile.mkdtemp(prefix="quantguard-real-worker-")
    import torch

    torch.set_num_threads(1)

    from quantguard import events

    buffer = EventBuffer()
    events.add_listener(buffer)

    context = _prepare(settings, scratch)
    if settings.get("order", "import_first") == "enable_first":
        _enable(context)
        _install(context)
    else:
        _install(context)
        _enable(context)
    import real_scenarios

    _send(
        stream,
        {
            "ready": {
                "pid": os.getpid(),
                "statuses": _statuses(context),
                "import_errors": context.import_errors,
                "scratch": scratch,
            },
            "events": buffer.take(),
        },
    )
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        buffer.take()
        try:
            scenario = real_scenarios.SCENARIOS[request["scenario"]]
            value = scenario.run(context, **request.get("params", {}))
            reply = {"ok": True, "value": value}
        except Exception:
            reply = {"ok": False, "error": traceback.format_exc()}
        if context.runtime is not None:
            context.runtime.summary()  # flush the reporter and the shadow executor into the buffer
        reply["events"] = buffer.take()
        _send(stream, reply)
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
