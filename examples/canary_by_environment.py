"""Canary activation with no code change: ``QUANTGUARD_*`` environment variables on an unmodified app.

``QUANTGUARD_ENABLED=1`` activates quantguard at interpreter start (a ``.pth``
hook installed with the package); the other variables configure it. Here one
canary process runs the app with a fault and one without, each writing JSON
lines, and the event logs are summarised. The same works for a real server:

    QUANTGUARD_ENABLED=1 QUANTGUARD_LOG=/var/log/qg-{pid}.jsonl QUANTGUARD_LABEL=canary-mi355x \\
        python -m atom.entrypoints.openai.api_server ...
    # or: quantguard run --log /var/log/qg.jsonl -- python -m atom.entrypoints...

    python examples/canary_by_environment.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

APP = Path(__file__).with_name("app_without_quantguard.py")


def canary(log: str, *app_args: str) -> None:
    env = {
        **os.environ,
        "QUANTGUARD_ENABLED": "1",
        "QUANTGUARD_LOG": log,
        "QUANTGUARD_SAMPLE_RATE": "0.05",
        "QUANTGUARD_LABEL": "canary",
    }
    subprocess.run([sys.executable, str(APP), *app_args], env=env, check=True)


def main() -> int:
    directory = tempfile.mkdtemp(prefix="qg-canary-")
    found = {}
    for name, app_args in (("clean", ()), ("faulty", ("--scenario", "e8m0_copy_zero_fill"))):
        log = os.path.join(directory, f"{name}.jsonl")
        canary(log, *app_args)
        with open(log, encoding="utf-8") as lines:
            events = [json.loads(line) for line in lines]
        found[name] = sorted({e["check"] for e in events if e["event"] == "quantguard.violation"})
        print(f"{name}: {len(events)} events in {log}; violations: {found[name] or 'none'}")
    return 0 if not found["clean"] and "scale_values" in found["faulty"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
