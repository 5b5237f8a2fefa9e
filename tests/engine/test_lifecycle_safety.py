"""enable()/disable() never leave quantguard half on; SIGTERM still yields a summary, chaining the host's handler."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

import quantguard
from quantguard import Contract
from quantguard.engine import lifecycle
from quantguard.engine.runtime import Runtime
from quantguard.testing import capture_events

KERNEL = """
def kernel(x):
    return x + 1
"""


def _contract() -> Contract:
    return Contract(target="qgt_life.kernel", kind="kernel", backend="torch", checks=("nonfinite",), key=("x",))


def _boom(*args, **kwargs):
    raise KeyError("an internal bug")


@pytest.mark.parametrize("stage", ["Runtime.__init__", "Runtime.apply_all", "events.emit"])
def test_an_internal_error_in_enable_leaves_quantguard_off_and_originals_in_place(
    stage, make_module, quiet_log, monkeypatch
):
    module = make_module("qgt_life", KERNEL)
    original = module.kernel
    quantguard.register(_contract())
    if stage == "Runtime.__init__":
        monkeypatch.setattr(Runtime, "__init__", _boom)
    elif stage == "Runtime.apply_all":
        real_apply = Runtime.apply_all

        def apply_then_fail(self):
            real_apply(self)  # something is already patched when it breaks
            raise KeyError("an internal bug")

        monkeypatch.setattr(Runtime, "apply_all", apply_then_fail)
    else:
        monkeypatch.setattr(lifecycle, "_config_summary", _boom)
    with capture_events() as seen:
        assert quantguard.enable(targets="qgt_life.*", log=quiet_log) is None
    assert not quantguard.is_enabled()
    assert module.kernel is original
    errors = [e for e in seen if e["event"] == "quantguard.internal_error"]
    assert errors and errors[0]["target"] == "quantguard.enable" and "KeyError" in errors[0]["error"]


def test_bad_options_still_raise(quiet_log):
    with pytest.raises(ValueError, match="sample_rate"):
        quantguard.enable(sample_rate=7, log=quiet_log)
    assert not quantguard.is_enabled()


def test_an_internal_error_in_disable_still_restores(make_module, quiet_log, monkeypatch):
    module = make_module("qgt_life", KERNEL)
    original = module.kernel
    quantguard.register(_contract())
    quantguard.enable(targets="qgt_life.*", log=quiet_log)
    assert module.kernel is not original
    monkeypatch.setattr(Runtime, "emit_summary", _boom)
    with capture_events() as seen:
        assert quantguard.disable() is None
    assert not quantguard.is_enabled() and module.kernel is original
    assert any(e["event"] == "quantguard.internal_error" and e["target"] == "quantguard.disable" for e in seen)


def test_a_clean_enable_and_disable_log_no_internal_error(make_module, quiet_log):
    make_module("qgt_life", KERNEL)
    quantguard.register(_contract())
    with capture_events() as seen:
        assert quantguard.enable(targets="qgt_life.*", log=quiet_log) is not None
        quantguard.disable()
    assert not [e for e in seen if e["event"] == "quantguard.internal_error"]


_CHILD = """
import os, signal, sys, time
import quantguard
{handler}
quantguard.enable(log=sys.argv[1])
print("ready", flush=True)
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(1)
print("survived", flush=True)
"""

_HANDLERS = {
    "default": "",
    "host handler": textwrap.dedent(
        """
        def graceful(signum, frame):
            print("host handler ran", flush=True)
            sys.exit(7)
        signal.signal(signal.SIGTERM, graceful)
        """
    ),
    "ignored": "signal.signal(signal.SIGTERM, signal.SIG_IGN)",
}


@pytest.mark.skipif(not hasattr(signal, "SIGTERM") or os.name != "posix", reason="POSIX signals")
@pytest.mark.parametrize("handler", sorted(_HANDLERS))
def test_sigterm_emits_the_summary_and_chains(handler, tmp_path):
    log = tmp_path / "events.jsonl"
    script = tmp_path / "child.py"
    script.write_text(_CHILD.format(handler=_HANDLERS[handler]))
    done = subprocess.run(
        [sys.executable, str(script), str(log)], capture_output=True, text=True, timeout=120, env=dict(os.environ)
    )
    names = [json.loads(line)["event"] for line in log.read_text().splitlines()]
    if handler == "ignored":
        assert "survived" in done.stdout and done.returncode == 0  # still ignored
        assert names.count("quantguard.summary") == 1  # the atexit one only
        return
    assert "survived" not in done.stdout
    assert "quantguard.summary" in names
    if handler == "default":
        assert done.returncode == -signal.SIGTERM  # still dies of SIGTERM
    else:
        assert "host handler ran" in done.stdout and done.returncode == 7


def test_disable_puts_the_previous_sigterm_handler_back(quiet_log):
    if threading_main() is False:
        pytest.skip("signal handlers need the main thread")

    def mine(signum, frame):
        pass

    previous = signal.signal(signal.SIGTERM, mine)
    try:
        quantguard.enable(log=quiet_log)
        assert signal.getsignal(signal.SIGTERM) is not mine
        quantguard.disable()
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_counts_its_own_calls_only(make_module, quiet_log):
    import torch

    module = make_module("qgt_life", KERNEL)
    quantguard.register(_contract())
    runtime = quantguard.enable(targets="qgt_life.*", log=quiet_log, sample_rate=1.0, sample_first=0)
    for _ in range(50):
        module.kernel(torch.ones(4))
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: one call, then report its own summary
        try:
            module.kernel(torch.ones(4))
            summary = runtime.summary()
            os.write(write, json.dumps({"calls": summary["calls"]}).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = json.loads(pipe.read())
    os.waitpid(pid, 0)
    assert child["calls"] == {"qgt_life.kernel": 1}
    assert runtime.summary()["calls"] == {"qgt_life.kernel": 50}  # the parent's own count is untouched


def _engine_methods() -> list[tuple[type, str]]:
    """Every method of the runtime and its extensions (enumerated, not picked): what enable/disable run."""
    from quantguard.engine.audits import Audits
    from quantguard.engine.references import StaleReferences

    return [
        (cls, name)
        for cls in (Runtime, Audits, StaleReferences)
        for name, value in vars(cls).items()
        if callable(value) and not name.startswith("__")
    ]


@pytest.mark.parametrize("owner, method", _engine_methods(), ids=lambda v: getattr(v, "__name__", v))
def test_an_error_anywhere_in_enable_or_disable_never_reaches_the_host(owner, method, make_module, quiet_log):
    import torch

    module = make_module("qgt_life", KERNEL)
    original = module.kernel
    quantguard.register(_contract())
    fired = []
    real = vars(owner)[method]
    function = real.__func__ if isinstance(real, (staticmethod, classmethod)) else real

    def broken(*args, **kwargs):
        fired.append(method)
        if len(fired) == 1:
            raise KeyError(f"injected in {owner.__name__}.{method}")
        return function(*args, **kwargs)

    patched = staticmethod(broken) if isinstance(real, staticmethod) else broken
    with pytest.MonkeyPatch.context() as monkeypatch, capture_events() as seen:
        monkeypatch.setattr(owner, method, patched)
        quantguard.enable(targets="qgt_life.*", log=quiet_log, sample_rate=1.0)
        result = module.kernel(torch.ones(3))
        quantguard.disable()
    assert torch.equal(result, torch.full((3,), 2.0))
    assert module.kernel is original and not quantguard.is_enabled()
    if fired:
        assert any("injected in" in str(e.get("error")) for e in seen.named("internal_error")), method
