"""``quantguard`` command-line entry point: one module per subcommand."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from quantguard._version import __version__

__all__ = ["main", "build_parser"]

_SUBCOMMANDS = ("run", "info", "demo", "report", "validate")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="quantguard", description="Catch silent quantization bugs in LLM inference (AITER/ATOM)."
    )
    parser.add_argument("--version", action="version", version=f"quantguard {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _SUBCOMMANDS:
        module = __import__(f"quantguard.cli.{name}_cmd", fromlist=["add_parser"])
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    return int(args.handler(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
