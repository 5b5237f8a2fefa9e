"""The ``validate accuracy`` report: markdown for people, CSV and JSON heatmap data beside it.

``report.md`` gets ``report.layers.csv`` (one row per configuration and
layer: the heatmap) and ``report.json`` (the whole run, NaN written as null).
Sections, in order: run settings, verdict, summary (the configuration x
metric table: logits cosine, top-1, KL, perplexity delta, BLEU, layer
cosines), per-layer cosine, flagged layers, generation (decoded text when
the model has a tokenizer, token ids otherwise), configurations (which
AITER entry points or torch code ran, which layers stayed in reference
precision). A configuration that errored shows n/a for every metric.
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
_SAMPLE_CHARS = 80


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


def _delta(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:+.3g}"


def _backend(result: ConfigResult) -> str:
    return result.config.backend + (" CK-free" if result.config.ck_free else "")


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
        (
            "reference perplexity",
            f"{_number(reference.perplexity, 3)} (of its own greedy generations; the table shows each configuration's Δ on the same tokens)",
        ),
        ("BLEU", header.bleu),
    ]
    rows += [(f"not run: {name}", reason) for name, reason in header.not_run.items()]
    return markdown_table(("setting", "value"), rows)


def _bleu(result: ConfigResult) -> str:
    return "n/a" if result.bleu is None or result.error is not None else f"{result.bleu.score:.2f}"


def _summary_rows(results: Sequence[ConfigResult]) -> list[list[str]]:
    """The configuration x metric table; the first nine columns are the terminal's."""
    return [
        [
            result.name,
            _backend(result),
            _number(result.logits_cosine),
            _percent(result.top1),
            _kl(result.kl),
            _delta(result.perplexity_delta),
            _bleu(result),
            _number(result.overall_cosine),
            _verdict(result),
            _worst(result),
            str(result.threshold),
            _percent(result.token_match),
            f"{len(result.garbled)}/{len(result.token_matches)}",
        ]
        for result in results
    ]


_SUMMARY_HEADER = (
    "configuration",
    "backend",
    "logits cosine",
    "top-1",
    "KL(ref‖quant)",
    "perplexity Δ",
    "BLEU",
    "layer cosine",
    "verdict",
    "worst layer",
    "threshold",
    "token match",
    "garbled",
)

#: The terminal's headers (the first columns of _SUMMARY_HEADER), explained by _SUMMARY_LEGEND.
_SHORT_HEADER = ("configuration", "backend", "logits", "top-1", "KL", "ppl Δ", "BLEU", "layers", "verdict")
_SUMMARY_LEGEND = (
    "logits: cosine of the logits to the reference's; KL: KL(ref‖quant); ppl Δ: perplexity of the reference's "
    "generations minus the reference's own; BLEU: of greedy generations vs the reference's; layers: overall layer cosine"
)


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
    if reference.texts:
        lines[2] = (
            "Greedy decoding of every prompt, compared position by position with the reference's tokens; "
            f"first prompt decoded to text, first {_SAMPLE_CHARS} characters shown."
        )
    else:
        lines[2] += " No tokenizer: generations are token ids."

    def sample(tokens: Sequence[int], texts: Sequence[str]) -> str:
        return repr(texts[0][:_SAMPLE_CHARS]) if texts else str(list(tokens[:_SAMPLE_TOKENS]))

    if reference.generations:
        lines.append(f"- reference: `{sample(reference.generations[0], reference.texts)}`")
    for result in results:
        if not result.generations:
            continue
        matches = result.token_matches
        garbled = ", ".join(str(index) for index in result.garbled) or "none"
        lines.append(
            f"- {result.name}: `{sample(result.generations[0], result.texts)}`; token match "
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
            f"- backend: {_backend(result)} (preshuffle requested: {preshuffle}); stands for: "
            f"{result.config.setting or 'n/a'}",
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
                _SUMMARY_HEADER if wide else _SHORT_HEADER,
                [row if wide else row[: len(_SHORT_HEADER)] for row in _summary_rows(results)],
                wide,
                {0: 15},
                gap=1,
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
            "reference_perplexity": _finite(reference.perplexity),
            "reference_generations": [list(tokens) for tokens in reference.generations],
            "reference_texts": list(reference.texts),
        },
        "verdict": "pass" if results and all(result.passed for result in results) else "fail",
        "configurations": [
            {
                "name": result.name,
                "family": result.family,
                "scheme": result.config.scheme,
                "backend": result.config.backend,
                "ck_free": result.config.ck_free,
                "setting": result.config.setting,
                "preshuffle": result.config.preshuffle,
                "kernels": result.kernels,
                "threshold": result.threshold,
                "passed": result.passed,
                "failures": result.failures,
                "error": result.error,
                "overall_cosine": _finite(result.overall_cosine),
                "logits_cosine": _finite(result.logits_cosine),
                "kl": _finite(result.kl),
                "top1": _finite(result.top1),
                "perplexity": _finite(result.perplexity),
                "perplexity_delta": _finite(result.perplexity_delta),
                "token_match": _finite(result.token_match),
                "token_matches": result.token_matches,
                "garbled": result.garbled,
                "generations": result.generations,
                "texts": result.texts,
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
