"""``quantguard info``: what quantguard would guard here, and what it detected.

Lists the configuration (environment over defaults), the detected arch, FP8
dtype and CK-free state with where each came from, and every contract:
patched (with its alias count), missing, mismatched (AITER version drift) or
waiting for its module.  ``--sim`` installs the simulated AITER first.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
from typing import Any

from quantguard import environment_variables as env
from quantguard._version import __version__

__all__ = ["add_parser", "collect_info"]


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("info", help="show configuration, detected platform and contract status",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sim", action="store_true", help="install the simulated AITER (and ATOM) first")
    parser.add_argument("--gfx", default="gfx942", help="simulated arch with --sim (gfx942 or gfx950)")
    parser.add_argument("--ck-free", action="store_true", help="simulate a CK-free build with --sim")
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
            contracts.append({"target": target, "status": "mismatched" if applied.mismatch else applied.status,
                              "backend": applied.contract.backend, "kind": applied.contract.kind,
                              "aliases": max(len(applied.bindings) - 1, 0), "reason": applied.reason,
                              "differences": applied.mismatch,
                              "disabled_checks": sorted(applied.state.disabled_checks) if applied.state else []})
        uncovered = []
        for extension in runtime.extensions:
            finder = getattr(extension, "uncovered_asm", None)
            if finder is not None:
                uncovered = finder(runtime)
        return {"version": __version__, "config": config, "platform": platform.as_dict(),
                "contracts": contracts, "uncovered_asm": uncovered,
                "environment": {name: os.environ.get(name) for name in env.DESCRIPTIONS if os.environ.get(name)}}
    finally:
        if not was_enabled:
            quantguard.disable()


def _run(args: argparse.Namespace) -> int:
    if args.sim:
        from quantguard import sim
        sim.install(arch=args.gfx, ck_free=args.ck_free, atom=True, force=True)
    info = collect_info()
    platform = info["platform"]
    print(f"quantguard {info['version']}")
    print("\nplatform")
    print(f"  arch      {platform['arch']}  (from {platform['arch_source']})")
    print(f"  fp8 dtype {platform['fp8_dtype']}  (from {platform['fp8_source']})")
    print(f"  CK-free   {platform['ck_free']}  (from {platform['ck_free_source']})")
    print(f"  ASM kernels blocked: {platform['asm_blocked']}")
    config = info["config"]
    print("\nconfiguration")
    for field in ("mode", "targets", "disabled_targets", "sample_rate", "sample_first", "log", "log_format",
                  "on_block", "shadow", "e8m0_rounding"):
        print(f"  {field:<17} {getattr(config, field)}")
    if info["environment"]:
        print("  set in the environment: " + ", ".join(f"{k}={v}" for k, v in info["environment"].items()))
    counts: dict[str, int] = {}
    for contract in info["contracts"]:
        counts[contract["status"]] = counts.get(contract["status"], 0) + 1
    print("\ncontracts: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    for contract in info["contracts"]:
        extra = f"  aliases={contract['aliases']}" if contract["status"] == "patched" else f"  {contract['reason']}"
        if contract["differences"]:
            extra = "  " + "; ".join(contract["differences"])
            if contract["disabled_checks"]:
                extra += f" (disabled: {', '.join(contract['disabled_checks'])})"
        print(f"  {contract['status']:<10} {contract['backend']:<9} {contract['target']}{extra}")
    if info["uncovered_asm"]:
        print("\nASM-looking functions no contract names (guarded by the CK-free policy only):")
        for name in info["uncovered_asm"]:
            print(f"  {name}")
    return 0
