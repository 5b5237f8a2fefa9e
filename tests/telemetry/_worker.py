"""A process under quantguard with metrics on: runs one simulator scenario, prints its summary, waits.

argv: scenario name ('clean': the first scenario's deployment without faults).
Prints one JSON line (the summary) once the workload is done, then keeps
serving metrics until its stdin closes, then disables quantguard.
"""

from __future__ import annotations

import json
import sys

import quantguard
from quantguard.engine.lifecycle import current_runtime
from quantguard.sim import workload
from quantguard.sim.scenarios import SCENARIOS


def main(name: str) -> None:
    scenario = next(s for s in SCENARIOS if s.name == name or (name == "clean" and not s.late_enable))
    faults = () if name == "clean" else scenario.faults
    quantguard.enable(sample_rate=0.0, log="stderr", **scenario.options)
    try:
        with workload.deploy(faults=faults, **scenario.deployment) as deployment:
            model = workload.build_model(deployment)
            workload.generate(model, [1, 2, 3, 4, 5], max_new_tokens=3)
    except BaseException:  # noqa: BLE001 - a fault may stop the workload; the counts are what matter
        pass
    runtime = current_runtime()
    assert runtime is not None
    print(json.dumps(runtime.summary()), flush=True)
    sys.stdin.read()
    quantguard.disable()


if __name__ == "__main__":
    main(sys.argv[1])
