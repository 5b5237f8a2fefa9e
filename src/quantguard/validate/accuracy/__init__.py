"""Quantized configurations against an FP16/BF16 reference, layer by layer and token by token.

--model is a transformers causal LM (tiny-llama: a small LlamaConfig with
seeded random weights; a local checkpoint directory, loaded with its weights
and tokenizer when present; a config.json; a model id already in the Hugging
Face cache; nothing is downloaded), the simulator's ATOM workload (sim), or
module:function. The reference runs the calibration prompts with forward hooks
on every transformer layer and keeps the final logits. Each configuration
(--configs: a scheme on --backend, or a named setting such as fp8-triton,
fp8-hipblaslt, fp4-ck, ckfree, or the pure-torch CPU mode fp8-torch) then runs
on AITER's kernels (or plain torch): per-layer cosine (float64, every
position) and norm ratio, logits cosine, KL(ref||quant), top-1 agreement and
perplexity, and greedy generation with token match rate and sacrebleu BLEU
against the reference's generations (on decoded text when there is a
tokenizer, token ids otherwise).

A configuration FAILS on any flagged layer (cosine below its threshold, norm
ratio outside 1 +- tolerance, non-finite values), an overall cosine below its
threshold, a garbled generation (token match < 50%), or an error while
running. INT4 (W4A16, group 128) runs in torch: AITER has no INT4 linear GEMM.

exit codes: 0 every configuration passed, 1 at least one failed, 2 usage or
environment error.

examples:
  quantguard validate accuracy --sim --configs fp8-triton,fp8-hipblaslt,fp4-ck,ckfree,fp8-torch
  quantguard validate accuracy --configs fp8-torch,fp8block-torch,fp4-torch --model ./my-checkpoint
  quantguard validate accuracy --sim --gfx gfx950 --backend triton --configs mxfp4 -o report.md
  quantguard validate accuracy --model sim --fault moe_missing_routed_scaling
  quantguard validate accuracy --model mypkg.eval:load_model --backend ck -o out/accuracy.md
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

import torch

from quantguard.validate._environment import SIM_ARCHS, AiterEnvironment, aiter_environment, describe_sim
from quantguard.validate._usage import UsageError, run_validation
from quantguard.validate.accuracy.configurations import NAMED, Configuration, parse_configurations
from quantguard.validate.accuracy.evaluation import DEFAULT_THRESHOLDS, FAMILIES, evaluate, run_reference
from quantguard.validate.accuracy.models import LoadOptions, ModelError, ModelSpec, supported
from quantguard.validate.accuracy.models_hf import ACCEPTED
from quantguard.validate.accuracy.ready_models import load_model
from quantguard.validate.accuracy.report import RunHeader, markdown, summary, write_reports
from quantguard.validate.quantize import BACKENDS, DEFAULT_SKIP, SCHEMES, UnsupportedPath

__all__ = ["add_arguments", "parse_thresholds", "run"]

_SIM_DEFAULT_ARCH = "gfx942"
_FP4_ARCH = "gfx950"
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
        help=f"{ACCEPTED} (returning (model, inputs) or a dict with model, prompts[, tokenize]); "
        "nothing is downloaded (default: tiny-llama)",
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
        help=f"comma-separated: {', '.join(SCHEMES)} (on --backend) or named ones with their own backend: "
        f"{', '.join(NAMED)} (*-torch: plain torch, no AITER) (default: the schemes the arch and backend support)",
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
        "--gfx",
        choices=SIM_ARCHS,
        default=None,
        help=f"simulated arch (default: {_SIM_DEFAULT_ARCH}, {_FP4_ARCH} when a requested configuration is FP4)",
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
    accepted = sorted(set(FAMILIES.values())) + list(FAMILIES) + list(NAMED)
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


def _resolve_threshold(
    config: Configuration, command_line: Mapping[str, float], model: Mapping[str, float]
) -> tuple[float, str]:
    for source, table in (("--threshold", command_line), ("model default", model)):
        for key in (config.name, config.scheme, config.family):
            if key in table:
                return table[key], source
    return DEFAULT_THRESHOLDS[config.family], "default"


def _requested_configs(args: argparse.Namespace) -> list[Configuration] | None:
    if args.configs is None:
        return None
    try:
        return parse_configurations(args.configs, args.backend, args.preshuffle)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _device(args: argparse.Namespace) -> torch.device:
    if args.device is not None:
        return torch.device(args.device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _arch(args: argparse.Namespace, requested: list[Configuration] | None) -> str:
    """The simulated arch: ``--gfx``, else gfx950 when a requested AITER configuration is FP4, else gfx942."""
    if args.gfx:
        return args.gfx
    fp4 = any(config.family == "fp4" and not config.pure_torch for config in requested or ())
    return _FP4_ARCH if fp4 else _SIM_DEFAULT_ARCH


@contextmanager
def _aiter_environment(
    args: argparse.Namespace, device: torch.device, requested: list[Configuration] | None
) -> Iterator[AiterEnvironment | None]:
    """Make ``import aiter`` work for the run; ``None`` when only pure-torch configurations run (no AITER)."""
    if args.model == "sim":
        arch = args.gfx or _SIM_DEFAULT_ARCH
        description = describe_sim(arch, args.ck_free, args.fault, "installed per configuration by the workload")
        yield AiterEnvironment(arch, args.ck_free, description, True)
        return
    if requested is not None and all(config.pure_torch for config in requested) and not args.sim:
        if args.gfx or args.ck_free or args.fault:
            raise UsageError("--gfx, --ck-free and --fault configure the simulator; add --sim")
        yield None
        return
    arch = _arch(args, requested) if args.sim else args.gfx
    with aiter_environment(args.sim, arch, args.ck_free, args.fault, device) as environment:
        yield environment


def _build(
    args: argparse.Namespace, environment: AiterEnvironment | None, config: Configuration, device: torch.device
) -> AbstractContextManager[None]:
    """A CK-free simulator for a ``ckfree`` configuration in a run that is not CK-free, then the run's again."""
    if args.model == "sim" or environment is None or not config.ck_free or environment.ck_free:
        return nullcontext()

    @contextmanager
    def ck_free_build() -> Iterator[None]:
        import quantguard.sim as simulator

        simulator.install(arch=environment.arch, ck_free=True, faults=tuple(args.fault), device=device)
        try:
            yield
        finally:
            simulator.install(arch=environment.arch, ck_free=False, faults=tuple(args.fault), device=device)

    return ck_free_build()


def _unsupported(spec: ModelSpec, config: Configuration, environment: AiterEnvironment | None) -> str | None:
    if config.ck_free and environment is not None and not (environment.simulated or environment.ck_free):
        return f"{config.name} needs a CK-free AITER build and this one builds CK; add --sim for the simulated one"
    return supported(spec, config)


def _configs(
    spec: ModelSpec,
    requested: list[Configuration] | None,
    args: argparse.Namespace,
    environment: AiterEnvironment | None,
) -> tuple[list[Configuration], dict[str, str]]:
    """The configurations to run, and those left out by default with the reason."""
    run, not_run = [], {}
    default = [
        Configuration(scheme, scheme, args.backend, args.preshuffle, False, f"--backend {args.backend}")
        for scheme in SCHEMES
    ]
    for config in requested or default:
        reason = _unsupported(spec, config, environment)
        if reason is None:
            run.append(config)
        elif requested:
            raise UsageError(f"--configs {config.name}: {reason}")
        else:
            not_run[config.name] = reason
    if not run:
        raise UsageError("no configuration can run here: " + "; ".join(f"{k}: {v}" for k, v in not_run.items()))
    return run, not_run


def _bleu_implementation(spec: ModelSpec) -> str:
    on = "decoded text, 13a tokenizer" if spec.decode is not None else "token ids (no tokenizer), tokenize='none'"
    return f"sacrebleu corpus BLEU-4 of greedy generations vs the reference's, on {on}"


def _validate(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("sacrebleu") is None:
        raise UsageError("validate accuracy needs sacrebleu for BLEU: pip install 'quantguard[accuracy]'")
    requested = _requested_configs(args)
    command_line_thresholds = parse_thresholds(args.threshold)
    device = _device(args)
    with _aiter_environment(args, device, requested) as environment:
        options = LoadOptions(
            arch=environment.arch if environment else None,
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
            configs, not_run = _configs(spec, requested, args, environment)
            reference = run_reference(spec, args.max_new_tokens)
        except (ModelError, UnsupportedPath) as exc:
            raise UsageError(str(exc)) from exc
        thresholds = {
            config.name: _resolve_threshold(config, command_line_thresholds, spec.thresholds) for config in configs
        }
        from quantguard.cli._console import progress

        results = []
        with progress(len(configs), "accuracy", getattr(args, "quiet", False)) as bar:
            for config in bar.track(configs, lambda config: f"accuracy {config.name}"):
                with _build(args, environment, config, device):
                    results.append(
                        evaluate(
                            spec,
                            reference,
                            config,
                            thresholds[config.name][0],
                            args.norm_tolerance,
                            args.max_new_tokens,
                        )
                    )
    arch = environment.arch if environment else "none (pure torch)"
    description = environment.description if environment else "not used: pure-torch configurations only"
    header = RunHeader(
        model_name=spec.name,
        model=spec.description,
        arch=arch,
        environment=description,
        backend=args.backend,
        preshuffle={None: "ATOM default", True: "on", False: "off"}[args.preshuffle],
        device=str(device),
        dtype=str(options.dtype).replace("torch.", ""),
        num_prompts=len(spec.prompts),
        max_new_tokens=args.max_new_tokens,
        thresholds={name: f"{value} ({source})" for name, (value, source) in thresholds.items()},
        norm_tolerance=args.norm_tolerance,
        bleu=_bleu_implementation(spec),
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
