"""How a validation refuses to run: one error type, exit code 2, a message naming what was wrong."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

__all__ = ["UsageError", "run_validation"]


class UsageError(Exception):
    """The command line or the environment cannot run the validation; exit code 2."""


def run_validation(name: str, validate: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """``validate(args)``'s exit code, or 2 with ``quantguard validate NAME: error: ...`` on stderr."""
    try:
        return validate(args)
    except UsageError as exc:
        print(f"quantguard validate {name}: error: {exc}", file=sys.stderr)
        return 2
