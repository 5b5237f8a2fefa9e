"""The markdown report: every section, with the right content, for a faulty and a clean simulated run."""

from __future__ import annotations

import pytest
from report_events import enabled, event, shadow, violation

from quantguard.report import build_report, render_markdown

SECTIONS = [
    "# quantguard report",
    "## 1. Summary",
    "### Configurations",
    "### Targets",
    "## 2. Per-layer cosine",
    "### Flagged layers",
    "## 3. Violations by check",
    "## 4. Backends",
    "## 5. Recommendations",
    "## 6. Blocked kernels, internal errors, run totals, inputs",
    "### Blocked kernels",
    "### Internal errors",
    "### Run totals (`quantguard.summary`)",
    "### Coverage notes",
    "### Input files",
]


@pytest.fixture(scope="module")
def rendered(sim_logs):
    return {name: render_markdown(build_report([path])) for name, path in sim_logs.items()}


def _section(markdown: str, heading: str) -> str:
    start = markdown.index(heading)
    end = markdown.find("\n## ", start + len(heading))
    return markdown[start:] if end < 0 else markdown[start:end]


@pytest.mark.parametrize("log", ["faulty", "clean"])
def test_every_section_is_present_in_order(rendered, log):
    markdown = rendered[log]
    positions = [markdown.index(heading) for heading in SECTIONS]
    assert positions == sorted(positions)


def test_faulty_run(rendered):
    markdown = rendered["faulty"]
    assert "**Verdict: FAIL** · exit code 1 · 1 of 1 configuration(s) fail" in markdown
    assert "- **faulty**: kwarg_ignored 20" in markdown
    summary = _section(markdown, "## 1. Summary")
    assert "| faulty | **FAIL** |" in summary
    assert "| `aiter.ops.quant.per_group_quant_hip` | **FAIL** |" in summary

    layers = _section(markdown, "## 2. Per-layer cosine")
    flagged = layers[layers.index("### Flagged layers") : layers.index("### All layers")]
    assert "| faulty | `layers.0.mlp.experts` |" in flagged and "| faulty | `layers.1.mlp.experts` |" in flagged
    assert "nearest-rank 1st percentile" in layers

    violations = _section(markdown, "## 3. Violations by check")
    for check, total in [("kwarg_ignored", 20), ("numerics", 20), ("scale_layout", 10), ("ignored_parameter", 1)]:
        assert f"| `{check}` | {total} |" in violations
    assert "shuffle_scale=True requested" in violations  # first message

    backends = _section(markdown, "## 4. Backends")
    assert "| hip |" in backends and "| triton |" in backends

    advice = _section(markdown, "## 5. Recommendations")
    assert "### `kwarg_ignored`: 20 occurrence(s) (error 20)" in advice
    assert "Triton fallback" in advice
    assert "`aiter.ops.quant._fallback_dynamic_per_token_scaled_quant`" in advice  # ignored_parameter's producer
    assert "`aiter.ops.quant.per_group_quant_hip` wrote scales" in advice  # scale_layout names the producer

    evidence = _section(markdown, "## 6.")
    assert "| faulty | 1 |" in evidence  # run totals: one process
    assert "| faulty.jsonl |" in evidence


def test_clean_run(rendered):
    markdown = rendered["clean"]
    assert "**Verdict: PASS** · exit code 0" in markdown
    assert "What failed" not in markdown
    assert "None: every shadow comparison passed." in markdown
    assert "No violations." in markdown
    assert "Nothing to change" in markdown
    assert "| **FAIL** |" not in markdown


def test_blocked_internal_errors_and_input_problems(write_log):
    block = event(
        "blocked",
        level="error",
        target="aiter.asm",
        entry_point="aiter.gemm",
        reason="ASM | gfx950",
        action="reroute",
        rerouted_to="aiter.triton_gemm",
        callsite="m.py:1",
        count=2,
        details={},
    )
    error = event(
        "internal_error",
        level="error",
        target="aiter.x",
        check="scale_values",
        error="KeyError: 'w'",
        traceback="Traceback\n```\nKeyError: 'w'",
        rank=2,
    )
    path = write_log(
        "r.jsonl.gz",
        [
            enabled("a", rank=0),
            block,
            error,
            "{bad",
            violation(rank=5),
            violation(rank=1, count=2),
            violation(rank=None, count=3),
        ],
    )
    markdown = render_markdown(build_report([path]))
    blocked = _section(markdown, "## 6.")
    assert "| `aiter.asm` | `aiter.gemm` | reroute | `aiter.triton_gemm` | 2 | a | n/a | ASM \\| gfx950 |" in blocked
    assert "````text\nTraceback\n```\nKeyError: 'w'\n````" in blocked  # a fence longer than the traceback's
    assert "| r.jsonl.gz | 7 | 6 | bad_json 1 (line 4) |" in blocked
    assert "Input problems: 1 malformed line(s)" in markdown
    assert "### `blocked`: 2 block(s)" in markdown and "### `internal_error`: 1 event(s)" in markdown
    assert "| `kwarg_ignored` | 3 | error 3 |" in markdown
    assert "| 1, 5, n/a |" in markdown  # ranks of the check


def test_ranks_are_shown_as_ranges(write_log):
    lines = [enabled("a")] + [violation(rank=rank, pid=rank + 1) for rank in (0, 1, 2, 3, 5, 7, 8)]
    markdown = render_markdown(build_report([write_log("r.jsonl", lines)]))
    assert "| 0-3, 5, 7-8 |" in markdown


def test_no_events(write_log):
    markdown = render_markdown(build_report([write_log("empty.jsonl", ["", "not json"])]))
    assert "**Verdict: NO EVENTS** · exit code 3" in markdown


def test_without_layer_names_the_target_is_not_repeated(write_log):
    """Without attach() a shadow event's layer is its target: the flagged table names it once."""
    target = "aiter.ops.gemm_op_a8w8.gemm_a8w8"
    lines = [enabled("unattached"), shadow(0.2, layer=None, target=target), shadow(0.9999, layer=None, target=target)]
    markdown = render_markdown(build_report([write_log("u.jsonl", lines)]))
    flagged = markdown[markdown.index("### Flagged layers") : markdown.index("### All layers")]
    assert "target (no layer names attached)" in flagged and "failing targets" not in flagged
    assert flagged.count(target) == 1


def test_attached_layers_keep_their_failing_targets(write_log):
    lines = [enabled("attached"), shadow(0.2, layer="layers.3.mlp")]
    markdown = render_markdown(build_report([write_log("a.jsonl", lines)]))
    flagged = markdown[markdown.index("### Flagged layers") : markdown.index("### All layers")]
    assert "| attached | `layers.3.mlp` | `aiter.ops.gemm_op_a8w8.gemm_a8w8` |" in flagged


@pytest.mark.parametrize("log", ["faulty", "clean"])
def test_markdown_has_no_br_cells_and_no_overlong_lines(rendered, log):
    lines = rendered[log].splitlines()
    assert not any("<br>" in line for line in lines)
    assert max(len(line) for line in lines) <= 200


def test_many_configurations_split_the_targets_table_and_long_cells_shorten_at_words(write_log):
    paths = []
    for index in range(12):
        label = f"configuration-{index:02d}-with-a-long-descriptive-name"
        paths.append(write_log(f"{index}.jsonl", [enabled(label), violation(message="word " * 80)]))
    lines = render_markdown(build_report(paths)).splitlines()
    assert max(len(line) for line in lines) <= 200
    targets = [line for line in lines if line.startswith("| target |")]
    assert len(targets) > 1 and all(line.count("configuration-") >= 1 for line in targets)
    assert sum(line.count("configuration-") for line in targets) == 12  # every configuration in one of them
    assert any("word…" in line for line in lines) and not any("wor…" in line for line in lines)
