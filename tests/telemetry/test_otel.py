"""OpenTelemetry: events become log records and the counters observable instruments, read by the SDK's in-memory exporters."""

from __future__ import annotations

import pytest

pytest.importorskip("opentelemetry.sdk")
from opentelemetry import metrics  # noqa: E402
from opentelemetry._logs import SeverityNumber, set_logger_provider  # noqa: E402
from opentelemetry.sdk._logs import LoggerProvider  # noqa: E402
from opentelemetry.sdk._logs import export as log_export  # noqa: E402
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor  # noqa: E402
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402

import quantguard  # noqa: E402
from quantguard import telemetry  # noqa: E402
from quantguard.engine.lifecycle import current_runtime  # noqa: E402
from quantguard.sim import workload  # noqa: E402
from quantguard.sim.scenarios import SCENARIOS  # noqa: E402

SCENARIO = next(s for s in SCENARIOS if s.name == "gemm_reads_scale_wrong_major")


@pytest.fixture(scope="module")
def otel():
    """The process's global OTel providers (settable once per process), backed by in-memory exporters."""
    # renamed in SDK 1.39; the old name still exists there, deprecated
    exporter = getattr(log_export, "InMemoryLogRecordExporter", None) or log_export.InMemoryLogExporter
    logs = exporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    set_logger_provider(provider)
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    return logs, reader


def _points(reader: InMemoryMetricReader) -> dict[str, list]:
    found: dict[str, list] = {}
    for resource in reader.get_metrics_data().resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


def _run(faults: tuple[str, ...]) -> dict:
    quantguard.enable(otel=True, sample_rate=0.0, log="stderr", label="otel-test")
    with workload.deploy(faults=faults, **SCENARIO.deployment) as deployment:
        workload.generate(workload.build_model(deployment), [1, 2, 3], max_new_tokens=2)
    return current_runtime().summary()


def test_events_and_counters_reach_opentelemetry(otel):
    logs, reader = otel
    logs.clear()
    summary = _run(SCENARIO.faults)
    points = _points(reader)
    quantguard.disable()
    violations = {(p.attributes["target"], p.attributes["check"]): p.value for p in points["quantguard_violations"]}
    assert violations == {(t, c): n for t, checks in summary["violations"].items() for c, n in checks.items()}
    assert violations
    calls = {p.attributes["target"]: p.value for p in points["quantguard_calls"]}
    assert calls == summary["calls"]
    assert all(p.attributes["label"] == "otel-test" and p.attributes["rank"] == "0" for p in points["quantguard_calls"])
    assert sum(p.count for p in points["quantguard_shadow_cosine"]) > 0
    records = [data.log_record for data in logs.get_finished_logs()]
    failed = [r for r in records if r.body == "quantguard.violation"]
    assert failed and all(r.severity_number in (SeverityNumber.WARN, SeverityNumber.ERROR) for r in failed)
    assert {r.attributes["target"] for r in failed} <= set(summary["violations"])
    assert any(r.body == "quantguard.shadow" and r.severity_number == SeverityNumber.INFO for r in records)


def test_a_clean_run_keeps_violation_counters_at_zero_and_disable_stops_the_bridge(otel):
    logs, reader = otel
    summary = _run(())
    points = _points(reader)
    quantguard.disable()
    assert summary["violation_total"] == 0
    assert sum(p.value for p in points.get("quantguard_violations", [])) == 0
    assert sum(p.value for p in points["quantguard_calls"]) == sum(summary["calls"].values()) > 0
    logs.clear()
    from quantguard import events

    events.emit(events.CONFIG_WARNING, "warning", option="x", variable=None, value=None, message="after disable")
    assert not logs.get_finished_logs()
    assert telemetry.metrics_text() == ""


def test_otel_is_automatic_only_with_an_otel_exporter_variable():
    assert not telemetry.otel_wanted(None, {})
    assert not telemetry.otel_wanted(None, {"OTEL_LOGS_EXPORTER": "none"})
    assert telemetry.otel_wanted(None, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"})
    assert not telemetry.otel_wanted(False, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"})
    assert telemetry.otel_wanted(True, {})
