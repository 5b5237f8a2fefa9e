"""An inference app that never calls quantguard: the canary example switches it on from outside.

It imports only quantguard's simulator, which stands in for AITER and ATOM here
(``--scenario`` injects one incident). Used by ``canary_by_environment.py``;
runs on its own too.
"""

from __future__ import annotations

import argparse

from quantguard.sim import workload
from quantguard.sim.scenarios import SCENARIOS, scenario

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--scenario", choices=[s.name for s in SCENARIOS])
args = parser.parse_args()
faults, deployment = (
    ((), {"arch": "gfx942", "release_build": True})
    if args.scenario is None
    else (scenario(args.scenario).faults, scenario(args.scenario).deployment)
)
with workload.deploy(faults=faults, **deployment) as deployed:
    tokens = workload.generate(workload.build_model(deployed), [11, 42, 7], max_new_tokens=8)
print(f"app: generated {len(tokens)} tokens")
