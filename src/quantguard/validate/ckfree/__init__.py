"""CK-free readiness: a deployment built without Composable Kernel must never need CK or, on gfx950, ASM.

Runs the CK-free checklist and prints one line per item (PASS, FAIL, SKIP,
ERROR) with its evidence:

  ck_free_detected            AITER's CK_3RDPARTY_DIR is missing and ATOM_CK_FREE=1
  asm_never_invoked           no ASM kernel ran on gfx950 (blocked and guarded ASM
                              calls, named entry point -> kernel); SKIP on gfx942
  triton_selected.linear      ATOM's use_triton* selectors return True, one item
  triton_selected.attention_mla   per path
  triton_selected.moe
  shuffle_scale_column_major  dynamic_per_token_scaled_quant, its Triton fallback and
                              per_group_quant_hip(transpose_scale=True) write (G, M)
                              scale bytes, found by recomputing the scales
  partial_transpose_writes    partial_transpose and its fallback write input[:r]
                              transposed, and nothing past r
  jit_failure_catchable       a CK entry point's failed JIT build raises (RuntimeError),
                              never SystemExit (probed only without CK sources)
  regression_checklist        every quantguard check over the workload, no violation
  layer_cosine                each transformer layer (cosine >= 0.999), MoE routing and
                              expert GEMM (>= 0.9999) vs the precision-matched reference:
                              the same quantized operands multiplied in fp32
  generation                  greedy tokens vs the reference's (token match), and
                              output-embedding cosine on the same token history

With --sim the deployment is the simulator's ATOM-like workload, installed
CK-free with ATOM_CK_FREE=1 and run with quantguard enabled (mode=log,
on_block=log); the direct probes run on the same install with quantguard off.
Without --sim the installed AITER and ATOM are probed directly, and the
guarded-run items read the event logs of a quantguard-enabled ATOM run
(--events); per-layer cosine and generation on a real model are what
`quantguard validate accuracy --backend triton` measures.

exit codes: 0 every item passed or was skipped, 1 an item failed or could not
be decided (ERROR), 2 usage or environment error.

examples:
  quantguard validate ckfree --sim --gfx gfx950 -o ckfree.md --json ckfree.json
  quantguard validate ckfree --sim --gfx gfx950 --fault triton_quant_ignores_shuffle_scale
  quantguard validate ckfree --sim --gfx gfx950 --backend asm --preshuffle --fault asm_gemm_garbage_gfx950
  ATOM_CK_FREE=1 quantguard validate ckfree --events run-*.jsonl -o ckfree.md
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

from quantguard.validate._environment import SIM_ARCHS, aiter_environment
from quantguard.validate._usage import UsageError, run_validation
from quantguard.validate.ckfree.checks import (
    SKIP,
    Item,
    jit_failure_item,
    partial_transpose_item,
    platform_item,
    selector_items,
    shuffle_scale_item,
)
from quantguard.validate.ckfree.report import RunHeader, console, exit_code, markdown, write_json
from quantguard.validate.ckfree.results import (
    Thresholds,
    asm_item,
    fold_events,
    fold_files,
    generation_item,
    layer_item,
    regression_item,
)
from quantguard.validate.ckfree.workload import SimSettings, run_sim

__all__ = ["add_arguments", "run"]

_BACKENDS = ("ck", "triton", "asm")
#: Against the precision-matched reference (same quantized operands, fp32 products) only accumulation
#: order may differ: what users asked for (docs/validate.md). Clean simulated runs read 1.0 on both arches.
_LAYER_COSINE, _MOE_COSINE = 0.999, 0.9999
_NORM_TOLERANCE, _EMBEDDING_COSINE, _TOKEN_MATCH = 0.05, 0.95, 0.8
_GUARD_OPTIONS = (
    "mode=log, on_block=log, arch and CK-free detected from AITER, default sampling (first 3 calls "
    "per signature, then 1%), seed=0"
)


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``quantguard validate ckfree``."""
    run = parser.add_argument_group("workload")
    run.add_argument(
        "--tokens",
        "--max-new-tokens",
        dest="tokens",
        type=_count,
        default=50,
        metavar="N",
        help="greedy tokens generated (default: 50)",
    )
    run.add_argument(
        "--prompts",
        type=_count,
        default=4,
        metavar="N",
        help="calibration prompts of 16 tokens for the per-layer cosine; generation uses the first (default: 4)",
    )
    run.add_argument("--device", default=None, help="torch device (default: cpu with --sim, else cuda when available)")
    run.add_argument(
        "--events",
        action="append",
        type=Path,
        default=[],
        metavar="EVENTS.jsonl",
        help="without --sim: quantguard event logs of a CK-free ATOM run, for the ASM and regression items; repeatable",
    )

    limits = parser.add_argument_group("thresholds")
    limits.add_argument(
        "--layer-cosine",
        type=_fraction,
        default=_LAYER_COSINE,
        metavar="X",
        help=f"minimum per-layer cosine vs the precision-matched reference (default: {_LAYER_COSINE})",
    )
    limits.add_argument(
        "--moe-cosine",
        type=_fraction,
        default=_MOE_COSINE,
        metavar="X",
        help=f"minimum cosine of each MoE routing and expert GEMM vs the precision-matched reference "
        f"(default: {_MOE_COSINE})",
    )
    limits.add_argument(
        "--norm-tolerance",
        type=float,
        default=_NORM_TOLERANCE,
        metavar="X",
        help=f"layer and output-embedding norm ratio within 1 +- X (default: {_NORM_TOLERANCE})",
    )
    limits.add_argument(
        "--embedding-cosine",
        type=_fraction,
        default=_EMBEDDING_COSINE,
        metavar="X",
        help=f"minimum output-embedding cosine over the generation (default: {_EMBEDDING_COSINE})",
    )
    limits.add_argument(
        "--min-token-match",
        type=_fraction,
        default=_TOKEN_MATCH,
        metavar="X",
        help=f"minimum share of generated tokens equal to the reference's (default: {_TOKEN_MATCH})",
    )

    output = parser.add_argument_group("output")
    output.add_argument("-o", "--output", type=Path, default=None, metavar="REPORT.md", help="write a markdown report")
    output.add_argument("--json", type=Path, default=None, metavar="REPORT.json", help="write the run as JSON")
    output.add_argument(
        "--log", default=None, metavar="EVENTS.jsonl", help="with --sim: keep the guarded run's quantguard events there"
    )

    simulator = parser.add_argument_group("simulator (no GPU)")
    simulator.add_argument("--sim", action="store_true", help="run on quantguard.sim installed CK-free with ATOM")
    simulator.add_argument(
        "--gfx", "--arch", dest="gfx", choices=SIM_ARCHS, default=None, help="simulated arch (default: gfx950)"
    )
    simulator.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="NAME[@BACKEND]",
        help="inject a simulator fault; repeatable (see docs/sim.md)",
    )
    simulator.add_argument(
        "--backend",
        choices=_BACKENDS,
        default=None,
        help="what the deployment prefers besides CK-free: asm registers AITER tuned configs "
        "sending FP8 blockscale shapes to ASM, triton sets ATOM_USE_TRITON_GEMM=1, ck "
        "leaves ATOM_CK_FREE=1 alone to pick Triton (default: ck)",
    )
    simulator.add_argument(
        "--preshuffle",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="ATOM_FP8_BLOCKSCALE_WEIGHT_PRESHUFFLE (default: off, as a CK-free ATOM deploys)",
    )


def _thresholds(args: argparse.Namespace) -> Thresholds:
    if not args.norm_tolerance > 0:
        raise UsageError(f"--norm-tolerance must be > 0, got {args.norm_tolerance}")
    return Thresholds(
        args.layer_cosine, args.norm_tolerance, args.embedding_cosine, args.min_token_match, args.moe_cosine
    )


def _threshold_text(thresholds: Thresholds) -> str:
    return (
        f"vs the precision-matched reference: layer cosine >= {thresholds.layer_cosine}, MoE routing and "
        f"expert GEMM cosine >= {thresholds.moe_cosine}, norm ratio within 1 ± {thresholds.norm_tolerance}; "
        f"vs BF16: output embedding cosine >= {thresholds.embedding_cosine}; token match >= {thresholds.token_match:.0%}"
    )


def _sim_settings(args: argparse.Namespace) -> SimSettings:
    from quantguard.sim import faults

    if args.events:
        raise UsageError("--events reads a real run's logs; with --sim the workload runs here")
    arch = args.gfx or "gfx950"
    try:
        faults.parse(tuple(args.fault)).check_reachable(arch=arch, ck_free=True, atom=True)
    except ValueError as exc:
        raise UsageError(f"--fault: {exc}") from exc
    if args.prompts < 1:
        raise UsageError("--prompts must be >= 1: the per-layer cosine needs a prompt")
    device = torch.device(args.device or "cpu")
    return SimSettings(
        arch,
        args.backend or "ck",
        args.preshuffle,
        tuple(args.fault),
        device,
        args.prompts,
        args.tokens,
        args.log or os.devnull,
    )


def _run_sim(args: argparse.Namespace) -> tuple[RunHeader, list[Item]]:
    from quantguard.cli._console import progress

    settings = _sim_settings(args)
    thresholds = _thresholds(args)

    def probes() -> list[Item]:
        return [
            platform_item(),
            *selector_items(),
            shuffle_scale_item(settings.device),
            partial_transpose_item(settings.device),
            jit_failure_item(settings.device),
        ]

    with progress(2, "ckfree: simulated workload and probes", getattr(args, "quiet", False)) as bar:
        try:
            run, (platform, *probed) = run_sim(settings, probes)
        except (RuntimeError, ValueError) as exc:  # the simulator refused to install, a position limit
            raise UsageError(str(exc)) from exc
        bar.advance(description="ckfree: checklist")
        guarded = fold_events(run)
        bar.advance()
    items = [
        platform,
        asm_item(guarded, settings.arch),
        *probed,
        regression_item(guarded),
        layer_item(run, thresholds),
        generation_item(run, thresholds, settings.tokens),
    ]
    env = ", ".join(f"{name}={value}" for name, value in run.deployment.get("env", {}).items())
    header = RunHeader(
        arch=f"{settings.arch} (simulated)",
        aiter="quantguard.sim, installed CK-free (CK_3RDPARTY_DIR does not exist)",
        deployment=f"{env}; AITER tuned configs: {settings.backend}" if env else "not deployed",
        faults=", ".join(settings.faults) or "none",
        device=str(settings.device),
        workload=(
            f"quantguard.sim ATOM-like workload (2 DeepSeek-shaped layers: MLA + MoE, FP8/MXFP4 linears); "
            f"{settings.prompts} prompts x 16 tokens vs the precision-matched reference (BF16: info); greedy {settings.tokens} tokens from prompt 0; "
            f"{run.seconds:.1f} s" + (f"; stopped: {run.error}" if run.error else "")
        ),
        thresholds=_threshold_text(thresholds),
        guard=f"quantguard {_GUARD_OPTIONS}" + (f"; events in {args.log}" if args.log else ""),
    )
    return header, items


def _run_installed(args: argparse.Namespace) -> tuple[RunHeader, list[Item]]:
    sim_only = [
        flag
        for flag, given in (
            ("--backend", args.backend),
            ("--preshuffle", args.preshuffle is not None),
            ("--log", args.log),
        )
        if given
    ]
    if sim_only:
        verb = "configures" if len(sim_only) == 1 else "configure"
        raise UsageError(f"{', '.join(sim_only)} {verb} the simulated run; add --sim")
    from quantguard.cli._console import progress
    from quantguard.report.reader import LogReadError

    thresholds = _thresholds(args)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    try:
        guarded = fold_files(args.events) if args.events else None
    except (LogReadError, OSError) as exc:
        raise UsageError(f"--events: {exc}") from exc
    with aiter_environment(False, args.gfx, False, args.fault, device) as environment:
        steps = [
            ("platform", lambda: [platform_item()]),
            ("ASM", lambda: [asm_item(guarded, environment.arch)]),
            ("selectors", selector_items),
            ("shuffle_scale", lambda: [shuffle_scale_item(device)]),
            ("partial_transpose", lambda: [partial_transpose_item(device)]),
            ("JIT failure", lambda: [jit_failure_item(device)]),
            ("regressions", lambda: [regression_item(guarded)]),
        ]
        items = []
        with progress(len(steps), "ckfree", getattr(args, "quiet", False)) as bar:
            for _, make in bar.track(steps, lambda step: f"ckfree: {step[0]}"):
                items += make()
    workload = (
        "needs a model run layer by layer beside its references, which this command cannot build on the "
        "installed ATOM: its layers (LinearBase, FusedMoE, MLA) need ATOM's model runner (an initialized "
        "aiter.dist TP group, get_current_atom_config(), a forward context) and a checkpoint. --sim runs the "
        "simulated workload; on hardware `quantguard validate accuracy --backend triton --model ...` measures "
        "your model's per-layer cosine and generation in this build"
    )
    items += [
        Item("layer_cosine", "per-layer and MoE cosine vs the precision-matched reference", SKIP, workload),
        Item("generation", f"{args.tokens}-token greedy generation vs the BF16 reference", SKIP, workload),
    ]
    atom = {name: value for name, value in sorted(os.environ.items()) if name.startswith("ATOM_")}
    header = RunHeader(
        arch=environment.arch,
        aiter=environment.description,
        deployment=", ".join(f"{name}={value}" for name, value in atom.items()) or "no ATOM_* variables set",
        faults="none (real AITER)",
        device=str(device),
        workload=f"events from {guarded.source}" if guarded else "none: pass --events for the guarded-run items",
        thresholds=_threshold_text(thresholds),
        guard="as recorded in the event logs" if guarded else "not run",
    )
    return header, items


def _validate(args: argparse.Namespace) -> int:
    header, items = (_run_sim if args.sim else _run_installed)(args)
    sys.stdout.write(console(header, items, getattr(args, "wide", False)))
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(markdown(header, items))
        print(f"report: {args.output}")
    if args.json is not None:
        write_json(args.json, header, items)
        print(f"json: {args.json}")
    return exit_code(items)


def run(args: argparse.Namespace) -> int:
    """Run the checklist; 0 every item passed or was skipped, 1 an item failed, 2 usage or environment error."""
    threads = torch.get_num_threads()
    if args.sim:
        torch.set_num_threads(1)  # the simulator's tensors are tiny: extra intra-op threads only spin
    try:
        return run_validation("ckfree", _validate, args)
    finally:
        torch.set_num_threads(threads)
