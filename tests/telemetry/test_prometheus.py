"""Prometheus metrics scraped over HTTP from real processes equal their summaries; clean runs stay at zero."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

import quantguard  # noqa: E402
from quantguard import telemetry  # noqa: E402
from quantguard.config import resolve_config  # noqa: E402
from quantguard.config_audit import audit_config  # noqa: E402
from quantguard.testing import capture_events  # noqa: E402

WORKER = Path(__file__).with_name("_worker.py")
FAULT = "asm_gemm_garbage_gfx950 (on_block=log)"  # blocked calls and violations, the workload runs on
NUMERICS = "gemm_reads_scale_wrong_major"  # shadow comparisons fail


def _free_ports(count: int) -> int:
    """A base port with ``count`` consecutive free ports."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + count > 65535:
            continue
        try:
            for offset in range(count):
                with socket.socket() as taken:
                    taken.bind(("", base + offset))
            return base
        except OSError:
            continue
    raise RuntimeError("no free ports")


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _by(samples: dict, name: str, *keys: str) -> dict[tuple[str, ...], float]:
    """Sum of ``name`` samples grouped by the label values ``keys``."""
    out: dict[tuple[str, ...], float] = {}
    for (sample, labels), value in samples.items():
        if sample == name:
            label = dict(labels)
            key = tuple(label[k] for k in keys)
            out[key] = out.get(key, 0) + value
    return out


def _start_rank(name: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(WORKER), name],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def _run_ranks(scenarios: list[str], port: int) -> list[tuple[dict, dict]]:
    """Start one worker per scenario (RANK=i), scrape each rank's port, return (summary, samples) per rank."""
    procs = []
    for rank, name in enumerate(scenarios):
        env = {**os.environ, "QUANTGUARD_METRICS_PORT": str(port), "RANK": str(rank), "QUANTGUARD_LABEL": "ci"}
        env.pop("LOCAL_RANK", None)
        procs.append(_start_rank(name, env))
    results = []
    try:
        for rank, proc in enumerate(procs):
            line = proc.stdout.readline()
            assert line, f"rank {rank} died"
            summary = json.loads(line)
            with urllib.request.urlopen(f"http://127.0.0.1:{port + rank}/metrics", timeout=10) as response:
                results.append((summary, _samples(response.read().decode())))
    finally:
        for proc in procs:
            proc.communicate("", timeout=60)
    return results


@pytest.fixture(scope="module")
def ranks() -> list[tuple[dict, dict]]:
    return _run_ranks([FAULT, "clean", NUMERICS], _free_ports(3))


def test_each_rank_serves_its_own_counts_on_its_port(ranks):
    for rank, (summary, samples) in enumerate(ranks):
        assert {labels for (name, labels) in samples if name == "quantguard_calls_total"}
        for (_, labels), _ in samples.items():
            assert ("rank", str(rank)) in labels and ("label", "ci") in labels
        calls = _by(samples, "quantguard_calls_total", "target")
        assert calls == {(target,): float(n) for target, n in summary["calls"].items()}
    total = sum(sum(_by(s, "quantguard_calls_total").values()) for _, s in ranks)
    assert total == sum(sum(summary["calls"].values()) for summary, _ in ranks) > 0


def test_a_fault_moves_violations_and_blocks_and_a_clean_run_does_not(ranks):
    (fault, fault_samples), (clean, clean_samples), _ = ranks
    violations = _by(fault_samples, "quantguard_violations_total", "target", "check")
    expected = {(t, c): float(n) for t, checks in fault["violations"].items() for c, n in checks.items()}
    assert violations == expected and fault["violation_total"] > 0
    severities = {dict(labels)["severity"] for (name, labels) in fault_samples if name == "quantguard_violations_total"}
    assert severities and "unknown" not in severities
    blocked = _by(fault_samples, "quantguard_blocked_total", "target")
    assert blocked == {(t,): float(n) for t, n in fault["blocked"].items()} and blocked
    assert clean["violation_total"] == 0
    assert not _by(clean_samples, "quantguard_violations_total")
    assert not _by(clean_samples, "quantguard_blocked_total")
    assert sum(_by(clean_samples, "quantguard_shadow_failed_total").values()) == 0
    assert sum(_by(clean_samples, "quantguard_calls_total").values()) > 0
    sampled = _by(clean_samples, "quantguard_sampled_calls_total", "target")
    assert sampled == {(t,): float(n) for t, n in clean["sampled"].items()} and sampled


def test_failed_shadow_comparisons_move_counters_and_histograms(ranks):
    (_, clean_samples), (summary, samples) = ranks[1], ranks[2]
    failed = _by(samples, "quantguard_shadow_failed_total", "target")
    assert failed == {(t,): float(s["failed"]) for t, s in summary["shadow"].items()}
    assert sum(failed.values()) > 0
    results = _by(samples, "quantguard_shadow_results_total", "target")
    assert results == {(t,): float(s["samples"]) for t, s in summary["shadow"].items()}
    for metric in ("quantguard_shadow_cosine", "quantguard_shadow_norm_ratio", "quantguard_shadow_sqnr_db"):
        assert sum(_by(samples, f"{metric}_count").values()) > 0, metric
    # every result is binned, not only the logged (rate-limited) ones
    assert sum(_by(samples, "quantguard_shadow_cosine_count").values()) == sum(results.values())
    # the clean run's cosines all sit in the top buckets, the faulty run's do not
    low = {(n, labels) for (n, labels), v in samples.items() if n == "quantguard_shadow_cosine_bucket" and v > 0}
    assert any(dict(labels)["le"] == "0.99" for _, labels in low)
    clean_low = [
        v
        for (n, labels), v in clean_samples.items()
        if n == "quantguard_shadow_cosine_bucket" and dict(labels)["le"] == "0.99"
    ]
    assert sum(clean_low) == 0
    for (name, _), value in samples.items():
        if name in ("quantguard_shadow_dropped_total", "quantguard_shadow_queue_depth"):
            assert value == 0  # CPU: shadow work is synchronous, nothing waits nor drops


def test_internal_errors_and_dropped_jobs_are_exported_in_process():
    runtime = quantguard.enable(metrics_port=_free_ports(1), sample_rate=0.0, log="stderr")
    try:
        before = _samples(telemetry.metrics_text())
        assert not _by(before, "quantguard_internal_errors_total")
        runtime.reporter.internal_error("aiter.example", "numerics", ValueError("boom"))
        runtime.reporter.stats.add_dropped(3)
        after = _samples(telemetry.metrics_text())
        assert _by(after, "quantguard_internal_errors_total", "target", "check") == {("aiter.example", "numerics"): 1.0}
        assert sum(_by(after, "quantguard_shadow_dropped_total").values()) == 3
    finally:
        quantguard.disable()
    assert telemetry.metrics_text() == ""


def test_metrics_off_imports_nothing_and_serves_nothing():
    code = (
        "import sys, quantguard; quantguard.enable(log='stderr'); "
        "from quantguard import telemetry; assert telemetry.metrics_text() == ''; "
        "assert 'prometheus_client' not in sys.modules and 'opentelemetry' not in sys.modules; quantguard.disable()"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "QUANTGUARD_"))}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, stderr=subprocess.DEVNULL)


def test_a_busy_port_is_an_internal_error_not_a_failed_enable():
    with socket.socket() as busy:
        busy.bind(("", 0))
        busy.listen()
        with capture_events() as events:
            assert quantguard.enable(metrics_port=busy.getsockname()[1], log="stderr") is not None
            quantguard.disable()
    errors = events.named("internal_error")
    assert [e["target"] for e in errors] == ["quantguard.telemetry"]
    assert errors[0]["error"].startswith("OSError") and errors[0]["traceback"]


def test_a_missing_library_is_a_config_warning(monkeypatch):
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    config = resolve_config({"metrics_port": 9400}, {})
    warnings = [w for w in audit_config(config, [], {}) if w.option == "metrics_port"]
    assert len(warnings) == 1 and "prometheus-client is not installed" in warnings[0].message
    with capture_events() as events:
        assert quantguard.enable(metrics_port=9400, log="stderr") is not None
        assert telemetry.metrics_text() == ""
        quantguard.disable()
    assert [e["option"] for e in events.named("config_warning") if e["option"] == "metrics_port"] == ["metrics_port"]


def test_ranks_sharing_a_multiprocess_directory_are_served_together_without_lost_counts(tmp_path):
    """PROMETHEUS_MULTIPROC_DIR: every rank writes its counts there, local rank 0 serves them all."""
    port = _free_ports(1)
    procs = []
    for rank, name in enumerate([FAULT, "clean", NUMERICS]):
        env = {
            **os.environ,
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
            "QUANTGUARD_METRICS_PORT": str(port),
            "LOCAL_RANK": str(rank),
            "RANK": str(rank),
            "QUANTGUARD_LABEL": "ci",
        }
        procs.append(_start_rank(name, env))
    try:
        summaries = [json.loads(proc.stdout.readline()) for proc in procs]
        for proc in procs[1:]:  # ranks 1 and 2 finish: disable() writes their last counts
            proc.communicate("", timeout=60)
            assert proc.returncode == 0
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            samples = _samples(response.read().decode())
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.communicate("", timeout=60)
    assert procs[0].returncode == 0
    calls = _by(samples, "quantguard_calls_total", "rank", "target")
    expected = {(str(r), t): float(n) for r, s in enumerate(summaries) for t, n in s["calls"].items()}
    assert calls == expected and sum(calls.values()) > 0
    violations = _by(samples, "quantguard_violations_total", "rank", "target", "check")
    expected = {
        (str(r), t, c): float(n)
        for r, s in enumerate(summaries)
        for t, checks in s["violations"].items()
        for c, n in checks.items()
    }
    assert violations == expected and not [rank for rank, _, _ in violations if rank == "1"]  # rank 1 is clean
    failed = _by(samples, "quantguard_shadow_failed_total", "rank")
    assert failed.get(("1",), 0) == 0 and failed[("2",)] == sum(s["failed"] for s in summaries[2]["shadow"].values())
    results = sum(s["samples"] for s in summaries[2]["shadow"].values())
    assert _by(samples, "quantguard_shadow_cosine_count", "rank")[("2",)] == results > 0
    assert {dict(labels)["label"] for (_, labels) in samples if "label" in dict(labels)} == {"ci"}


def test_metrics_without_a_port_are_readable_in_process():
    runtime = quantguard.enable(metrics=True, sample_rate=0.0, log="stderr")
    try:
        assert telemetry.serving_port(runtime.config.metrics_port, os.environ) == 0
        runtime.reporter.stats.add_dropped(2)
        assert sum(_by(_samples(telemetry.metrics_text()), "quantguard_shadow_dropped_total").values()) == 2
    finally:
        quantguard.disable()


@pytest.mark.parametrize(
    ("environ", "shared", "served"),
    [
        ({"LOCAL_RANK": "3", "RANK": "11"}, False, 9403),
        ({"RANK": "2"}, False, 9402),
        ({}, False, 9400),
        ({"LOCAL_RANK": "0"}, True, 9400),
        ({"LOCAL_RANK": "1"}, True, 0),
    ],
)
def test_which_port_a_rank_serves(environ, shared, served):
    assert telemetry.serving_port(9400, environ, shared) == served


def test_an_unwritable_multiprocess_directory_is_a_config_warning(tmp_path):
    config = resolve_config({"metrics": True}, {})
    environ = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "missing")}
    warnings = [w for w in audit_config(config, [], environ) if w.option == "metrics"]
    assert len(warnings) == 1 and "not a writable directory" in warnings[0].message
    assert not [
        w for w in audit_config(config, [], {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}) if w.option == "metrics"
    ]


def test_a_rank_that_exits_without_disable_still_writes_its_last_counts(tmp_path):
    """The at-exit path (as on SIGTERM): no disable(), the counts still reach the multiprocess directory."""
    code = (
        "import json, quantguard\n"
        "from quantguard.sim import workload\n"
        "quantguard.enable(metrics=True, sample_rate=0.0, log='stderr')\n"
        "with workload.deploy() as deployment:\n"
        "    workload.generate(workload.build_model(deployment), [1, 2, 3], max_new_tokens=2)\n"
        "from quantguard.engine.lifecycle import current_runtime\n"
        "print(json.dumps(current_runtime().summary()['calls']))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "QUANTGUARD_"))}
    env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    calls = json.loads(done.stdout.strip().splitlines()[-1])
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(tmp_path))
    served = _by(_samples(generate_latest(registry).decode()), "quantguard_calls_total", "target")
    assert served == {(target,): float(n) for target, n in calls.items()} and sum(calls.values()) > 0
