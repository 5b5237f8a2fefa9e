"""The Grafana dashboard, the alert rules and docs/metrics.md name only metrics quantguard exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from quantguard.telemetry import METRIC_NAMES

ROOT = Path(__file__).resolve().parents[2]
_NAME = re.compile(r"\bquantguard_[a-z0-9_]+")


def _names(expr: str) -> set[str]:
    return set(_NAME.findall(expr))


def test_dashboard_queries_only_exported_metrics():
    dashboard = json.loads((ROOT / "examples" / "grafana_dashboard.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    exprs += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    assert exprs and all(_names(expr) for expr in exprs)
    used = set().union(*map(_names, exprs))
    assert used <= METRIC_NAMES, used - METRIC_NAMES


def test_alert_rules_only_use_exported_metrics():
    yaml = pytest.importorskip("yaml")
    rules = yaml.safe_load((ROOT / "examples" / "prometheus_alerts.yml").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    assert exprs and all(_names(expr) for expr in exprs)
    assert set().union(*map(_names, exprs)) <= METRIC_NAMES
    assert any("quantguard_violations_total" in expr and "> 0" in expr for expr in exprs)
    assert any("histogram_quantile(0.01" in expr and "quantguard_shadow_cosine_bucket" in expr for expr in exprs)


def test_the_docs_list_every_metric_and_nothing_else():
    text = (ROOT / "docs" / "metrics.md").read_text()
    named = _names(text)
    families = {re.sub(r"_(bucket|sum|count)$", "", name) for name in METRIC_NAMES}
    assert families <= named, families - named
    assert named <= METRIC_NAMES | families, named - METRIC_NAMES - families
