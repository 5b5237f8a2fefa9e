"""Recommendations: every check of docs/events.md has advice, variants follow the hints of the events."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from quantguard.report.recommendations import ADVISED_KINDS, hints_of, producer_of, recommend

EVENTS_DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def _documented_checks() -> set[str]:
    text = EVENTS_DOC.read_text()
    table = text[text.index("Checks:") : text.index("### `quantguard.blocked`")]
    first_cells = [line.split("|")[1] for line in table.splitlines() if line.startswith("| `")]
    return {name for cell in first_cells for name in re.findall(r"`([a-z0-9_]+)`", cell)}


def test_every_documented_check_has_advice():
    documented = _documented_checks()
    assert len(documented) >= 17
    assert documented | {"blocked", "internal_error"} <= set(ADVISED_KINDS)


@pytest.mark.parametrize(
    "kind, phrase",
    [
        ("kwarg_ignored", "Triton fallback"),
        ("scale_layout", "bpreshuffle"),
        ("fp8_variant", "normalize_e4m3fn_to_e4m3fnuz"),
        ("blocked", "ATOM_CK_FREE=1"),
        ("backend_selection", "use_triton_gemm()"),
        ("e8m0_rounding", "QUANTGUARD_E8M0_ROUNDING"),
        ("internal_error", "traceback"),
        ("jit_exit", "SystemExit"),
        ("noop_transform", "without writing"),
    ],
)
def test_advice_says_what_to_change(kind, phrase):
    (item,) = recommend(kind, ["aiter.ops.x"]).items
    assert phrase in " ".join(item)
    assert "`aiter.ops.x`" in " ".join(item)


@pytest.mark.parametrize(
    "check, event, hints",
    [
        ("kwarg_ignored", {"message": "routed_scaling_factor=2.5 requested; ...", "details": {}}, {"routing"}),
        ("kwarg_ignored", {"message": "shuffle_scale=True requested; ...", "details": {}}, {"layout"}),
        ("numerics", {"details": {"failed": ["cosine 0.9 < 0.99", "norm ratio 0.5 outside 1±0.02"]}}, {"norm_ratio"}),
        ("numerics", {"details": {"failed": ["cosine 0.9 < 0.99"]}}, {"direction"}),
        ("numerics", {"message": "SQNR 3 dB < 22 dB"}, {"direction"}),
        # garbage (ASM on gfx950: cosine 0.006) also has a wild norm ratio: it is still not a scale problem
        (
            "numerics",
            {"details": {"failed": ["cosine 0.006 < 0.9995", "norm ratio 41.2 outside 1±0.02"], "cosine": 0.006}},
            {"collapsed"},
        ),
        ("numerics", {"message": "output vs fp32: cosine -0.01 < 0.99; norm ratio 3 outside 1±0.02"}, {"collapsed"}),
        ("scale_values", {"details": {"repeat": True}}, set()),
    ],
)
def test_hints_of_events(check, event, hints):
    assert hints_of(check, event) == hints


def test_variants_name_only_the_targets_they_were_seen_on():
    recommendation = recommend(
        "kwarg_ignored", ["aiter.quant", "aiter.topk"], hints={"layout": {"aiter.quant"}, "routing": {"aiter.topk"}}
    )
    (layout_look, _), (routing_look, _) = recommendation.items
    assert "`aiter.quant`" in layout_look and "aiter.topk" not in layout_look
    assert "`aiter.topk`" in routing_look and "routed_scaling_factor" in routing_look


def test_magnitude_advice_for_a_norm_ratio_failure():
    ((look, change),) = recommend("numerics", ["aiter.gemm"], hints={"norm_ratio": {"aiter.gemm"}}).items
    assert "dropped" in look and "magnitude" in look


def test_collapsed_advice_does_not_blame_a_dropped_scale():
    ((look, change),) = recommend("numerics", ["aiter.gemm_asm"], hints={"collapsed": {"aiter.gemm_asm"}}).items
    assert "not a dropped scale" in look and "garbage" in look and "layout" in look and "variant" in look
    assert "backend_selection" in change


def test_producers_are_named_where_they_differ_from_the_target():
    event = {"details": {"producer": "aiter.ops.quant.per_group_quant_hip"}}
    producer = producer_of("scale_layout", event)
    ((look, _),) = recommend("scale_layout", ["aiter.gemm"], [producer]).items
    assert "`aiter.ops.quant.per_group_quant_hip`" in look and "`aiter.gemm`" in look


def test_unknown_checks_get_the_fallback():
    ((look, change),) = recommend("brand_new_check", ["aiter.x"]).items
    assert "no advice" in look and "docs/events.md" in change
