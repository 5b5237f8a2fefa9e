"""Activation with no code change (the .pth hook and the ``quantguard run`` launcher)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import quantguard

PROBE = "import quantguard, sys; print(quantguard.is_enabled()); print('torch' in sys.modules)"


def _python(code: str, env: dict[str, str], *prefix: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("QUANTGUARD_")}
    environment.update(env)
    return subprocess.run(
        [*prefix, sys.executable, "-c", code], env=environment, capture_output=True, text=True, timeout=120
    )


def _pth_installed() -> bool:
    return (Path(sysconfig.get_paths()["purelib"]) / "quantguard_autoload.pth").exists()


@pytest.mark.skipif(not _pth_installed(), reason="quantguard_autoload.pth is not installed in site-packages")
def test_env_activation_at_interpreter_start(tmp_path):
    log = tmp_path / "events.jsonl"
    result = _python(PROBE, {"QUANTGUARD_ENABLED": "1", "QUANTGUARD_LOG": str(log)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "False"]  # enabled, and torch was not imported for it
    assert json.loads(log.read_text().splitlines()[0])["event"] == "quantguard.enabled"


@pytest.mark.skipif(not _pth_installed(), reason="quantguard_autoload.pth is not installed in site-packages")
def test_unset_or_zero_stays_off():
    for env in ({}, {"QUANTGUARD_ENABLED": "0"}):
        result = _python(PROBE, env)
        assert result.stdout.split()[0] == "False" and result.stderr == ""


@pytest.mark.skipif(not _pth_installed(), reason="quantguard_autoload.pth is not installed in site-packages")
@pytest.mark.parametrize(
    "env, named",
    [
        ({"QUANTGUARD_ENABLED": "sure"}, "QUANTGUARD_ENABLED='sure'"),
        ({"QUANTGUARD_ENABLED": "1", "QUANTGUARD_MODE": "loud"}, "QUANTGUARD_MODE='loud'"),
        ({"QUANTGUARD_ENABLED": "1", "QUANTGUARD_SAMPLE_RATE": "2"}, "QUANTGUARD_SAMPLE_RATE='2'"),
    ],
)
def test_bad_values_at_start_print_once_and_stay_disabled(env, named):
    result = _python(PROBE, env)
    assert result.returncode == 0
    assert result.stdout.split()[0] == "False"
    assert result.stderr.count("quantguard:") == 1 and named in result.stderr and "stays disabled" in result.stderr


def test_launcher_enables_the_child(tmp_path):
    log = tmp_path / "child.jsonl"
    result = _python(PROBE, {}, sys.executable, "-m", "quantguard", "run", "--mode", "raise", "--log", str(log), "--")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "True"
    enabled = json.loads(log.read_text().splitlines()[0])
    assert enabled["config"]["mode"] == "raise"


def test_launcher_rejects_bad_option_before_starting(capsys):
    from quantguard.cli.main import main

    assert main(["run", "--sample-rate", "7", "--", sys.executable, "-c", "pass"]) == 2
    assert "QUANTGUARD_SAMPLE_RATE='7'" in capsys.readouterr().out


def test_pth_hook_costs_nothing_when_unset():
    hook = (Path(quantguard.__file__).parent.parent / "quantguard_autoload.pth").read_text()
    assert hook.startswith("import os;") and "QUANTGUARD_ENABLED" in hook and "\n" not in hook.strip()
