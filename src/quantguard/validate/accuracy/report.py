"""The ``validate accuracy`` report: markdown for people, CSV and JSON heatmap data beside it.

``report.md`` gets ``report.layers.csv`` (one row per configuration and
layer: the heatmap) and ``report.json`` (the whole run, NaN written as null).
Sections, in order: run settings, verdict, summary (configuration vs overall
cosine), per-layer cosine, flagged layers, generation, configurations (which
AITER entry points ran, which layers stayed in reference precision).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from quantguard._tables import markdown_table
from quantguard.validate.accuracy.evaluation import GARBLED_BELOW, ConfigResult, Reference

__all__ = ["RunHeader", "markdown", "report_paths", "summary", "to_json", "write_reports"]

_SAMPLE_TOKENS = 16


@dataclass(frozen=True)
class RunHeader:
    """The settings a report states before any number."""

    model_name: str
    model: str
    arch: str
    environment: str
    backend: str
    preshuffle: str
    device: str
    dtype: str
    num_prompts: int
    max_new_tokens: int
    thresholds: Mapping[str, str]
    norm_tolerance: float
    bleu: str
    not_run: Mapping[str, str] = field(default_factory=dict)


def _number(value: float, digits: int = 6) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _percent(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.1%}"


def _kl(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2e}"


def _verdict(result: ConfigResult) -> str:
    return "PASS" if result.passed else "FAIL"


def _worst(result: ConfigResult) -> str:
    if not result.layers:
        return "n/a"
    layer = min(result.layers, key=lambda item: item.cosine if not math.isnan(item.cosine) else -math.inf)
    return f"{_number(layer.cosine)} ({layer.name})"


def _settings(header: RunHeader, reference: Reference) -> list[str]:
    thresholds = ", ".join(f"{key} >= {value}" for key, value in header.thresholds.items())
    rows = [
        ("model", header.model),
        ("arch", header.arch),
        ("AITER", header.environment),
        ("backend", f"{header.backend} (preshuffle: {header.preshuffle})"),
        ("reference", f"{header.dtype} on {header.device}"),
        ("calibration", f"{reference.sequences} sequences, {reference.positions} positions"),
        ("generation", f"{header.num_prompts} prompts, greedy, {header.max_new_tokens} new tokens each"),
        ("thresholds", f"per-layer cosine {thresholds}; norm ratio within 1 ± {header.norm_tolerance}"),
        ("garbled", f"token match < {GARBLED_BELOW:.0%}"),
        ("BLEU", header.bleu),
    ]
    rows += [(f"not run: {name}", reason) for name, reason in header.not_run.items()]
    return markdown_table(("setting", "value"), rows)


def _summary_rows(results: Sequence[ConfigResult]) -> list[list[str]]:
    return [
        [
            result.name,
            _number(result.overall_cosine),
            _worst(result),
            str(result.threshold),
            _kl(result.kl),
            _percent(result.top1),
            _percent(result.token_match),
            "n/a" if result.bleu is None else f"{result.bleu.score:.2f}",
            f"{len(result.garbled)}/{len(result.token_matches)}",
            _verdict(result),
        ]
        for result in results
    ]


_SUMMARY_HEADER = (
    "configuration",
    "overall cosine",
    "worst layer",
    "threshold",
    "KL(ref‖quant)",
    "top-1",
    "token match",
    "BLEU",
    "garbled",
    "verdict",
)

#: The terminal's headers (``wide``: _SUMMARY_HEADER), explained by _SUMMARY_LEGEND.
_SHORT_HEADER = (
    "configuration",
    "cosine",
    "worst layer",
    "limit",
    "KL",
    "top-1",
    "tokens",
    "BLEU",
    "garbled",
    "verdict",
)
_SUMMARY_LEGEND = "cosine: overall; limit: cosine threshold; KL: KL(ref‖quant); tokens: token match"


def _overall(results: Sequence[ConfigResult]) -> str:
    failed = [result.name for result in results if not result.passed]
    if not results:
        return "**Verdict: FAIL** (no configuration ran)"
    if failed:
        return f"**Verdict: FAIL** ({len(failed)} of {len(results)} configurations failed: {', '.join(failed)})"
    return f"**Verdict: PASS** (all {len(results)} configurations passed)"


def _heatmap(results: Sequence[ConfigResult], layers: Sequence[str], files: str) -> list[str]:
    lines = [
        "## Per-layer cosine",
        "",
        f"Cosine of each transformer layer's output to the reference's, over every position ({files}); "
        "flagged cells are bold and marked ✗, norm ratio in brackets.",
        "",
    ]
    cells = {(result.name, layer.name): layer for result in results for layer in result.layers}
    rows = []
    for name in layers:
        row = [name]
        for result in results:
            layer = cells.get((result.name, name))
            if layer is None:
                row.append("n/a")
                continue
            value = f"{_number(layer.cosine)} ({_number(layer.norm_ratio, 4)})"
            row.append(f"**{value}** ✗" if layer.flagged else value)
        rows.append(row)
    return lines + markdown_table(["layer", *(result.name for result in results)], rows)


def _flagged(results: Sequence[ConfigResult]) -> list[str]:
    lines = ["## Flagged layers", ""]
    for result in results:
        if result.error is not None:
            lines.append(f"- {result.name}: not measured ({result.error})")
        for layer in result.flagged:
            lines.append(f"- {result.name}: `{layer.name}`: {'; '.join(layer.problems)}")
    if len(lines) == 2:
        lines.append("None.")
    return lines


def _generation(results: Sequence[ConfigResult], reference: Reference) -> list[str]:
    lines = [
        "## Generation",
        "",
        f"Greedy decoding of every prompt, compared position by position with the reference's tokens; "
        f"first prompt, first {_SAMPLE_TOKENS} tokens shown.",
        "",
    ]
    sample = list(reference.generations[0][:_SAMPLE_TOKENS]) if reference.generations else []
    lines.append(f"- reference: `{sample}`")
    for result in results:
        if not result.generations:
            continue
        matches = result.token_matches
        garbled = ", ".join(str(index) for index in result.garbled) or "none"
        lines.append(
            f"- {result.name}: `{result.generations[0][:_SAMPLE_TOKENS]}`; token match "
            f"min {_percent(min(matches))}, mean {_percent(result.token_match)}; garbled prompts: {garbled}"
        )
    return lines


def _configurations(results: Sequence[ConfigResult]) -> list[str]:
    lines = ["## Configurations", ""]
    for result in results:
        preshuffle = {None: "default", True: "on", False: "off"}[result.config.preshuffle]
        lines += [
            f"### {result.name}: {_verdict(result)}",
            "",
            f"- backend: {result.config.backend} (preshuffle requested: {preshuffle})",
            f"- kernels: {result.kernels or 'n/a'}",
            f"- quantized: {_names(result.quantized)}",
        ]
        if result.kept:
            kept = "; ".join(f"`{name}`: {why}" for name, why in result.kept.items())
            lines.append(f"- kept in reference precision: {kept}")
        lines += [f"- failure: {failure}" for failure in result.failures]
        lines.append("")
    return lines


def _names(names: Sequence[str], shown: int = 6) -> str:
    listed = ", ".join(f"`{name}`" for name in names[:shown])
    more = f", ... ({len(names) - shown} more)" if len(names) > shown else ""
    return f"{len(names)}: {listed}{more}" if names else "nothing"


def report_paths(markdown_path: Path) -> tuple[Path, Path]:
    """Where the heatmap CSV and the JSON go, beside ``markdown_path``."""
    stem = markdown_path.with_suffix("")
    return stem.with_name(stem.name + ".layers.csv"), stem.with_name(stem.name + ".json")


def markdown(
    header: RunHeader,
    reference: Reference,
    results: Sequence[ConfigResult],
    layers: Sequence[str],
    data_files: str = "CSV/JSON with -o",
) -> str:
    """The full report."""
    lines = [f"# quantguard validate accuracy: {header.model_name}", ""]
    lines += _settings(header, reference) + ["", _overall(results), "", "## Summary", ""]
    lines += markdown_table(_SUMMARY_HEADER, _summary_rows(results)) + [""]
    lines += _heatmap(results, layers, data_files) + [""]
    lines += _flagged(results) + [""]
    lines += _generation(results, reference) + [""]
    lines += _configurations(results)
    return "\n".join(lines).rstrip() + "\n"


def summary(results: Sequence[ConfigResult], wide: bool = False) -> str:
    """The verdict and the summary table (what the terminal shows when the report goes to a file).

    A terminal table, not markdown: cells wrap to 100 columns (``wide``: one line per configuration).
    """
    from quantguard.cli._console import indented, render, table

    parts = [
        render(_overall(results).replace("**", ""), wide),
        "\n",
        render(
            table(
                _SUMMARY_HEADER if wide else _SHORT_HEADER, _summary_rows(results), wide, {0: 14, 2: 16, 4: 8}, gap=1
            ),
            wide,
        ),
    ]
    if not wide:
        parts.append(render(_SUMMARY_LEGEND, wide))
    failures = [f"{result.name}: {failure}" for result in results for failure in result.failures]
    if failures:
        parts.append(indented(failures, wide))
    return "".join(parts)


def _finite(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) or math.isinf(value) else value


def to_json(header: RunHeader, reference: Reference, results: Sequence[ConfigResult], layers: Sequence[str]) -> dict:
    """The whole run as JSON-ready data, with the heatmap as a layers x configurations matrix."""
    by_name = {result.name: {layer.name: layer for layer in result.layers} for result in results}

    def matrix(attribute: str) -> list[list[float | None]]:
        return [
            [
                _finite(getattr(by_name[result.name][name], attribute)) if name in by_name[result.name] else None
                for result in results
            ]
            for name in layers
        ]

    return {
        "run": {
            **asdict(header),
            "calibration_sequences": reference.sequences,
            "calibration_positions": reference.positions,
        },
        "verdict": "pass" if results and all(result.passed for result in results) else "fail",
        "configurations": [
            {
                "name": result.name,
                "family": result.family,
                "backend": result.config.backend,
                "preshuffle": result.config.preshuffle,
                "kernels": result.kernels,
                "threshold": result.threshold,
                "passed": result.passed,
                "failures": result.failures,
                "error": result.error,
                "overall_cosine": _finite(result.overall_cosine),
                "kl": _finite(result.kl),
                "top1": _finite(result.top1),
                "token_match": _finite(result.token_match),
                "token_matches": result.token_matches,
                "garbled": result.garbled,
                "bleu": None if result.bleu is None else asdict(result.bleu),
                "quantized_layers": list(result.quantized),
                "kept_layers": dict(result.kept),
                "layers": [
                    {
                        "name": layer.name,
                        "cosine": _finite(layer.cosine),
                        "norm_ratio": _finite(layer.norm_ratio),
                        "nonfinite": layer.nonfinite,
                        "flagged": layer.flagged,
                        "problems": list(layer.problems),
                    }
                    for layer in result.layers
                ],
            }
            for result in results
        ],
        "heatmap": {
            "layers": list(layers),
            "configurations": [result.name for result in results],
            "cosine": matrix("cosine"),
            "norm_ratio": matrix("norm_ratio"),
        },
    }


def write_reports(
    path: Path, header: RunHeader, reference: Reference, results: Sequence[ConfigResult], layers: Sequence[str]
) -> tuple[Path, Path, Path]:
    """Write the markdown report and its CSV/JSON heatmap data; returns the three paths."""
    csv_path, json_path = report_paths(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown(header, reference, results, layers, f"{csv_path.name}, {json_path.name}"))
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["configuration", "layer", "cosine", "norm_ratio", "nonfinite", "threshold", "flagged", "problems"]
        )
        for result in results:
            for layer in result.layers:
                writer.writerow(
                    [
                        result.name,
                        layer.name,
                        repr(layer.cosine),
                        repr(layer.norm_ratio),
                        layer.nonfinite,
                        result.threshold,
                        int(layer.flagged),
                        "; ".join(layer.problems),
                    ]
                )
    json_path.write_text(json.dumps(to_json(header, reference, results, layers), indent=2) + "\n")
    return path, csv_path, json_path
