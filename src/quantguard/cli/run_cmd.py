"""``quantguard run -- COMMAND``: enable quantguard for a child command (like ``opentelemetry-instrument``).

The child gets ``QUANTGUARD_ENABLED=1`` plus any option given here as its
``QUANTGUARD_*`` variable, and quantguard's ``sitecustomize`` on
``PYTHONPATH`` so activation works even where the ``.pth`` hook is not
installed.  The command replaces this process (signals and exit code are the
child's).
"""

from __future__ import annotations

import argparse
import os
import shutil
from typing import Any

from quantguard import environment_variables as env
from quantguard.config import resolve_config

__all__ = ["add_parser", "child_environment"]

_OPTIONS = {
    "mode": env.QUANTGUARD_MODE,
    "targets": env.QUANTGUARD_TARGETS,
    "disabled_targets": env.QUANTGUARD_DISABLED_TARGETS,
    "sample_rate": env.QUANTGUARD_SAMPLE_RATE,
    "log": env.QUANTGUARD_LOG,
    "log_format": env.QUANTGUARD_LOG_FORMAT,
    "gfx": env.QUANTGUARD_GFX,
    "ck_free": env.QUANTGUARD_CK_FREE,
    "on_block": env.QUANTGUARD_ON_BLOCK,
}


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a command with quantguard enabled",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for option in _OPTIONS:
        parser.add_argument(
            f"--{option.replace('_', '-')}", dest=option, default=None, help=f"sets {_OPTIONS[option]} for the child"
        )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    parser.set_defaults(handler=_run)


def child_environment(args: argparse.Namespace, base: dict[str, str]) -> dict[str, str]:
    environment = dict(base)
    environment[env.QUANTGUARD_ENABLED] = "1"
    for option, variable in _OPTIONS.items():
        value = getattr(args, option, None)
        if value is not None:
            environment[variable] = str(value)
    resolve_config({}, environment)  # fail here, with the message, rather than silently in the child
    autoload = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "_autoload")
    existing = environment.get("PYTHONPATH", "")
    environment["PYTHONPATH"] = autoload + (os.pathsep + existing if existing else "")
    return environment


def _run(args: argparse.Namespace) -> int:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        print(
            "quantguard run: give the command after --, e.g. quantguard run -- python -m atom.examples.simple_inference"
        )
        return 2
    try:
        environment = child_environment(args, dict(os.environ))
    except ValueError as exc:
        print(f"quantguard run: {exc}")
        return 2
    program = shutil.which(command[0], path=environment.get("PATH")) or command[0]
    try:
        os.execvpe(program, command, environment)
    except OSError as exc:
        print(f"quantguard run: cannot execute {command[0]!r}: {exc}")
        return 127
    return 0  # pragma: no cover - exec does not return
