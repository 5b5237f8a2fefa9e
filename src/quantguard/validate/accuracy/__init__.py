"""Quantized configurations against an FP16/BF16 reference, layer by layer and token by token.

For a torch model (--model module:function, or the ready-made tiny-llama and
sim), the reference runs the calibration prompts with forward hooks on every
transformer layer and keeps the final logits. Each target configuration
(fp8_per_token, fp8_blockscale, mxfp4, int4) then runs on AITER's kernels for
the chosen backend: per-layer cosine (float64, every position) and norm
ratio, logits KL(ref||quant) and top-1 agreement, and greedy generation with
token match rate and BLEU against the reference's tokens.

A configuration FAILS on any flagged layer (cosine below its threshold, norm
ratio outside 1 +- tolerance, non-finite values), an overall cosine below its
threshold, a garbled generation (token match < 50%), or an error while
running. INT4 (W4A16, group 128) runs in torch: AITER has no INT4 linear GEMM.

exit codes: 0 every configuration passed, 1 at least one failed, 2 usage or
environment error.

examples:
  quantguard validate accuracy --sim --model tiny-llama -o report.md
  quantguard validate accuracy --sim --gfx gfx950 --backend triton --configs mxfp4
  quantguard validate accuracy --model sim --fault moe_missing_routed_scaling
  quantguard validate accuracy --model mypkg.eval:load_model --backend ck -o out/accuracy.md
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import torch

from quantguard.validate._environment import aiter_environment, describe_sim
from quantguard.validate._usage import UsageError, run_validation
from quantguard.validate.accuracy.evaluation import DEFAULT_THRESHOLDS, FAMILIES, evaluate, run_reference
from quantguard.validate.accuracy.models import LoadOptions, ModelError, ModelSpec, supported
from quantguard.validate.accuracy.ready_models import READY_MADE, load_model
from quantguard.validate.accuracy.report import RunHeader, markdown, summary, write_reports
from quantguard.validate.quantize import BACKENDS, DEFAULT_SKIP, SCHEMES, QuantConfig, UnsupportedPath

__all__ = ["add_arguments", "parse_thresholds", "run"]

_SIM_ARCHS = ("gfx942", "gfx950")
_SIM_DEFAULT_ARCH = "gfx942"
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
_NORM_TOLERANCE = 0.05


def _count(minimum: int):
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``quantguard validate accuracy``."""
    model = parser.add_argument_group("model")
    model.add_argument(
        "--model",
        default="tiny-llama",
        help=f"{' | '.join(READY_MADE)} | module:function returning (model, inputs) or a dict "
        "with model, prompts[, tokenize] (default: tiny-llama)",
    )
    model.add_argument(
        "--prompts",
        type=_count(1),
        default=10,
        metavar="N",
        help="generation prompts (built-in models: also the calibration prompts) (default: 10)",
    )
    model.add_argument(
        "--max-new-tokens", type=_count(0), default=50, metavar="N", help="greedy tokens per prompt (default: 50)"
    )
    model.add_argument("--dtype", choices=sorted(_DTYPES), default="bf16", help="reference precision (default: bf16)")
    model.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    model.add_argument(
        "--layers",
        metavar="REGEX",
        default=None,
        help="module names of the transformer layers (default: the longest list of identical "
        "blocks; not used by --model sim)",
    )
    model.add_argument(
        "--skip",
        metavar="PATTERN",
        action="append",
        default=None,
        help="fnmatch pattern of linear layers kept unquantized; repeatable "
        f"(default: {' '.join(DEFAULT_SKIP)}; not used by --model sim)",
    )

    target = parser.add_argument_group("configurations")
    target.add_argument(
        "--configs",
        default=None,
        metavar="LIST",
        help=f"comma-separated, from {','.join(SCHEMES)} (default: those the arch and backend support)",
    )
    target.add_argument("--backend", choices=BACKENDS, default="ck", help="GEMM backend (default: ck)")
    target.add_argument(
        "--preshuffle",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="preshuffled weights and the preshuffle GEMMs (default: on unless --backend triton)",
    )
    target.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="KEY=VALUE[,KEY=VALUE]",
        help="minimum per-layer cosine per family (fp8, fp4, int4) or configuration name "
        f"(default: {', '.join(f'{k}={v}' for k, v in DEFAULT_THRESHOLDS.items())})",
    )
    target.add_argument(
        "--norm-tolerance",
        type=float,
        default=_NORM_TOLERANCE,
        metavar="X",
        help=f"flag a layer whose output norm ratio is outside 1 +- X (default: {_NORM_TOLERANCE})",
    )

    output = parser.add_argument_group("output")
    output.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        metavar="REPORT.md",
        help="write the markdown report there, REPORT.layers.csv and REPORT.json beside it "
        "(default: markdown on stdout)",
    )

    simulator = parser.add_argument_group("simulator (no GPU)")
    simulator.add_argument(
        "--sim",
        action="store_true",
        help="run on quantguard.sim instead of the installed AITER (implied by --model sim)",
    )
    simulator.add_argument(
        "--gfx", choices=_SIM_ARCHS, default=None, help=f"simulated arch (default: {_SIM_DEFAULT_ARCH})"
    )
    simulator.add_argument("--ck-free", action="store_true", help="simulate a CK-free AITER build")
    simulator.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="NAME[@BACKEND]",
        help="inject a simulator fault; repeatable (see docs/sim.md)",
    )


def parse_thresholds(values: list[str]) -> dict[str, float]:
    """``["fp8=0.999,fp4=0.995", "int4=0.99"]`` -> ``{"fp8": 0.999, ...}``; keys are families or configurations."""
    accepted = sorted(set(FAMILIES.values())) + list(SCHEMES)
    thresholds: dict[str, float] = {}
    for value in values:
        for item in filter(None, (part.strip() for part in value.split(","))):
            key, sep, number = item.partition("=")
            if not sep or key.strip() not in accepted:
                raise UsageError(f"--threshold {item!r}: expected KEY=VALUE with KEY one of {', '.join(accepted)}")
            try:
                threshold = float(number)
            except ValueError:
                raise UsageError(f"--threshold {item!r}: {number!r} is not a number") from None
            if not 0.0 < threshold <= 1.0:
                raise UsageError(f"--threshold {item!r}: a cosine threshold must be in (0, 1]")
            thresholds[key.strip()] = threshold
    return thresholds


def _resolve_threshold(scheme: str, command_line: Mapping[str, float], model: Mapping[str, float]) -> tuple[float, str]:
    family = FAMILIES[scheme]
    for source, table in (("--threshold", command_line), ("model default", model)):
        for key in (scheme, family):
            if key in table:
                return table[key], source
    return DEFAULT_THRESHOLDS[family], "default"


def _requested_configs(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in SCHEMES]
    if unknown or not names:
        raise UsageError(f"--configs {text!r}: accepted configurations are {', '.join(SCHEMES)}")
    return list(dict.fromkeys(names))


def _device(args: argparse.Namespace) -> torch.device:
    if args.device is not None:
        return torch.device(args.device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@contextmanager
def _aiter_environment(args: argparse.Namespace, device: torch.device) -> Iterator[tuple[str, str]]:
    """Make ``import aiter`` work for the run; yields (arch, description of what AITER is)."""
    if args.model == "sim":
        arch = args.gfx or _SIM_DEFAULT_ARCH
        yield arch, describe_sim(arch, args.ck_free, args.fault, "installed per configuration by the workload")
        return
    with aiter_environment(args.sim, args.gfx, args.ck_free, args.fault, device) as environment:
        yield environment.arch, environment.description


def _configs(
    spec: ModelSpec, requested: list[str] | None, backend: str, preshuffle: bool | None
) -> tuple[list[QuantConfig], dict[str, str]]:
    """The configurations to run, and those left out by default with the reason."""
    run, not_run = [], {}
    for scheme in requested or SCHEMES:
        config = QuantConfig(scheme, backend, preshuffle)
        reason = supported(spec, config)
        if reason is None:
            run.append(config)
        elif requested:
            raise UsageError(f"--configs {scheme}: {reason}")
        else:
            not_run[scheme] = reason
    if not run:
        raise UsageError("no configuration can run here: " + "; ".join(f"{k}: {v}" for k, v in not_run.items()))
    return run, not_run


def _bleu_implementation() -> str:
    if importlib.util.find_spec("sacrebleu") is not None:
        return "sacrebleu corpus BLEU-4 (tokenize='none')"
    return "built-in corpus BLEU-4, identical to sacrebleu's default (sacrebleu not installed)"


def _validate(args: argparse.Namespace) -> int:
    requested = _requested_configs(args.configs)
    command_line_thresholds = parse_thresholds(args.threshold)
    device = _device(args)
    with _aiter_environment(args, device) as (arch, environment):
        options = LoadOptions(
            arch=arch,
            device=device,
            dtype=_DTYPES[args.dtype],
            num_prompts=args.prompts,
            skip=tuple(args.skip or DEFAULT_SKIP),
            layers=args.layers,
            ck_free=args.ck_free,
            faults=tuple(args.fault),
        )
        try:
            spec = load_model(args.model, options)
            configs, not_run = _configs(spec, requested, args.backend, args.preshuffle)
            reference = run_reference(spec, args.max_new_tokens)
        except (ModelError, UnsupportedPath) as exc:
            raise UsageError(str(exc)) from exc
        thresholds = {
            config.scheme: _resolve_threshold(config.scheme, command_line_thresholds, spec.thresholds)
            for config in configs
        }
        from quantguard.cli._console import progress

        with progress(len(configs), "accuracy", getattr(args, "quiet", False)) as bar:
            results = [
                evaluate(
                    spec, reference, config, thresholds[config.scheme][0], args.norm_tolerance, args.max_new_tokens
                )
                for config in bar.track(configs, lambda config: f"accuracy {config.scheme} {config.backend}")
            ]
    header = RunHeader(
        model_name=spec.name,
        model=spec.description,
        arch=arch,
        environment=environment,
        backend=args.backend,
        preshuffle={None: "ATOM default", True: "on", False: "off"}[args.preshuffle],
        device=str(device),
        dtype=str(options.dtype).replace("torch.", ""),
        num_prompts=len(spec.prompts),
        max_new_tokens=args.max_new_tokens,
        thresholds={name: f"{value} ({source})" for name, (value, source) in thresholds.items()},
        norm_tolerance=args.norm_tolerance,
        bleu=_bleu_implementation(),
        not_run=not_run,
    )
    if args.output is None:
        sys.stdout.write(markdown(header, reference, results, spec.layers))
    else:
        paths = write_reports(args.output, header, reference, results, spec.layers)
        sys.stdout.write(summary(results, getattr(args, "wide", False)))
        print(f"report: {paths[0]} (heatmap data: {paths[1]}, {paths[2]})")
    return 0 if all(result.passed for result in results) else 1


def run(args: argparse.Namespace) -> int:
    """Run the validation; 0 all configurations passed, 1 one failed, 2 usage or environment error."""
    return run_validation("accuracy", _validate, args)
