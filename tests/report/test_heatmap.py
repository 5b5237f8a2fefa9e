"""Heatmap data: CSV always; PNG through matplotlib when installed, a clear ImportError otherwise."""

from __future__ import annotations

import csv
import math
import sys
import types

import pytest
from report_events import enabled, shadow

from quantguard.report import build_report, heatmap_matrix, write_heatmap_csv, write_heatmap_png


@pytest.fixture
def two_configurations(write_log):
    return build_report(
        [
            write_log(
                "a.jsonl",
                [
                    enabled("ck"),
                    shadow(0.9999, layer="layers.10.mlp"),
                    shadow(0.98, layer="layers.2.mlp"),
                    shadow(0.9997, layer="layers.2.mlp"),
                ],
            ),
            write_log("b.jsonl", [enabled("triton"), shadow(0.5, layer="layers.2.mlp")]),
        ]
    )


def test_matrix_is_layers_by_configurations_of_min_cosine(two_configurations):
    layers, configurations, rows = heatmap_matrix(two_configurations)
    assert layers == ["layers.2.mlp", "layers.10.mlp"]  # natural order
    assert configurations == ["ck", "triton"]
    assert rows == [[0.98, 0.5], [0.9999, None]]


def test_csv(two_configurations, tmp_path):
    path = tmp_path / "report.heatmap.csv"
    write_heatmap_csv(two_configurations, path)
    with open(path, newline="") as stream:
        assert list(csv.reader(stream)) == [
            ["layer", "ck", "triton"],
            ["layers.2.mlp", "0.98", "0.5"],
            ["layers.10.mlp", "0.9999", ""],
        ]


def test_png_without_matplotlib_raises_with_the_install_hint(two_configurations, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails as if not installed
    with pytest.raises(ImportError, match=r"quantguard\[plot\]"):
        write_heatmap_png(two_configurations, tmp_path / "h.png")
    assert not (tmp_path / "h.png").exists()


class _Recorder:
    """Stands in for matplotlib's figure, axes and pyplot: records calls, savefig writes a file."""

    def __init__(self, calls):
        self.calls = calls

    def __getattr__(self, name):
        def record(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            if name == "savefig":
                with open(args[0], "wb") as stream:
                    stream.write(b"fake png")
            return self

        return record


@pytest.fixture
def fake_matplotlib(monkeypatch):
    calls = []
    recorder = _Recorder(calls)
    pyplot = types.ModuleType("matplotlib.pyplot")
    pyplot.subplots = lambda **kwargs: (recorder, recorder)
    pyplot.close = recorder.close
    matplotlib = types.ModuleType("matplotlib")
    matplotlib.use = lambda backend: calls.append(("use", (backend,), {}))
    matplotlib.pyplot = pyplot
    monkeypatch.setitem(sys.modules, "matplotlib", matplotlib)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", pyplot)
    return calls


def test_png_with_a_fake_matplotlib(two_configurations, tmp_path, fake_matplotlib):
    path = tmp_path / "h.png"
    assert write_heatmap_png(two_configurations, path) is True
    assert path.read_bytes() == b"fake png"
    called = {name: (args, kwargs) for name, args, kwargs in fake_matplotlib}
    assert called["use"] == (("Agg",), {})
    (values,), options = called["imshow"]
    assert values[0] == [0.98, 0.5] and values[1][0] == 0.9999 and math.isnan(values[1][1])
    assert options["vmax"] == 1.0 and options["vmin"] == 0.5
    assert called["set_yticklabels"][0] == (["layers.2.mlp", "layers.10.mlp"],)
    marked = sorted(args[:2] for name, args, _ in fake_matplotlib if name == "text" and args[2] == "FAIL")
    assert marked == [(0, 0), (1, 0)]  # layers.2.mlp failed in both configurations


def test_png_is_not_drawn_without_shadow_results(write_log, tmp_path, fake_matplotlib):
    report = build_report([write_log("a.jsonl", [enabled("ck")])])
    assert write_heatmap_png(report, tmp_path / "h.png") is False
    assert not (tmp_path / "h.png").exists()


def test_png_with_real_matplotlib(two_configurations, tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "h.png"
    assert write_heatmap_png(two_configurations, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
