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
    ("QUANTGUARD_SHADOW_ROWS", "0", "integer >= 1"),
    ("QUANTGUARD_SHADOW_FULL", "yesplease", "1/true"),
    ("QUANTGUARD_SHADOW_PRECISION", "fp16", "fp32, fp64"),
    ("QUANTGUARD_THRESHOLDS", "fp8:0.99", "KEY=COSINE"),
    ("QUANTGUARD_THRESHOLDS", "fp8=1.5", "COSINE in (0, 1]"),
    ("QUANTGUARD_E8M0_ROUNDING", "nearest", "down, up, even, ceil"),
    ("QUANTGUARD_RATE_LIMIT_INTERVAL", "-3", "number > 0"),
    ("QUANTGUARD_GRAPH_CHECKS", "sometimes", "1/true"),
    ("QUANTGUARD_GRAPH_PERIOD", "0", "integer >= 1"),
    ("QUANTGUARD_GRAPH_PERIOD", "often", "integer >= 1"),
    ("QUANTGUARD_GRAPH_SNAPSHOT_MIB", "-64", "integer >= 1"),
    ("QUANTGUARD_THOROUGH_INTERVAL", "-1", "seconds >= 0"),
    ("QUANTGUARD_THOROUGH_INTERVAL", "often", "seconds >= 0"),
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
