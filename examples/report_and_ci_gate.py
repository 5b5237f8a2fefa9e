"""Events into a report, and the report's exit code as a CI gate.

Two runs of the simulated ATOM model write JSON-lines logs (one clean, one
with an incident); ``quantguard report`` turns each into a markdown verdict
and exits 0 (pass) or 1 (fail). A CI job needs only the last line:

    quantguard report logs/*.jsonl -o quantguard-report.md   # exit 1 fails the job

    python examples/report_and_ci_gate.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import quantguard
from quantguard.sim import workload
from quantguard.sim.scenarios import scenario


def write_log(path: str, incident: str | None) -> None:
    chosen = scenario(incident) if incident else None
    faults = chosen.faults if chosen else ()
    deployment = chosen.deployment if chosen else {"arch": "gfx942", "release_build": True}
    quantguard.enable(log=path, label=incident or "clean", summary_at_exit=False)
    with workload.deploy(faults=faults, **deployment) as deployed:
        workload.generate(workload.build_model(deployed), [11, 42, 7], max_new_tokens=8)
    quantguard.disable()


def gate(log: str) -> int:
    report = log.replace(".jsonl", ".md")
    done = subprocess.run(
        [sys.executable, "-m", "quantguard", "report", log, "-o", report], capture_output=True, text=True
    )
    with open(report, encoding="utf-8") as lines:
        verdict = next((line for line in lines if "PASS" in line or "FAIL" in line), "").strip()
    print(f"{os.path.basename(log)}: exit code {done.returncode}; {verdict[:100]}")
    return done.returncode


def main() -> int:
    directory = tempfile.mkdtemp(prefix="qg-report-")
    codes = {}
    for name, incident in (("clean", None), ("moe", "moe_missing_routed_scaling")):
        log = os.path.join(directory, f"{name}.jsonl")
        write_log(log, incident)
        codes[name] = gate(log)
    print(f"reports in {directory}")
    return 0 if codes == {"clean": 0, "moe": 1} else 1


if __name__ == "__main__":
    raise SystemExit(main())
