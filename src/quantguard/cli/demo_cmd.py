"""``quantguard demo``: every real incident, reproduced on the simulated AITER, caught live.

Runs the ATOM-like workload (quant→GEMM linears, MLA, MoE; 50 greedy tokens)
clean, then once per incident fault with quantguard enabled the way a
production canary runs it (default sampling: the first 3 calls of each
signature, then 1%), and prints: fault → detected (every check the scenario
expects fired: ``quantguard.sim.scenarios``) → by which checks → the
first event's message → generated tokens vs the clean run.  Also shows a
late enable (the model was built before quantguard) and a magnitude-only
fault (cosine stays 1.0).  Exit code 0 only if every fault is detected and
the clean runs report nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from quantguard.cli._console import WIDTH, add_width_option, render, table

__all__ = ["add_parser", "run_demo", "DemoRow"]

PROMPT = [11, 42, 7, 300, 5]


@dataclass
class DemoRow:
    name: str
    setting: str
    detected: bool
    checks: list[str]
    first: str
    tokens: str
    seconds: float
    outcome: str = ""
    missing: list[str] = field(default_factory=list)  # expected checks that did not fire


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run every incident fault on the simulated AITER and show detection",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--tokens", type=int, default=50, help="greedy tokens generated per run (default 50)")
    parser.add_argument(
        "--only", action="append", default=None, metavar="SCENARIO", help="run only this scenario (repeatable)"
    )
    parser.add_argument("--log-dir", default=None, help="keep the JSON-lines event logs here (default: a temp dir)")
    add_width_option(parser)
    parser.set_defaults(handler=_run)


def _first_message(events: Any) -> str:
    def rank(event: dict) -> tuple[int, int]:
        order = {"quantguard.blocked": 0, "quantguard.violation": 1}
        return (0 if event.get("severity", event.get("level")) == "error" else 1, order[event["event"]])

    candidates = [
        e
        for e in events
        if e["event"] in ("quantguard.blocked", "quantguard.violation") and not (e.get("details") or {}).get("repeat")
    ]
    if not candidates:
        return ""
    event = min(candidates, key=rank)
    text = (
        f"blocked {event['target'].rsplit('.', 1)[-1]}: {event['reason']}"
        if event["event"] == "quantguard.blocked"
        else f"{event['target'].rsplit('.', 1)[-1]}: {event['message']}"
    )
    return text


def _match(tokens: list[int] | None, clean: list[int]) -> str:
    if tokens is None:
        return "—"
    same = sum(1 for a, b in zip(tokens, clean) if a == b)
    return f"{same}/{len(clean)}"


def _run_once(scenario: Any, tokens: int, log: str, enabled: bool = True) -> tuple[Any, list[int] | None, str, float]:
    import quantguard
    from quantguard.sim import workload
    from quantguard.testing import capture_events

    options = {"log": log, "label": scenario.name, **scenario.options}
    started = time.perf_counter()
    output, outcome = None, "ok"
    with capture_events() as events:
        if enabled and not scenario.late_enable:
            quantguard.enable(**options)
        try:
            with workload.deploy(faults=scenario.faults, **scenario.deployment) as deployment:
                model = workload.build_model(deployment)
                if enabled and scenario.late_enable:
                    quantguard.enable(**options)
                output = workload.generate(model, PROMPT, max_new_tokens=tokens)
        except BaseException as exc:  # noqa: BLE001 - SystemExit included: the incident may exit
            outcome = f"{type(exc).__name__}: {str(exc).splitlines()[0][:90]}" if str(exc) else type(exc).__name__
        if enabled:
            quantguard.disable()
    return events, output, outcome, time.perf_counter() - started


def run_demo(
    tokens: int = 50, only: Sequence[str] | None = None, log_dir: str | None = None
) -> tuple[list[DemoRow], list[DemoRow]]:
    """Clean runs first (their tokens are the baseline), then every scenario."""
    from quantguard.sim.scenarios import SCENARIOS, Scenario

    directory = log_dir or tempfile.mkdtemp(prefix="quantguard-demo-")
    os.makedirs(directory, exist_ok=True)
    clean_rows, baseline = [], {}
    for arch in ("gfx942", "gfx950"):
        clean = Scenario(f"clean {arch}", (), {"arch": arch, "backend": "ck"})
        _, reference, _, _ = _run_once(clean, tokens, os.devnull, enabled=False)
        events, output, outcome, seconds = _run_once(clean, tokens, os.path.join(directory, f"clean-{arch}.jsonl"))
        baseline[arch] = reference
        noisy = sorted(
            {
                e.get("check") or e["event"]
                for e in events
                if e["event"] in ("quantguard.violation", "quantguard.blocked", "quantguard.internal_error")
            }
        )
        identical = "identical with quantguard on/off" if output == reference else "CHANGED by quantguard"
        clean_rows.append(
            DemoRow(
                clean.name,
                clean.setting,
                bool(noisy),
                noisy,
                _first_message(events),
                f"{_match(output, reference)} ({identical})",
                seconds,
                outcome,
            )
        )
    rows = []
    for scenario in SCENARIOS:
        if only and scenario.name not in only:
            continue
        log = os.path.join(directory, scenario.name.replace(": ", "-").replace(" ", "_") + ".jsonl")
        events, output, outcome, seconds = _run_once(scenario, tokens, log)
        checks = sorted(events.checks() | ({"blocked"} if events.named("blocked") else set()))
        missing = sorted(set(scenario.expected) - set(checks))
        rows.append(
            DemoRow(
                scenario.name,
                scenario.setting,
                bool(checks) and not missing,
                checks,
                _first_message(events),
                _match(output, baseline[scenario.deploy.get("arch", "gfx942")]),
                seconds,
                outcome,
                missing,
            )
        )
    return clean_rows, rows


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _run(args: argparse.Namespace) -> int:
    import torch

    # The simulator's tensors are tiny: extra intra-op threads only spin (and thrash on a shared CPU).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    started = time.perf_counter()
    try:
        clean_rows, rows = run_demo(args.tokens, args.only, args.log_dir)
    finally:
        torch.set_num_threads(threads)
    wide = args.wide
    out = [
        "quantguard demo — simulated AITER/ATOM; production sampling (first 3 calls per signature, then 1%)\n",
        table(
            ("clean run", "setting", "violations", "tokens vs quantguard off"),
            [(r.name, r.setting, ", ".join(r.checks) or "none", r.tokens) for r in clean_rows],
            wide,
        ),
    ]
    header = ["fault", "setting", "detected", "by", f"tokens ({args.tokens})"]  # matching the clean run
    if wide:  # the first event inline, in full
        header.insert(4, "first event")
    body = []
    for r in rows:
        cells = [r.name, r.setting, "yes" if r.detected else "NO", ", ".join(r.checks), r.tokens]
        if wide:
            cells.insert(4, r.first)
            cells[-1] += "" if r.outcome == "ok" else f" [{r.outcome}]"
        body.append(cells)
    out.append(table(header, body, wide, min_widths={0: 34, 3: 18, len(header) - 1: 11}))
    if not wide:  # one line per fault, cut to the width (-v/--wide shows all of it)
        out.append("first event of each fault, and how a run ended if it raised (full text: -v/--wide):")
        for r in rows:
            out.append(_clip(f"  {r.name}: {r.first or '—'}", WIDTH))
            if r.outcome != "ok":
                out.append(_clip(f"    run ended: {r.outcome}", WIDTH))
    sys.stdout.write("".join(render(item, wide) for item in out))
    missed = [r.name + (f" ({', '.join(r.missing)} silent)" if r.missing else "") for r in rows if not r.detected]
    noisy = [r.name for r in clean_rows if r.detected]
    print(
        f"\n{len(rows) - len(missed)}/{len(rows)} faults detected; clean runs: "
        f"{'quiet' if not noisy else 'VIOLATIONS in ' + ', '.join(noisy)}; {time.perf_counter() - started:.1f} s"
    )
    if args.log_dir:
        print(f"event logs: {args.log_dir} (summarize with: quantguard report {args.log_dir}/*.jsonl)")
    if missed:
        print("missed: " + ", ".join(missed))
    return 0 if not missed and not noisy else 1
