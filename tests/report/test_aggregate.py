"""Aggregation: occurrences from cumulative counts, configurations from enabled events, ranks, layers."""

from __future__ import annotations

import pytest
from report_events import enabled, event, shadow, violation

from quantguard.report import build_report
from quantguard.report.aggregate import Aggregator, display_names

TARGET = "aiter.ops.quant.per_group_quant_hip"


def _report(write_log, *logs):
    return build_report([write_log(name, lines) for name, lines in logs])


def test_total_is_the_largest_cumulative_count_with_flushes(write_log):
    # first occurrence, a rate-limited event at count 7, then the flush at disable with count 12
    report = _report(
        write_log,
        (
            "r.jsonl",
            [enabled("a"), violation(count=1), violation(count=7, suppressed=5), violation(count=12, repeat=True)],
        ),
    )
    check = report.checks["kwarg_ignored"]
    assert check.total == 12
    assert dict(check.by_severity) == {"error": 12}  # the flush counts under the original severity
    assert report.configurations["a"].targets[TARGET].errors == 12
    assert check.first.message == "kwarg_ignored happened"
    assert report.backends["hip"].violations == 12  # the flush has no backend: it takes its key's


def test_variants_of_one_callsite_count_separately_when_events_name_them(write_log):
    lines = [
        enabled("a"),
        violation(check="numerics", count=1, variant="matched"),
        violation(check="numerics", count=1, variant="chain"),
        violation(check="numerics", count=4, variant="chain", repeat=True),
    ]
    assert _report(write_log, ("r.jsonl", lines)).checks["numerics"].total == 1 + 4


def test_counts_of_separate_processes_and_callsites_add_up(write_log):
    lines = [
        enabled("a", pid=1),
        enabled("a", pid=2),
        violation(count=3, pid=1),
        violation(count=4, pid=2),
        violation(count=2, pid=1, callsite="other.py:5"),
        violation(count=3, pid=1),
    ]
    report = _report(write_log, ("r.jsonl", lines))
    assert report.checks["kwarg_ignored"].total == 3 + 4 + 2


def test_a_new_enable_restarts_counting_but_a_reconfiguration_does_not(write_log):
    lines = [
        enabled("a"),
        violation(count=5),
        enabled("b"),
        violation(count=2),
        enabled("c", reconfigured=True),
        violation(count=6),
    ]
    report = _report(write_log, ("r.jsonl", lines))
    assert report.checks["kwarg_ignored"].total == 5 + 2 + 4
    assert {name: c.targets[TARGET].errors for name, c in report.configurations.items()} == {"a": 5, "b": 2, "c": 4}


def test_ranks_are_collected_with_null_as_none(write_log):
    report = _report(
        write_log,
        *[
            (f"rank{rank}.jsonl", [enabled("run", rank=rank, pid=rank + 1), violation(rank=rank, pid=rank + 1)])
            for rank in (0, 1, 3)
        ],
        ("single.jsonl", [enabled("run", pid=9), violation(pid=9)]),
    )
    assert report.checks["kwarg_ignored"].ranks == {0, 1, 3, None}
    assert report.checks["kwarg_ignored"].total == 4
    assert list(report.configurations) == ["run"]


@pytest.mark.parametrize(
    "enabled_event, file_name, expected, labeled",
    [
        (enabled("gfx942-ck"), "r.jsonl", "gfx942-ck", True),
        (enabled(None, arch="gfx950", ck_free=True), "rank3.jsonl", "gfx950 CK-free (rank3.jsonl)", False),
        (enabled("  ", arch=None), "r.jsonl", "unknown-arch CK (r.jsonl)", False),
        (None, "r.jsonl", "no enabled event (r.jsonl)", False),
    ],
)
def test_configuration_names(write_log, enabled_event, file_name, expected, labeled):
    lines = ([enabled_event] if enabled_event else []) + [violation()]
    report = _report(write_log, (file_name, lines))
    assert list(report.configurations) == [expected]
    assert report.configurations[expected].labeled is labeled


def test_events_follow_the_enabled_event_of_their_file_and_pid(write_log):
    lines = [
        enabled("ck", pid=1),
        enabled("triton", pid=2),
        violation(pid=1),
        violation(pid=2),
        violation(pid=2, count=2),
        violation(pid=3),
    ]  # pid 3: a forked worker, inherits the file's latest configuration
    report = _report(write_log, ("r.jsonl", lines))
    errors = {name: c.targets[TARGET].errors for name, c in report.configurations.items()}
    assert errors == {"ck": 1, "triton": 2 + 1}


def test_per_layer_statistics(write_log):
    cosines = [0.9999, 0.9995, 0.98, 1.0]
    lines = [enabled("a")] + [shadow(c) for c in cosines] + [shadow(0.5, layer=None, target="aiter.x")]
    report = _report(write_log, ("r.jsonl", lines))
    layer = report.layers[("a", "layers.0.mlp")]
    assert (layer.cosines.samples, layer.cosines.failed) == (4, 1)
    assert layer.cosines.min == 0.98 and layer.cosines.p1 == 0.98
    assert layer.cosines.mean == pytest.approx(sum(cosines) / 4)
    assert (layer.worst_failed, layer.threshold, layer.failing_targets) == (
        0.98,
        0.999,
        {"aiter.ops.gemm_op_a8w8.gemm_a8w8"},
    )
    assert report.layers[("a", "aiter.x")].cosines.min == 0.5  # no layer: named by its target


@pytest.mark.parametrize(
    "fields, failed",
    [
        ({"cosine": 0.9999, "passed": True}, False),
        ({"cosine": 0.9999, "passed": False}, True),  # e.g. the norm ratio failed
        ({"cosine": 0.99, "passed": True}, True),  # below threshold whatever passed says
        ({"cosine": "NaN", "passed": True}, True),
    ],
)
def test_shadow_failure_rule(write_log, fields, failed):
    report = _report(write_log, ("r.jsonl", [enabled("a"), shadow(**fields)]))
    assert report.configurations["a"].targets["aiter.ops.gemm_op_a8w8.gemm_a8w8"].shadow_failed == int(failed)
    assert report.failing is failed


def test_blocked_counts_include_their_flush(write_log):
    block = event(
        "blocked",
        level="error",
        target="aiter.asm_kernel",
        entry_point="aiter.gemm",
        reason="ASM on gfx950",
        action="raise",
        rerouted_to=None,
        callsite="m.py:1",
        count=1,
        details={},
    )
    flush = violation(check="blocked", target="aiter.asm_kernel", callsite="m.py:1", count=9, repeat=True)
    report = _report(write_log, ("r.jsonl", [enabled("a"), block, flush]))
    (kernel,) = report.blocked.values()
    assert (kernel.count, kernel.entry_point, kernel.action) == (9, "aiter.gemm", "raise")
    assert report.configurations["a"].targets["aiter.asm_kernel"].blocked == 9
    assert "blocked" not in report.checks


def test_internal_errors_and_the_last_summary_per_process(write_log):
    error = event(
        "internal_error",
        level="error",
        target="aiter.x",
        check="scale_values",
        error="KeyError: 'w'",
        traceback="Traceback ...\nKeyError: 'w'",
    )

    def summary(calls):
        return event(
            "summary",
            calls={"aiter.x": calls},
            violation_total=2,
            blocked={},
            internal_errors={"aiter.x": {"scale_values": 3}},
            shadow={"aiter.x": {"samples": 5, "failed": 1}},
            shadow_dropped=0,
            stale_references=0,
            uptime_s=1.5,
        )

    report = _report(write_log, ("r.jsonl", [enabled("a"), error, summary(10), summary(40)]))
    assert report.internal_errors[("aiter.x", "scale_values")].events == 1
    assert report.configurations["a"].failing
    totals = report.configurations["a"].run_totals
    assert (totals.processes, totals.calls, totals.internal_errors, totals.shadow_samples) == (1, 40, 3, 5)


def test_coverage_notes_keep_what_was_not_guarded(write_log):
    lines = [
        enabled("a"),
        event("target_missing", level="info", target="aiter", reason="not installed"),
        event("target_missing", level="warning", target="aiter.ops.x", reason="renamed"),
        event(
            "target_mismatch",
            target="aiter.ops.y",
            differences=["missing parameter z"],
            disabled_checks=["scale_tensors"],
        ),
        event("stale_reference", target="aiter.ops.y", where="m.f", kind="partial", rebound=True, reason="ok"),
        event("uncovered_kernels", kernels=["aiter.k1"], policy=True),
    ]
    report = _report(write_log, ("r.jsonl", lines))
    assert sorted(report.coverage) == [
        ("target_mismatch", "aiter.ops.y"),
        ("target_missing", "aiter.ops.x"),
        ("uncovered_kernels", "(ASM kernels no contract names)"),
    ]
    assert "checks off: scale_tensors" in report.coverage[("target_mismatch", "aiter.ops.y")].detail


def test_wrong_field_types_do_not_crash(write_log):
    lines = [
        enabled("a"),
        event("violation", target=5, check=None, count="many", details=[]),
        event("shadow", cosine={}, threshold="high", layer=7),
        event("summary", calls=[], shadow=3),
        event("target_mismatch", target="t", differences=5, disabled_checks=None),
        event("enabled", pid=[1], platform=[], config="x"),
        {"event": "quantguard.blocked", "count": -1},
    ]
    report = _report(write_log, ("r.jsonl", lines))
    assert report.events == 7


def test_display_names_use_paths_only_where_names_collide():
    assert display_names(["a/r.jsonl", "b/r.jsonl", "c/s.jsonl"]) == ["a/r.jsonl", "b/r.jsonl", "s.jsonl"]


def test_aggregator_accepts_events_in_process():
    aggregator = Aggregator()
    aggregator.add(enabled("in-process"), "<memory>")
    aggregator.add(violation(count=2), "<memory>")
    assert aggregator.finish().checks["kwarg_ignored"].total == 2
