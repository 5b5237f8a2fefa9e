"""``quantguard validate quant|ckfree|accuracy``: offline validations with CI exit codes.

Each validation lives in :mod:`quantguard.validate` (one module each, with
``add_arguments(parser)`` and ``run(args) -> int``); this module only wires
them into the command line.  Exit code 0 means every case passed.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from typing import Any

from quantguard.cli._console import add_quiet_option, add_width_option

__all__ = ["add_parser", "VALIDATIONS"]

VALIDATIONS = {
    "quant": "quant paths x backends: the full quant→GEMM chain against an fp32 reference",
    "ckfree": "CK-free readiness: no ASM on gfx950, Triton selected, fallbacks honor their kwargs",
    "accuracy": "configurations x metrics (logits cosine, top-1, KL, perplexity, BLEU, layer cosine) vs FP16/BF16",
}


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="offline validations (quant, ckfree, accuracy)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    validations = parser.add_subparsers(dest="validation", metavar="VALIDATION")
    for name, help_text in VALIDATIONS.items():
        if importlib.util.find_spec(f"quantguard.validate.{name}") is None:
            continue
        try:
            module = __import__(f"quantguard.validate.{name}", fromlist=["add_arguments", "run"])
        except ImportError as exc:  # one broken validation must not take the whole CLI down
            broken = validations.add_parser(name, help=f"{help_text} (unavailable: {exc})")
            broken.set_defaults(handler=_unavailable(name, exc))
            continue
        if not (callable(getattr(module, "add_arguments", None)) and callable(getattr(module, "run", None))):
            continue
        sub = validations.add_parser(
            name, help=help_text, description=module.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        module.add_arguments(sub)
        add_width_option(sub)
        add_quiet_option(sub)
        sub.set_defaults(handler=module.run)
    parser.set_defaults(handler=lambda args: (parser.print_help(), 2)[1])


def _unavailable(name: str, error: ImportError) -> Any:
    def handler(args: argparse.Namespace) -> int:
        print(f"quantguard validate {name}: unavailable: {type(error).__name__}: {error}", file=sys.stderr)
        return 2

    return handler
