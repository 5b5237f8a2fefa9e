"""``quantguard info``: what quantguard would guard here, and what it detected.

Lists the configuration (environment over defaults), the detected arch, FP8
dtype and CK-free state with where each came from, and every contract:
patched (with its alias count), missing, mismatched (AITER version drift) or
waiting for its module.  ``--sim`` installs the simulated AITER first.

``--coverage PATH`` instead scans a source tree statically (nothing in it is
imported) for AITER call sites and says which ones a contract guards: per
file, each call site (file:line, name as written, resolved AITER path,
contract) and totals.  Without ``--paths``, an ATOM checkout is grouped into
its quantized linear, MoE, MLA and DeepSeek-V2/V4 files; see docs/coverage.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from typing import Any

from quantguard import environment_variables as env
from quantguard._version import __version__
from quantguard.cli._console import add_width_option, render, table

__all__ = ["add_parser", "collect_info"]


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "info",
        help="show configuration, detected platform and contract status",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--sim", action="store_true", help="install the simulated AITER (and ATOM) first")
    parser.add_argument("--gfx", default="gfx942", help="simulated arch with --sim (gfx942 or gfx950)")
    parser.add_argument("--ck-free", action="store_true", help="simulate a CK-free build with --sim")
    parser.add_argument(
        "--coverage", metavar="PATH", help="scan PATH for AITER call sites and report which ones contracts guard"
    )
    parser.add_argument(
        "--paths", nargs="+", metavar="GLOB", help="with --coverage: only files matching these globs (relative to PATH)"
    )
    parser.add_argument("--json", action="store_true", help="with --coverage: print JSON")
    parser.add_argument("--unguarded", action="store_true", help="with --coverage: list only unguarded call sites")
    add_width_option(parser)
    parser.set_defaults(handler=_run)


def collect_info(import_targets: bool = True) -> dict[str, Any]:
    """Enable quantguard silently, read what it patched and detected, disable again."""
    import quantguard
    from quantguard.config import resolve_config
    from quantguard.engine.lifecycle import current_runtime

    config = resolve_config({}, os.environ)
    if import_targets:
        for package in ("aiter", "atom"):
            if importlib.util.find_spec(package) is not None:
                try:
                    __import__(package)
                except Exception:
                    pass
    was_enabled = quantguard.is_enabled()
    runtime = current_runtime() if was_enabled else quantguard.enable(log=os.devnull, summary_at_exit=False)
    try:
        platform = runtime.platform
        contracts = []
        for target, applied in sorted(runtime.applied.items()):
            contracts.append(
                {
                    "target": target,
                    "status": "mismatched" if applied.mismatch else applied.status,
                    "backend": applied.contract.backend,
                    "kind": applied.contract.kind,
                    "aliases": max(len(applied.bindings) - 1, 0),
                    "reason": applied.reason,
                    "dispatch": getattr(getattr(applied.guard, "hook", None), "where", None),
                    "parameters_from": applied.state.binder.source if applied.state else None,
                    "differences": applied.mismatch,
                    "disabled_checks": sorted(applied.state.disabled_checks) if applied.state else [],
                }
            )
        uncovered = []
        for extension in runtime.extensions:
            finder = getattr(extension, "uncovered_asm", None)
            if finder is not None:
                uncovered = finder(runtime)
        return {
            "version": __version__,
            "config": config,
            "platform": platform.as_dict(),
            "contracts": contracts,
            "uncovered_asm": uncovered,
            "environment": {name: os.environ.get(name) for name in env.DESCRIPTIONS if os.environ.get(name)},
        }
    finally:
        if not was_enabled:
            quantguard.disable()


def _percent(guarded: int, total: int) -> str:
    return f"{guarded}/{total} ({100 * guarded / total:.1f}%)" if total else "0/0"


def _print_coverage(args: argparse.Namespace) -> int:
    import json

    from quantguard.coverage import measure

    try:
        coverage = measure(args.coverage, args.paths)
    except FileNotFoundError as exc:
        print(f"quantguard info: {exc}")
        return 2
    if args.json:
        print(json.dumps(coverage.as_dict(), indent=2))
        return 0
    print(f"AITER call sites in {coverage.root}")
    for group in coverage.groups:
        print(f"\n[{group}]")
        current = None
        for site in (s for s in coverage.sites if s.group == group):
            status = site.resolution.category
            if status == "infrastructure" or (args.unguarded and status == "guarded"):
                continue
            if site.call.path != current:
                current = site.call.path
                print(f"  {current}")
            mark = "guarded  " if status == "guarded" else ("UNGUARDED" if site.resolution.quantized else "unguarded")
            contract = f"  [{site.resolution.contract}]" if site.resolution.contract else ""
            print(f"    {mark} {site.call.path}:{site.call.line}  {site.call.written} -> {site.call.target}{contract}")
    print("\ntotals (kernel calls; infrastructure calls not counted; UNGUARDED = on a quantized path)")
    for label, totals in coverage.totals().items():
        print(
            f"  {label:<17} quantized paths {_percent(totals['quantized_guarded'], totals['quantized_total']):<18}"
            f" all kernels {_percent(totals['kernel_guarded'], totals['kernel_total']):<18}"
            f" infrastructure {totals['infrastructure']}"
        )
    if coverage.unparsed:
        print("not parsed (syntax this Python does not read): " + ", ".join(coverage.unparsed))
    return 0


def _run(args: argparse.Namespace) -> int:
    if args.coverage:
        return _print_coverage(args)
    if args.sim:
        from quantguard import sim

        sim.install(arch=args.gfx, ck_free=args.ck_free, atom=True, force=True)
    info = collect_info()
    wide = args.wide
    platform = info["platform"]
    config = info["config"]
    out: list[Any] = [f"quantguard {info['version']}", "\nplatform"]
    out.append(
        _pairs(
            [
                ("arch", f"{platform['arch']}  (from {platform['arch_source']})"),
                ("fp8 dtype", f"{platform['fp8_dtype']}  (from {platform['fp8_source']})"),
                ("CK-free", f"{platform['ck_free']}  (from {platform['ck_free_source']})"),
                ("ASM blocked", str(platform["asm_blocked"])),
            ],
            wide,
        )
    )
    out.append("\nconfiguration")
    fields = ("mode", "targets", "disabled_targets", "sample_rate", "sample_first", "log", "log_format")
    fields += ("on_block", "shadow", "e8m0_rounding")
    pairs = [(field, str(getattr(config, field))) for field in fields]
    if info["environment"]:
        pairs.append(("set in env", ", ".join(f"{k}={v}" for k, v in info["environment"].items())))
    out.append(_pairs(pairs, wide))
    counts: dict[str, int] = {}
    for contract in info["contracts"]:
        counts[contract["status"]] = counts.get(contract["status"], 0) + 1
    out.append("\ncontracts: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    rows = []
    for contract in info["contracts"]:
        if contract["status"] != "patched":
            extra = contract["reason"]
        elif contract["dispatch"]:
            extra = f"at {contract['dispatch']}, parameters from {contract['parameters_from']}"
        else:
            extra = f"aliases={contract['aliases']}"
        if contract["differences"]:
            extra = "; ".join(contract["differences"])
            if contract["disabled_checks"]:
                extra += f" (disabled: {', '.join(contract['disabled_checks'])})"
        rows.append((contract["status"], contract["backend"], contract["target"], extra))
    out.append(table(("status", "backend", "contract", "detail"), rows, wide, min_widths={2: 44}))
    if info["uncovered_asm"]:
        out.append("ASM-looking functions no contract names (guarded by the CK-free policy only):")
        out += [f"  {name}" for name in info["uncovered_asm"]]
    sys.stdout.write("".join(render(item, wide) for item in out))
    return 0


def _pairs(pairs: list[tuple[str, str]], wide: bool) -> Any:
    """Indented ``name  value`` lines whose values wrap under themselves, not under the names."""
    from rich.table import Table

    grid = Table.grid(padding=(0, 2, 0, 0))
    grid.add_column(min_width=2)  # the indent
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold", no_wrap=wide)
    for name, value in pairs:
        grid.add_row("", name, value)
    return grid
