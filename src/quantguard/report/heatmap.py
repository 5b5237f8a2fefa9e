"""The layers x configurations view of the report: min shadow cosine per cell, as CSV and PNG.

The CSV is always written (it is plain data for a spreadsheet or a
dashboard); the PNG needs matplotlib, an optional dependency
(``quantguard[plot]``), imported only when a PNG is asked for.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from quantguard.report._ordering import natural_key
from quantguard.report.records import Report

__all__ = ["heatmap_matrix", "write_heatmap_csv", "write_heatmap_png"]

# The colour scale starts at least this low, so that a run where every layer is near 1.0 stays green.
_COLOR_FLOOR = 0.999


def heatmap_matrix(report: Report) -> tuple[list[str], list[str], list[list[float | None]]]:
    """``(layers, configurations, rows)``: ``rows[i][j]`` is the min cosine of layer i in configuration j.

    ``None`` where the layer had no finite shadow result in that configuration.
    Layers are in natural order, configurations in the order first seen.
    """
    configurations = [
        name for name in report.configurations if any(configuration == name for configuration, _ in report.layers)
    ]
    layers = sorted({layer for _, layer in report.layers}, key=natural_key)
    rows = []
    for layer in layers:
        row = []
        for configuration in configurations:
            stats = report.layers.get((configuration, layer))
            row.append(stats.cosines.min if stats is not None else None)
        rows.append(row)
    return layers, configurations, rows


def write_heatmap_csv(report: Report, path: str | Path) -> None:
    """``layer,<configuration>...`` rows of min cosines (empty where there is none)."""
    layers, configurations, rows = heatmap_matrix(report)
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["layer", *configurations])
        for layer, row in zip(layers, rows):
            writer.writerow([layer, *("" if value is None else f"{value:.9g}" for value in row)])


def write_heatmap_png(report: Report, path: str | Path) -> bool:
    """Draw the heatmap; ``False`` (nothing written) when no layer has a shadow result.

    Raises :class:`ImportError`, with the install hint, when matplotlib is missing.
    """
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError("the heatmap needs matplotlib (pip install 'quantguard[plot]')") from exc
    matplotlib.use("Agg")  # no display on CI machines
    from matplotlib import pyplot

    layers, configurations, rows = heatmap_matrix(report)
    if not layers:
        return False
    values = [[math.nan if value is None else value for value in row] for row in rows]
    finite = [value for row in values for value in row if math.isfinite(value)]
    floor = min([*finite, _COLOR_FLOOR])
    figure, axes = pyplot.subplots(figsize=(3 + 1.4 * len(configurations), 1.5 + 0.28 * len(layers)))
    image = axes.imshow(values, aspect="auto", cmap="RdYlGn", vmin=floor, vmax=1.0, interpolation="nearest")
    axes.set_xticks(range(len(configurations)))
    axes.set_xticklabels(configurations, rotation=30, ha="right")
    axes.set_yticks(range(len(layers)))
    axes.set_yticklabels(layers)
    for row, layer in enumerate(layers):
        for column, configuration in enumerate(configurations):
            stats = report.layers.get((configuration, layer))
            if stats is not None and stats.flagged:  # below threshold may still look green on a wide scale
                axes.text(column, row, "FAIL", ha="center", va="center", fontsize=8, fontweight="bold")
    axes.set_title("quantguard: min shadow cosine per layer (FAIL: a comparison failed)")
    figure.colorbar(image, ax=axes, label="min cosine")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    pyplot.close(figure)
    return True
