"""Enable quantguard inside an ATOM-like app: one call before the model is built.

The app is quantguard's simulated ATOM on the simulated AITER (the real entry
points, signatures and semantics, on a CPU). In a real ATOM process the
``quantguard.enable()`` / ``quantguard.attach(model)`` lines are all you add.

    python examples/enable_in_an_app.py                                   # clean: nothing reported
    python examples/enable_in_an_app.py --scenario asm_gemm_garbage_gfx950  # a real incident, caught
    python -m quantguard demo                                             # every scenario, side by side
"""

from __future__ import annotations

import argparse
import os

import quantguard
from quantguard.sim import workload
from quantguard.sim.scenarios import SCENARIOS, Scenario, scenario
from quantguard.testing import capture_events


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=[s.name for s in SCENARIOS], help="an incident to reproduce")
    parser.add_argument("--tokens", type=int, default=8)
    args = parser.parse_args()
    chosen = scenario(args.scenario) if args.scenario else Scenario("clean", (), {"arch": "gfx942"})

    with capture_events() as events:
        # 1. before the model is built (a late enable works too: stored partials are rebound)
        quantguard.enable(log=os.devnull, **chosen.options)  # or log="/var/log/qg-{rank}.jsonl"
        try:
            with workload.deploy(faults=chosen.faults, **chosen.deployment) as deployment:
                model = workload.build_model(deployment)
                quantguard.attach(model)  # 2. optional: events name their layer
                tokens = workload.generate(model, [11, 42, 7], max_new_tokens=args.tokens)
        except quantguard.QuantGuardBlocked as blocked:  # on_block="raise" (default) stops a banned kernel
            tokens = []
            print(f"blocked: {str(blocked).splitlines()[0]}")
        summary = quantguard.disable()

    for event in events.violations()[:3]:
        print(f"{event['check']}: {event['target']}: {event['message'][:160]}")
    detected = bool(summary["violation_total"] or events.named("blocked"))
    print(
        f"{chosen.name}: {len(tokens)} tokens generated, {summary['violation_total']} violations, "
        f"{len(events.named('blocked'))} blocked calls"
    )
    return 0 if detected == bool(chosen.faults) else 1  # a clean run is quiet; an incident is caught


if __name__ == "__main__":
    raise SystemExit(main())
