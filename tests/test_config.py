"""Configuration: keyword arguments over environment over defaults; every bad value is named."""

from __future__ import annotations

import pytest

import quantguard
from quantguard.config import Config, resolve_config

BAD_VALUES = [
    ("QUANTGUARD_MODE", "lgo", "log, raise"),
    ("QUANTGUARD_TARGETS", "aiter.ops quant", "globs without spaces"),
    ("QUANTGUARD_DISABLED_TARGETS", "a b", "globs without spaces"),
    ("QUANTGUARD_SAMPLE_RATE", "1.5", "between 0 and 1"),
    ("QUANTGUARD_SAMPLE_RATE", "often", "between 0 and 1"),
    ("QUANTGUARD_SAMPLE_FIRST", "-1", "integer >= 0"),
    ("QUANTGUARD_MAX_SAMPLES_PER_SEC", "fast", "number > 0"),
    ("QUANTGUARD_SEED", "abc", "an integer"),
    ("QUANTGUARD_LOG", "/no/such/dir/x.jsonl", "does not exist"),
    ("QUANTGUARD_LOG_FORMAT", "xml", "json, console"),
    ("QUANTGUARD_LOG_VALUES", "maybe", "1/true"),
    ("QUANTGUARD_GFX", "mi300", "gfx942"),
    ("QUANTGUARD_CK_FREE", "perhaps", "1/true"),
    ("QUANTGUARD_ON_BLOCK", "ignore", "raise, reroute, log"),
    ("QUANTGUARD_SHADOW", "2", "1/true"),
    ("QUANTGUARD_SHADOW_ROWS", "0", "integer from 1 to 65536"),
    ("QUANTGUARD_SHADOW_FULL", "yesplease", "1/true"),
    ("QUANTGUARD_SHADOW_PRECISION", "fp16", "fp32, fp64"),
    ("QUANTGUARD_THRESHOLDS", "fp8:0.99", "KEY=COSINE"),
    ("QUANTGUARD_THRESHOLDS", "fp8=1.5", "COSINE in (0, 1]"),
    ("QUANTGUARD_SHADOW_COMPARE", "bitwise", "cosine, allclose, exact for every target"),
    ("QUANTGUARD_SHADOW_COMPARE", "gemm_a8w8*=close", "GLOB=MODE pairs"),
    ("QUANTGUARD_SHADOW_ALLCLOSE", "bf16=-1:0", "DTYPE=RTOL:ATOL"),
    ("QUANTGUARD_E8M0_ROUNDING", "nearest", "down, up, even, ceil"),
    ("QUANTGUARD_RATE_LIMIT_INTERVAL", "-3", "number > 0"),
    ("QUANTGUARD_GRAPH_CHECKS", "sometimes", "1/true"),
    ("QUANTGUARD_GRAPH_PERIOD", "0", "integer >= 1"),
    ("QUANTGUARD_GRAPH_PERIOD", "often", "integer >= 1"),
    ("QUANTGUARD_GRAPH_SNAPSHOT_MIB", "-64", "integer from 1 to 1048576"),
    ("QUANTGUARD_THOROUGH_INTERVAL", "-1", "seconds >= 0"),
    ("QUANTGUARD_THOROUGH_INTERVAL", "often", "seconds >= 0"),
    ("QUANTGUARD_LABEL", "two\nlines", "one-line name"),
    ("QUANTGUARD_METRICS_PORT", "65536", "integer from 0 to 65535"),
    ("QUANTGUARD_METRICS_PORT", "http", "integer from 0 to 65535"),
    ("QUANTGUARD_OTEL", "maybe", "1/true/yes/on"),
    ("QUANTGUARD_METRICS", "prometheus", "1/true"),
    ("QUANTGUARD_LOG", "true", "a switch word is not a log file name"),
    ("QUANTGUARD_TARGETS", ",", "at least one glob"),
]


@pytest.mark.parametrize("variable, value, accepted", BAD_VALUES)
def test_bad_environment_value_names_variable_value_and_accepted(variable, value, accepted):
    with pytest.raises(ValueError) as info:
        resolve_config({}, {variable: value})
    message = str(info.value)
    assert variable in message and repr(value) in message and accepted in message


@pytest.mark.parametrize("variable, value, accepted", BAD_VALUES[:6])
def test_explicit_enable_raises_value_error(monkeypatch, variable, value, accepted):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=variable):
        quantguard.enable()
    assert not quantguard.is_enabled()


def test_bad_keyword_names_the_option():
    with pytest.raises(ValueError, match=r"sample_rate=2 is not valid; accepted: a number between 0 and 1"):
        resolve_config({"sample_rate": 2}, {})
    with pytest.raises(ValueError, match="unknown option"):
        resolve_config({"samplerate": 0.5}, {})


def test_precedence_keywords_over_environment_over_defaults():
    env = {
        "QUANTGUARD_MODE": "raise",
        "QUANTGUARD_SAMPLE_RATE": "0.5",
        "QUANTGUARD_GFX": "gfx950",
        "QUANTGUARD_THRESHOLDS": "fp8=0.9995,aiter.*blockscale*@model.layers.0.*=0.99",
    }
    config = resolve_config({"sample_rate": 0.25}, env)
    assert config.mode == "raise" and config.sample_rate == 0.25 and config.gfx == "gfx950"
    assert config.thresholds == {"fp8": 0.9995, "aiter.*blockscale*@model.layers.0.*": 0.99}
    assert resolve_config({}, {}) == Config()


def test_values_are_normalized():
    config = resolve_config(
        {},
        {
            "QUANTGUARD_MODE": " RAISE ",
            "QUANTGUARD_CK_FREE": "Yes",
            "QUANTGUARD_TARGETS": "aiter.ops.quant.*, aiter.gemm_*",
            "QUANTGUARD_GFX": "GFX942",
        },
    )
    assert config.mode == "raise" and config.ck_free is True and config.gfx == "gfx942"
    assert config.targets == ("aiter.ops.quant.*", "aiter.gemm_*")


@pytest.mark.parametrize("value, seconds", [("0", 0.0), ("2.5", 2.5), (" 30 ", 30.0)])
def test_thorough_interval_accepts_seconds_and_zero(value, seconds):
    assert resolve_config({}, {"QUANTGUARD_THOROUGH_INTERVAL": value}).thorough_interval == seconds
    assert resolve_config({}, {}).thorough_interval == 5.0


@pytest.mark.parametrize(
    "environ, period",
    [
        ({}, 100),
        ({"QUANTGUARD_SAMPLE_RATE": "0.05"}, 20),
        ({"QUANTGUARD_GRAPH_PERIOD": "auto"}, 100),
        ({"QUANTGUARD_GRAPH_PERIOD": "7"}, 7),
        ({"QUANTGUARD_SAMPLE_RATE": "0"}, 0),
    ],
)
def test_graph_period_follows_the_sampling_rate_unless_set(environ, period):
    from quantguard.engine.graphs import GraphMonitor

    class _Runtime:
        config = resolve_config({}, environ)

    monitor = GraphMonitor(_Runtime())  # type: ignore[arg-type]
    assert monitor.period == period and monitor.active == (period > 0)


# -- every variable, and settings that parse but cannot do what they say ---------------------

from quantguard import environment_variables as env_names  # noqa: E402
from quantguard.config_audit import KNOWN_VARIABLES, audit_config  # noqa: E402
from quantguard.contracts import builtin_contracts  # noqa: E402

#: (environment, option or variable warned about, words the message must hold)
WARNED = [
    ({"QUANTGUARD_TARGETS": "aiter.ops.gemm_op_a8w8.gemm_a8w8_CKK,aiter.ops.quant.*"}, "targets", "guards nothing"),
    ({"QUANTGUARD_DISABLED_TARGETS": "aiter.*typo_*"}, "disabled_targets", "leaves out nothing"),
    ({"QUANTGUARD_DISABLED_TARGETS": "*"}, "disabled_targets", "leave no target guarded"),
    ({"QUANTGUARD_THRESHOLDS": "fp9=0.99"}, "thresholds", "applies to nothing"),
    ({"QUANTGUARD_SHADOW_COMPARE": "gemm_a9w9*=exact"}, "shadow_compare", "applies to nothing"),
    ({"QUANTGUARD_SHADOW": "0", "QUANTGUARD_SHADOW_COMPARE": "exact"}, "shadow_compare", "shadow is off"),
    ({"QUANTGUARD_SHADOW": "0", "QUANTGUARD_SHADOW_ALLCLOSE": "bf16=0:0"}, "shadow_allclose", "shadow is off"),
    ({"QUANTGUARD_SAMPLE_RATE": "0", "QUANTGUARD_SAMPLE_FIRST": "0"}, "sample_rate", "inspects no call"),
    (
        {"QUANTGUARD_SAMPLE_RATE": "0", "QUANTGUARD_MAX_SAMPLES_PER_SEC": "5"},
        "max_samples_per_second",
        "no effect",
    ),
    ({"QUANTGUARD_SHADOW": "0", "QUANTGUARD_SHADOW_FULL": "1"}, "shadow_full", "shadow is off"),
    ({"QUANTGUARD_SHADOW": "0", "QUANTGUARD_SHADOW_ROWS": "64"}, "shadow_rows", "shadow is off"),
    ({"QUANTGUARD_SHADOW": "0", "QUANTGUARD_SHADOW_PRECISION": "fp64"}, "shadow_precision", "shadow is off"),
    ({"QUANTGUARD_SHADOW": "0", "QUANTGUARD_THOROUGH_INTERVAL": "1"}, "thorough_interval", "shadow is off"),
    ({"QUANTGUARD_GRAPH_CHECKS": "0", "QUANTGUARD_GRAPH_PERIOD": "5"}, "graph_period", "graph_checks is off"),
    ({"QUANTGUARD_GRAPH_CHECKS": "0", "QUANTGUARD_GRAPH_SNAPSHOT_MIB": "8"}, "graph_snapshot_mib", "graph_checks"),
    ({"QUANTGUARD_GFX": "gfx1100"}, "gfx", "arch rules cover"),
    ({"QUANTGUARD_SAMPLERATE": "0.5"}, "QUANTGUARD_SAMPLERATE", "did you mean QUANTGUARD_SAMPLE_RATE"),
    ({"QUANTGUARD_LOG_FORMAT": "console", "QUANTGUARD_LOG": "/dev/null"}, "log_format", "JSON lines only"),
]

#: Variables whose bad values are caught elsewhere: QUANTGUARD_ENABLED by the start-up hook (tests/test_bootstrap.py).
_CHECKED_ELSEWHERE = {"QUANTGUARD_ENABLED"}


def _targets() -> list[str]:
    return [contract.target for contract in builtin_contracts()]


def test_every_variable_has_bad_values_that_are_refused_or_warned():
    """A new QUANTGUARD_* variable must come with its bad values here."""
    covered = {variable for variable, _, _ in BAD_VALUES} | {v for environ, _, _ in WARNED for v in environ}
    assert set(KNOWN_VARIABLES) - _CHECKED_ELSEWHERE <= covered
    assert set(KNOWN_VARIABLES) == {name for name in env_names.__all__ if name.startswith("QUANTGUARD_")}


@pytest.mark.parametrize("environ, option, words", WARNED, ids=[str(sorted(e.items())) for e, _, _ in WARNED])
def test_settings_that_cannot_do_what_they_say_are_warned(environ, option, words):
    config = resolve_config({}, environ)
    warnings = audit_config(config, _targets(), environ)
    assert [w.option for w in warnings] == [option]
    assert words in warnings[0].message
    if option.startswith("QUANTGUARD_"):
        return
    assert warnings[0].variable in environ  # the variable the operator set is named


def test_a_default_configuration_and_good_globs_are_quiet():
    environ = {
        "QUANTGUARD_TARGETS": "aiter.ops.quant.*",
        "QUANTGUARD_THRESHOLDS": "fp8=0.99,aiter.*a8w8*=0.98",
        "QUANTGUARD_SHADOW_COMPARE": "exact,gemm_a8w8*=allclose,aiter.*@model.layers.0.*=cosine",
    }
    assert audit_config(resolve_config({}, {}), _targets(), {}) == []
    assert audit_config(resolve_config({}, environ), _targets(), environ) == []


@pytest.mark.parametrize(
    "option, value",
    [
        ("sample_rate", True),
        ("max_samples_per_second", True),
        ("thorough_interval", True),
        ("rate_limit_interval", True),
        ("shadow_rows", float("inf")),
        ("sample_first", float("inf")),
        ("graph_period", float("inf")),
        ("seed", 1.5),
        ("seed", float("inf")),
        ("shadow_rows", 10**30),
        ("graph_snapshot_mib", 10**30),
        ("targets", []),
        ("disabled_targets", ()),
        ("log", "true"),
        ("log", "1"),
    ],
)
def test_bad_keywords_are_refused_with_a_config_error(option, value):
    with pytest.raises(ValueError) as info:
        resolve_config({option: value}, {})
    assert f"{option}=" in str(info.value) and "accepted:" in str(info.value)


def test_enable_emits_the_warnings(monkeypatch, quiet_log):
    from quantguard.testing import capture_events

    monkeypatch.setenv("QUANTGUARD_TARGETS", "aiter.ops.quant.*,aiter.gemm_a8w8_CKK")
    monkeypatch.setenv("QUANTGUARD_SHADOWROWS", "8")
    with capture_events() as seen:
        quantguard.enable(log=quiet_log)
    warned = [(e["option"], e["variable"]) for e in seen if e["event"] == "quantguard.config_warning"]
    assert warned == [("QUANTGUARD_SHADOWROWS", None), ("targets", "QUANTGUARD_TARGETS")]
