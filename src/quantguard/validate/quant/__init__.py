"""Every quantization scheme on every backend path: the full quant→GEMM chain against fp32.

For FP8 per-token, FP8 1x128 blockscale, FP8 per-tensor, MXFP4 (HIP producer),
FP4 (fp4-only and Triton producers), INT8 and INT4 (W4A16), on each backend
path AITER has (ASM, CK, CK-Tile, Triton, hipBLASLt; CK-Tile and preshuffle
variants included), this quantizes an activation with AITER's quant entry
point, multiplies it with a checkpoint-quantized weight through AITER's GEMM,
and compares the output three ways:

  vs fp32      x @ W^T of the unquantized operands: cosine >= the scheme's
               threshold and norm ratio within its band (a dropped scale keeps
               cosine at 1.0; only the norm shows it)
  vs matched   the same quantized operands dequantized the way the GEMM claims
               to read them, fp32 accumulation: the kernel alone, cosine >= 0.9999
  layout       the scale layout (and e8m0 rounding) the producer really wrote,
               recomputed from its input, against the layout the GEMM reads

With --model, the layers of a model run instead of shapes: every quantized
linear layer of a Hugging Face config.json (its quantization_config parsed as
ATOM parses it), of a checkpoint directory (weights from *.safetensors when
present, else random weights of the declared shapes) or of module:function,
each through the chain ATOM dispatches it to under the current ATOM_* switches
(ATOM_USE_TRITON_GEMM, ATOM_FP8_BLOCKSCALE_WEIGHT_PRESHUFFLE,
ATOM_USE_FP4_NON_SHUFFLE_TRITON_GEMM). Routed MoE experts run through ATOM's
routing kernel and AITER's fused_moe (FP8 per_1x128 / per_Token experts),
against the same quantized experts in fp32 (routed_scaling_factor included)
and the 16-bit experts. Layers sharing shape, scheme and chain share one
measurement; failing ones are retried on the chains other switch settings
select, and the report recommends the setting that passes, with
/v1/completions steps to confirm it on a live server.

quantguard also watches every call (--no-guards to skip) and its findings join
the case. ASM chains run even where quantguard's CK-free policy would block
them (gfx950, CK-free build): finding out whether they are broken is the point.
CK and CK-Tile chains are skipped in a CK-free build (their modules cannot be
built there) unless --include-ck.

exit codes: 0 every chain passed (or was skipped), 1 a chain failed or raised,
2 usage or environment error.

examples:
  quantguard validate quant --sim
  quantguard validate quant --sim --gfx gfx950 --ck-free --fault asm_gemm_garbage_gfx950
  quantguard validate quant --shape-set deepseek-v3 --schemes fp8_blockscale,mxfp4 -o quant.md --json quant.json
  quantguard validate quant --shapes 16,7168,2048 256,4096,7168 --backends triton,hipblaslt
  quantguard validate quant --sim --model tests/validate/data/fp8_block/config.json -o model.md
  quantguard validate quant --model /models/DeepSeek-V3 --max-layers 40 --layers 'model.layers.*'
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from quantguard.validate._environment import SIM_ARCHS, aiter_environment
from quantguard.validate._usage import UsageError, run_validation
from quantguard.validate.quant.chains import (
    BACKENDS,
    SCHEMES,
    Chain,
    QuantWeight,
    chains_for,
    missing_on,
    quantize_weight,
)
from quantguard.validate.quant.report import RunHeader, console, markdown, summarize_chains, to_json
from quantguard.validate.quant.run import CaseResult, Limits, Shape, guarded, run_case, seeded_operands
from quantguard.validate.quantize_kernels import UnsupportedPath

__all__ = ["DEFAULT_LIMITS", "SHAPE_SETS", "add_arguments", "run"]

#: Built-in (M, N, K) sets. DeepSeek-V3 from its public config (hidden 7168, q_lora 1536, 128 heads x 192,
#: o_proj 16384, MoE expert intermediate 2048); kv_a (576) is left out: not a multiple of 128.
_V3_NK = ((1536, 7168), (24576, 1536), (7168, 16384), (4096, 7168), (7168, 2048))
#: A stand-in for V4-class serving (MXFP4 experts at hidden 7168, wider experts), not V4's published config.
_V4_LIKE_NK = ((2048, 7168), (7168, 8192), (6144, 7168), (7168, 3072))
SHAPE_SETS: dict[str, tuple[Shape, ...]] = {
    "deepseek-v3": tuple((m, n, k) for m in (16, 256) for n, k in _V3_NK),
    "deepseek-v4-like": tuple((m, n, k) for m in (16, 256) for n, k in _V4_LIKE_NK),
    "small": ((1, 256, 512), (32, 512, 1024), (200, 384, 768)),
}

#: Per scheme: cosine vs fp32, norm-ratio band, kernel vs precision-matched cosine.
DEFAULT_LIMITS: dict[str, Limits] = {
    "fp8_per_token": Limits(0.999, 0.02, 0.9999),
    "fp8_blockscale": Limits(0.999, 0.02, 0.9999),
    "fp8_per_tensor": Limits(0.999, 0.02, 0.9999),
    "mxfp4": Limits(0.97, 0.08, 0.9999),
    "fp4": Limits(0.97, 0.08, 0.9999),
    "int8": Limits(0.999, 0.02, 0.9999),
    "int4": Limits(0.99, 0.03, 0.9999),
}
_FAMILIES = {"fp8": ("fp8_per_token", "fp8_blockscale", "fp8_per_tensor"), "fp4": ("mxfp4", "fp4")}


def _shape(text: str) -> Shape:
    try:
        m, n, k = (int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shape {text!r}: expected M,N,K (three positive integers)") from None
    if min(m, n, k) < 1:
        raise argparse.ArgumentTypeError(f"shape {text!r}: M, N and K must be >= 1")
    return m, n, k


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``quantguard validate quant``."""
    what = parser.add_argument_group("what to run")
    what.add_argument(
        "--schemes", default=None, metavar="LIST", help=f"comma-separated, from {','.join(SCHEMES)} (default: all)"
    )
    what.add_argument(
        "--backends",
        default=None,
        metavar="LIST",
        help=f"comma-separated, from {','.join(BACKENDS)} (default: all present)",
    )
    what.add_argument(
        "--shapes", nargs="+", type=_shape, default=None, metavar="M,N,K", help="shapes to run (default: --shape-set)"
    )
    what.add_argument(
        "--shape-set",
        choices=sorted(SHAPE_SETS),
        default=None,
        help="built-in shapes (default: deepseek-v3 on a real AITER, small on --sim)",
    )
    what.add_argument(
        "--model",
        default=None,
        metavar="CONFIG|DIR|MODULE:FUNC",
        help="run a model's quantized layers: a config.json, a checkpoint directory, or module:function",
    )
    what.add_argument(
        "--layers",
        default=None,
        metavar="GLOBS",
        help="with --model: comma-separated layer-name globs (a name without * or ? matches as a substring)",
    )
    what.add_argument(
        "--max-layers", type=int, default=None, metavar="N", help="with --model: the first N quantized layers only"
    )
    what.add_argument(
        "--tokens",
        default="64",
        metavar="M[,M]",
        help="with --model: activation rows per layer (default 64: >1 row and >=32 for swizzled MXFP4 scales)",
    )
    what.add_argument(
        "--include-ck",
        action="store_true",
        help="run CK and CK-Tile chains even in a CK-free build (they are expected to fail to build)",
    )
    judge = parser.add_argument_group("verdicts")
    judge.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="KEY=VALUE[,KEY=VALUE]",
        help="minimum cosine vs fp32 per scheme or family (fp8, fp4) (defaults: "
        + ", ".join(f"{k}={v.chain_cosine}" for k, v in DEFAULT_LIMITS.items())
        + ")",
    )
    judge.add_argument(
        "--norm-tolerance",
        type=float,
        default=None,
        metavar="X",
        help="norm ratio vs fp32 must be within 1 +- X (default: per scheme, 0.02 for 8-bit, 0.03 int4, 0.08 fp4)",
    )
    judge.add_argument(
        "--matched-threshold",
        type=float,
        default=0.9999,
        metavar="C",
        help="minimum cosine of the kernel vs its precision-matched reference (default 0.9999)",
    )
    judge.add_argument("--no-guards", action="store_true", help="do not run quantguard's guards during the chains")
    output = parser.add_argument_group("output")
    output.add_argument("-o", "--output", type=Path, default=None, metavar="REPORT.md", help="write a markdown report")
    output.add_argument("--json", type=Path, default=None, metavar="PATH", help="write every case as JSON")
    output.add_argument(
        "--events", default=None, metavar="PATH", help="keep quantguard's JSON-lines events (for quantguard report)"
    )
    run_on = parser.add_argument_group("where")
    run_on.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    run_on.add_argument("--seed", type=int, default=0, help="seed of the random operands (default 0)")
    run_on.add_argument("--sim", action="store_true", help="run on quantguard.sim instead of the installed AITER")
    run_on.add_argument("--gfx", choices=SIM_ARCHS, default=None, help="simulated arch (default gfx942)")
    run_on.add_argument("--ck-free", action="store_true", help="simulate a CK-free AITER build")
    run_on.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="NAME[@BACKEND]",
        help="inject a simulator fault; repeatable (see docs/sim.md)",
    )


def _names(text: str | None, accepted: Sequence[str], option: str) -> list[str]:
    if text is None:
        return list(accepted)
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in accepted]
    if unknown or not names:
        raise UsageError(f"{option} {text!r}: accepted values are {', '.join(accepted)}")
    return names


def _limits(args: argparse.Namespace) -> dict[str, Limits]:
    limits = dict(DEFAULT_LIMITS)
    for item in (part for value in args.threshold for part in value.split(",") if part.strip()):
        key, _, text = item.partition("=")
        key = key.strip()
        try:
            value = float(text)
        except ValueError:
            raise UsageError(f"--threshold {item!r}: expected KEY=VALUE with a number") from None
        if not 0.0 <= value <= 1.0:
            raise UsageError(f"--threshold {item!r}: a cosine threshold is between 0 and 1")
        schemes = _FAMILIES.get(key, (key,))
        if any(scheme not in SCHEMES for scheme in schemes):
            raise UsageError(
                f"--threshold {item!r}: keys are {', '.join(SCHEMES)} or a family ({', '.join(_FAMILIES)})"
            )
        for scheme in schemes:
            limits[scheme] = Limits(value, limits[scheme].norm_tolerance, limits[scheme].matched_cosine)
    if args.norm_tolerance is not None and args.norm_tolerance <= 0:
        raise UsageError(f"--norm-tolerance {args.norm_tolerance}: must be > 0")
    if not 0.0 < args.matched_threshold <= 1.0:
        raise UsageError(f"--matched-threshold {args.matched_threshold}: must be in (0, 1]")
    return {
        scheme: Limits(
            limit.chain_cosine,
            args.norm_tolerance if args.norm_tolerance is not None else limit.norm_tolerance,
            args.matched_threshold,
        )
        for scheme, limit in limits.items()
    }


def _skip(chain: Chain, shape: Shape, reason: str) -> CaseResult:
    return CaseResult(chain, shape, "SKIP", [reason])


def _run_all(
    chains: Sequence[Chain],
    shapes: Sequence[Shape],
    arch: str,
    ck_free: bool,
    args: argparse.Namespace,
    limits: dict[str, Limits],
    device: torch.device,
    events: list | None,
) -> list[CaseResult]:
    from quantguard.cli._console import progress

    results: list[CaseResult] = []
    with progress(len(shapes) * len(chains), "quant", getattr(args, "quiet", False)) as bar:
        for shape in shapes:
            _run_shape(chains, shape, arch, ck_free, args, limits, device, events, results, bar)
    order = {id(chain): index for index, chain in enumerate(chains)}
    return sorted(results, key=lambda case: order[id(case.chain)])


def _run_shape(
    chains: Sequence[Chain],
    shape: Shape,
    arch: str,
    ck_free: bool,
    args: argparse.Namespace,
    limits: dict[str, Limits],
    device: torch.device,
    events: list | None,
    results: list[CaseResult],
    bar: Any,
) -> None:
    """Every chain on one shape (the operands and the fp32 reference are shared), results appended."""
    x, w = seeded_operands(*shape, args.seed)
    x, w = x.to(device), w.to(device)
    reference = x.float() @ w.float().T
    weights: dict[str, QuantWeight | Exception] = {}
    for chain in bar.track(chains, lambda chain: f"{chain.name} {'x'.join(map(str, shape))}"):
        missing = missing_on(chain, arch)
        if missing:
            results.append(_skip(chain, shape, missing))
            continue
        if chain.ck and ck_free and not args.include_ck:
            results.append(_skip(chain, shape, "CK module: not buildable in a CK-free build (--include-ck runs it)"))
            continue
        reason = chain.unsupported_shape(*shape)
        if reason:
            results.append(_skip(chain, shape, reason))
            continue
        if chain.scheme not in weights:
            try:
                weights[chain.scheme] = quantize_weight(chain.scheme, w)
            except (UnsupportedPath, ImportError, RuntimeError) as exc:
                weights[chain.scheme] = exc
        weight = weights[chain.scheme]
        if isinstance(weight, Exception):
            results.append(_skip(chain, shape, f"cannot quantize the weight: {weight}"))
            continue
        result = run_case(chain, shape, weight, x, reference, limits[chain.scheme], events)
        if chain.asm and arch == "gfx950" and ck_free and not result.blocked and result.status != "SKIP":
            # quantguard reports a block once per kernel; every ASM case here is one all the same
            result.blocked.append(f"{chain.gemm.rsplit('.', 1)[-1]}: ASM kernel on gfx950 in a CK-free build")
        results.append(result)


def _write_reports(args: argparse.Namespace, report: Callable[[], str], data: Callable[[], dict[str, Any]]) -> None:
    """The markdown report to ``-o`` and the JSON to ``--json``, each built only when asked for."""
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(report())
        print(f"report: {args.output}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(data(), indent=1))
        print(f"json: {args.json}")


def _device(args: argparse.Namespace) -> torch.device:
    return torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))


def _tokens(text: str) -> tuple[int, ...]:
    try:
        tokens = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        tokens = ()
    if not tokens or min(tokens) < 1:
        raise UsageError(f"--tokens {text!r}: expected comma-separated positive integers (activation rows M)")
    return tokens


def _tracker(args: argparse.Namespace) -> Any:
    """A progress bar over the measurements, sized once run_model knows how many there are."""
    from quantguard.cli._console import progress

    def track(items: Sequence[Any], describe: Any) -> Any:
        with progress(len(items), "quant", getattr(args, "quiet", False)) as bar:
            yield from bar.track(items, describe)

    return track


def _validate_model(args: argparse.Namespace) -> int:
    """``--model``: each quantized layer through the chain ATOM dispatches it to (see the module docstring)."""
    import time

    from quantguard.validate.quant import model_report
    from quantguard.validate.quant.model import atom_env_from, load_model
    from quantguard.validate.quant.model_run import run_model, select_layers

    for option, value in (("--schemes", args.schemes), ("--backends", args.backends), ("--shapes", args.shapes)):
        if value is not None:
            raise UsageError(
                f"{option} selects chains or shapes in the shape mode; with --model each layer runs "
                "ATOM's chain (ATOM_USE_TRITON_GEMM and the other ATOM_* switches pick another)"
            )
    if args.shape_set is not None:
        raise UsageError("--shape-set is the shape mode; with --model the layers give the shapes")
    if args.max_layers is not None and args.max_layers < 1:
        raise UsageError(f"--max-layers {args.max_layers}: must be >= 1")
    tokens = _tokens(args.tokens)
    limits = _limits(args)
    spec = load_model(args.model)
    layers = select_layers(spec.layers, args.layers, args.max_layers)
    if not any(layer.scheme and not layer.not_run for layer in layers):
        raise UsageError(f"--layers {args.layers!r}: matches no quantized layer of {args.model}")
    device = _device(args)
    started = time.perf_counter()
    with (
        aiter_environment(args.sim, args.gfx, args.ck_free, args.fault, device) as environment,
        guarded(environment.arch, environment.ck_free, not args.no_guards, args.events or os.devnull) as events,
    ):
        env = atom_env_from(os.environ, environment.ck_free)
        results = run_model(
            spec, layers, env, environment.arch, tokens, limits, args.seed, device, events, _tracker(args)
        )
    header = model_report.ModelHeader(
        spec,
        environment.description,
        environment.arch,
        env,
        tokens,
        not args.no_guards,
        args.seed,
        time.perf_counter() - started,
    )
    sys.stdout.write(model_report.console(header, results, getattr(args, "wide", False)))
    _write_reports(args, lambda: model_report.markdown(header, results), lambda: model_report.to_json(header, results))
    return 1 if any(result.status in ("FAIL", "ERROR") for result in results) else 0


def _validate(args: argparse.Namespace) -> int:
    if getattr(args, "model", None) is not None:
        return _validate_model(args)
    if args.layers is not None or args.max_layers is not None:
        raise UsageError("--layers and --max-layers select layers of --model; add --model")
    schemes = _names(args.schemes, SCHEMES, "--schemes")
    backends = _names(args.backends, BACKENDS, "--backends")
    limits = _limits(args)
    chains = chains_for(schemes, backends)
    if not chains:
        raise UsageError(f"no chain has scheme in {schemes} and backend in {backends}")
    device = _device(args)
    if args.shapes:
        shapes, shape_text = tuple(args.shapes), "command line"
    else:
        name = args.shape_set or ("small" if args.sim else "deepseek-v3")
        shapes, shape_text = SHAPE_SETS[name], name
    shape_text += " — " + ", ".join(f"{m}x{n}x{k}" for m, n, k in shapes)
    with (
        aiter_environment(args.sim, args.gfx, args.ck_free, args.fault, device) as environment,
        guarded(environment.arch, environment.ck_free, not args.no_guards, args.events or os.devnull) as events,
    ):
        results = _run_all(chains, shapes, environment.arch, environment.ck_free, args, limits, device, events)
    header = RunHeader(
        environment.description,
        environment.arch,
        environment.ck_free,
        str(device),
        shape_text,
        not args.no_guards,
        {scheme: limits[scheme] for scheme in schemes},
        args.seed,
    )
    summaries = summarize_chains(results)
    sys.stdout.write(console(header, summaries, getattr(args, "wide", False)))
    _write_reports(args, lambda: markdown(header, results, summaries), lambda: to_json(header, results))
    return 1 if any(summary.status in ("FAIL", "ERROR") for summary in summaries) else 0


def run(args: argparse.Namespace) -> int:
    """Run the validation; 0 every chain passed or was skipped, 1 one failed, 2 usage or environment error."""
    return run_validation("quant", _validate, args)
