"""Run a model's quantized linear layers through the chains ATOM dispatches them to.

Layers sharing (out, in) shape, scheme and chain share one measurement when
their weights are random (the numbers depend on nothing else); layers whose
weights come from a checkpoint are measured one by one. Routed experts run
through AITER's ``fused_moe`` (:mod:`quantguard.validate.quant.moe`), one
measurement per distinct experts shape, routing and scheme (random experts). When a measurement
fails, the chains ATOM would pick under other settings of its switches are run
on the same operands, so the report can name a setting that works.
"""

from __future__ import annotations

import fnmatch
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from quantguard.contracts.aiter_paths import SCHEMES as SCHEME_FORMS
from quantguard.numerics.layouts import pad_to
from quantguard.validate.quant.chains import Chain, missing_on, quantize_weight
from quantguard.validate.quant.model import ATOM_ENV, AtomEnv, Layer, ModelSpec, atom_chain
from quantguard.validate.quant.moe import MoePath, moe_path, run_moe
from quantguard.validate.quant.run import CaseResult, Limits, run_case, seeded_operands, severity, worst_status
from quantguard.validate.quantize_kernels import UnsupportedPath

__all__ = ["Alternative", "LayerResult", "Measurement", "expected_x_scale", "run_model", "select_layers"]


@dataclass
class Alternative:
    """Another chain on the same operands, and the ATOM switches that make ATOM pick it."""

    chain: Chain
    settings: dict[str, bool]
    cases: list[CaseResult]

    @property
    def status(self) -> str:
        return worst_status(self.cases)


@dataclass
class Measurement:
    """One (shape, scheme, chain[, weights]) measurement, shared by the layers listed in it.

    A model's routed experts are measured on a :class:`MoePath` (fused_moe) instead of a chain.
    """

    chain: Chain | MoePath
    n: int
    k: int
    cases: list[CaseResult]
    alternatives: list[Alternative] = field(default_factory=list)

    @property
    def status(self) -> str:
        return worst_status(self.cases)

    def worst_case(self) -> CaseResult:
        return min(self.cases, key=severity)


@dataclass
class LayerResult:
    """One layer: its measurement, or why it was not run (``status`` SKIP)."""

    layer: Layer
    measurement: Measurement | None
    note: str = ""

    @property
    def status(self) -> str:
        return self.measurement.status if self.measurement is not None else "SKIP"


def select_layers(layers: Sequence[Layer], patterns: str | None, limit: int | None) -> list[Layer]:
    """``--layers`` (comma-separated globs; without ``*``/``?`` a substring) and ``--max-layers`` (quantized ones)."""
    chosen = list(layers)
    if patterns:
        wanted = [item.strip() for item in patterns.split(",") if item.strip()]
        chosen = [
            layer
            for layer in chosen
            if any(fnmatch.fnmatch(layer.name, p) if any(c in p for c in "*?[") else p in layer.name for p in wanted)
        ]
    if limit is not None:
        quantized = [layer for layer in chosen if layer.scheme and not layer.not_run][:limit]  # experts count
        keep = {id(layer) for layer in quantized}
        chosen = [layer for layer in chosen if id(layer) in keep]
    return chosen


def expected_x_scale(chain: Chain, m: int, k: int) -> dict[str, Any]:
    """The x_scale the chain's GEMM reads: shape, dtype, byte order, whether MX-swizzled."""
    form = SCHEME_FORMS[chain.scheme]
    layout = chain.layout_for(m)
    dtype = {"fp32": "float32", "e8m0": "uint8 (e8m0)", "none": "—"}[form.x_scale_dtype]
    group = form.activation_group
    if form.x_scale_dtype == "none":
        return {"shape": "—", "dtype": "—", "order": "no activation scale", "shuffled": False}
    if group == 0:
        return {"shape": "(1,)", "dtype": dtype, "order": "scalar", "shuffled": False}
    if group is None:
        return {"shape": f"({m}, 1)", "dtype": dtype, "order": "per-token column", "shuffled": False}
    groups = -(-k // group)
    if layout == "mx_swizzle":
        shape = f"({pad_to(m, 256)}, {pad_to(groups, 8)})"
        return {"shape": shape, "dtype": dtype, "order": "row-major, MX-swizzled", "shuffled": True}
    order = "column-major bytes ((G, M))" if layout == "transposed" else "row-major"
    return {"shape": f"({m}, {groups})", "dtype": dtype, "order": order, "shuffled": False}


def _feasible(chain: Chain, arch: str, m: int, n: int, k: int) -> str | None:
    return missing_on(chain, arch) or chain.unsupported_shape(m, padded_n(chain, n), k)


def padded_n(chain: Chain, n: int) -> int:
    """N rounded up to the chain's tile multiple: a partial last tile (DeepSeek's kv_a_proj_with_mqa,
    N=576 with 128x128 blocks) is measured with zero rows added, which a kernel's tile adds too."""
    return pad_to(n, chain.spec.n_multiple)


def _alternatives(scheme: str, env: AtomEnv, chosen: Chain) -> list[tuple[Chain, dict[str, bool]]]:
    """Chains ATOM picks for ``scheme`` under other switch settings, fewest changes first."""
    found: dict[str, tuple[Chain, dict[str, bool]]] = {}
    keys = list(ATOM_ENV)
    for values in sorted(itertools.product((False, True), repeat=len(keys)), key=lambda v: _changes(env, keys, v)):
        changes = {key: value for key, value in zip(keys, values, strict=True) if env[key] != value}
        chain = atom_chain(scheme, env.with_values(**changes))
        if chain.name != chosen.name and chain.name not in found:
            found[chain.name] = (chain, changes)
    return list(found.values())


def _changes(env: AtomEnv, keys: list[str], values: tuple[bool, ...]) -> int:
    return sum(env[key] != value for key, value in zip(keys, values, strict=True))


@dataclass(frozen=True)
class _Run:
    """What every measurement of one ``run_model`` call shares."""

    env: AtomEnv
    arch: str
    tokens: Sequence[int]
    limits: dict[str, Limits]
    seed: int
    device: torch.device
    events: list | None


def run_model(
    spec: ModelSpec,
    layers: Sequence[Layer],
    env: AtomEnv,
    arch: str,
    tokens: Sequence[int],
    limits: dict[str, Limits],
    seed: int,
    device: torch.device,
    events: list | None,
    track: Callable[[Sequence[Any], Callable[[Any], str]], Any] = lambda items, label: items,
) -> list[LayerResult]:
    """Every layer's result, in model order; identical random-weight layers share one measurement."""
    run = _Run(env, arch, tokens, limits, seed, device, events)
    measurements: dict[tuple, Measurement] = {}
    plan: list[tuple[Layer, tuple | None, str]] = []
    for layer in layers:
        scheme = layer.scheme
        if layer.moe is not None and scheme is not None and not layer.not_run:
            path, note = moe_path(scheme, layer.moe, env.ck_free)
            plan.append((layer, None, note) if path is None else (layer, ("moe", path), ""))
            continue
        if layer.not_run or scheme is None:
            note = layer.not_run or f"not quantized ({layer.quant.label}): no quant→GEMM chain"
            plan.append((layer, None, note))
            continue
        chain = atom_chain(scheme, env)
        reason = next((r for m in tokens if (r := _feasible(chain, arch, m, layer.n, layer.k))), None)
        if reason:
            plan.append((layer, None, f"{chain.name}: {reason}"))
            continue
        own = layer.name in spec.weights
        plan.append((layer, (layer.n, layer.k, chain) + ((layer.name,) if own else ()), ""))
    keys = list(dict.fromkeys(key for _, key, _ in plan if key is not None))
    owners = {key: layer for layer, key, _ in reversed(plan) if key is not None}

    def label(key: tuple) -> str:
        return f"{owners[key].name} " + (key[1].moe.describe() if key[0] == "moe" else f"{key[0]}x{key[1]}")

    for key in track(keys, label):
        if key[0] == "moe":
            path = key[1]
            cases = run_moe(path, tokens, limits[path.scheme], seed, device, events)
            measured = cases[0].chain if cases else path  # fewer experts when the model's do not fit in memory
            measurements[key] = Measurement(measured, path.moe.hidden, path.moe.inter, cases)
        else:
            measurements[key] = _measure(spec, owners[key], key[2], run)
    return [LayerResult(layer, measurements.get(key) if key else None, note) for layer, key, note in plan]


def _measure(spec: ModelSpec, layer: Layer, chain: Chain, run: _Run) -> Measurement:
    """``layer`` on ``chain`` at every M; when it fails, the chains other ATOM switch settings pick, on the same operands."""
    n, k, scheme = layer.n, layer.k, layer.scheme
    assert scheme is not None  # the chain ATOM picks for it (an fp4 layer runs an mxfp4 chain)
    limits = run.limits[scheme]
    weight = spec.weights[layer.name]() if layer.name in spec.weights else None
    measurement = Measurement(chain, n, k, [])
    runs: list[tuple[int, torch.Tensor, torch.Tensor, Any]] = []
    rows = padded_n(chain, n)
    for m in run.tokens:
        x, w = seeded_operands(m, n, k, run.seed, weight)
        if rows != n:  # zero rows: their outputs are zero in the kernel and both references alike
            w = torch.cat([w, w.new_zeros(rows - n, k)])
        x, w = x.to(run.device), w.to(run.device)
        reference = x.float() @ w.float().T
        started = time.perf_counter()
        try:
            quantized = quantize_weight(scheme, w)
        except (UnsupportedPath, ImportError, RuntimeError) as exc:
            case = CaseResult(chain, (m, rows, k), "SKIP", [f"cannot quantize the weight: {exc}"])
        else:
            case = run_case(chain, (m, rows, k), quantized, x, reference, limits, run.events)
            runs.append((m, x, reference, quantized))
        case.seconds = case.seconds or time.perf_counter() - started
        measurement.cases.append(case)
    if measurement.status in ("FAIL", "ERROR"):
        for other, settings in _alternatives(scheme, run.env, chain):
            if padded_n(other, n) != rows or any(_feasible(other, run.arch, m, n, k) for m, *_ in runs):
                continue
            cases = [
                run_case(other, (m, rows, k), quantized, x, reference, limits, run.events)
                for m, x, reference, quantized in runs
            ]
            measurement.alternatives.append(Alternative(other, settings, cases))
    return measurement
