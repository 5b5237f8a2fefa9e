"""quantguard's configuration: one frozen dataclass.

Values come from :func:`quantguard.enable` keyword arguments, over
``QUANTGUARD_*`` environment variables, over defaults.  Every parse error names
what was wrong (the variable or keyword), the bad value, and what is accepted,
because a canary that silently runs with a misspelled setting is worse than
one that refuses to start.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from quantguard import environment_variables as env
from quantguard._log_file import destination_problem
from quantguard._sinks import expand_path as _expand_path
from quantguard.errors import ConfigError

__all__ = [
    "Config",
    "resolve_config",
    "parse_bool",
    "env_variable",
    "E8M0_ROUNDING_MODES",
    "THRESHOLD_FORMATS",
    "SHADOW_COMPARE_MODES",
]

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
MODES = ("log", "raise")
ON_BLOCK = ("raise", "reroute", "log")
LOG_FORMATS = ("json", "console")
PRECISIONS = ("fp32", "fp64")
#: AITER's four e8m0 rounding modes (``csrc/include/mx_quant_utils.h``).
E8M0_ROUNDING_MODES = ("down", "up", "even", "ceil")


@dataclass(frozen=True)
class Config:
    """Everything that changes quantguard's behaviour.  See ``docs/configuration.md``."""

    mode: str = "log"
    targets: tuple[str, ...] = ("*",)
    disabled_targets: tuple[str, ...] = ()
    sample_rate: float = 0.01
    sample_first: int = 3
    max_samples_per_second: float | None = None
    seed: int | None = None
    log: str = "stderr"
    log_format: str = "json"
    log_values: bool = False
    gfx: str | None = None
    ck_free: bool | None = None
    on_block: str = "raise"
    shadow: bool = True
    shadow_rows: int = 16
    shadow_full: bool = False
    shadow_precision: str = "fp32"
    shadow_queue_size: int = 64
    graph_checks: bool = True
    graph_period: int | None = None
    graph_snapshot_mib: int = 64
    thorough_interval: float = 5.0
    thresholds: Mapping[str, float] = field(default_factory=dict)
    shadow_compare: Mapping[str, str] = field(default_factory=dict)
    shadow_allclose: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    e8m0_rounding: str | None = None
    rate_limit_interval: float = 10.0
    summary_at_exit: bool = True
    label: str | None = None
    metrics_port: int = 0
    metrics: bool = False
    otel: bool | None = None

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)


# -- parsers: each takes (value, where) and raises ConfigError naming `where` ---------


def _fail(where: str, value: Any, accepted: str) -> ConfigError:
    return ConfigError(f"{where}={value!r} is not valid; accepted: {accepted}")


def parse_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise _fail(where, value, "1/true/yes/on or 0/false/no/off")


def _optional_bool(value: Any, where: str) -> bool | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "auto")):
        return None
    return parse_bool(value, where)


def _choice(choices: tuple[str, ...]) -> Callable[[Any, str], str]:
    def parse(value: Any, where: str) -> str:
        if isinstance(value, str) and value.strip().lower() in choices:
            return value.strip().lower()
        raise _fail(where, value, ", ".join(choices))

    return parse


def _optional_choice(choices: tuple[str, ...]) -> Callable[[Any, str], str | None]:
    parse_choice = _choice(choices)

    def parse(value: Any, where: str) -> str | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return parse_choice(value, where)

    return parse


def _fraction(value: Any, where: str) -> float:
    if isinstance(value, bool):
        raise _fail(where, value, "a number between 0 and 1")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _fail(where, value, "a number between 0 and 1") from None
    if not (0.0 <= number <= 1.0) or math.isnan(number):
        raise _fail(where, value, "a number between 0 and 1")
    return number


def _integer(value: Any, where: str, accepted: str) -> int:
    """An integer from an int, an integral float or its text; never from a bool (``True`` is not 1 row)."""
    if isinstance(value, bool):
        raise _fail(where, value, accepted)
    try:
        number = int(str(value).strip()) if isinstance(value, str) else int(value)
    except (TypeError, ValueError, OverflowError):
        raise _fail(where, value, accepted) from None
    if not isinstance(value, str) and number != value:
        raise _fail(where, value, accepted)
    return number


def _int_in(least: int, most: int | None = None) -> Callable[[Any, str], int]:
    accepted = f"an integer >= {least}" if most is None else f"an integer from {least} to {most}"

    def parse(value: Any, where: str) -> int:
        number = _integer(value, where, accepted)
        if number < least or (most is not None and number > most):
            raise _fail(where, value, accepted)
        return number

    return parse


_non_negative_int = _int_in(0)
_positive_int = _int_in(1)


def _optional_positive_int(value: Any, where: str) -> int | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "auto")):
        return None
    return _positive_int(value, where)


def _optional_int(value: Any, where: str) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return _integer(value, where, "an integer")


def _finite_float(value: Any, where: str, zero_ok: bool, accepted: str) -> float:
    """A finite number > 0 (or >= 0 with ``zero_ok``); the message names ``accepted`` otherwise."""
    if isinstance(value, bool):
        raise _fail(where, value, accepted)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _fail(where, value, accepted) from None
    if not (number >= 0 if zero_ok else number > 0) or math.isinf(number):
        raise _fail(where, value, accepted)
    return number


def _optional_positive_float(value: Any, where: str) -> float | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "0")):
        return None
    return _finite_float(value, where, False, "a number > 0 (or 0/none for no cap)")


def _non_negative_float(value: Any, where: str) -> float:
    return _finite_float(value, where, True, "a number of seconds >= 0 (0: every sampled call runs every check)")


def _positive_float(value: Any, where: str) -> float:
    return _finite_float(value, where, False, "a number > 0")


def _globs(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",")]
    elif isinstance(value, (list, tuple, set, frozenset)) and all(isinstance(v, str) for v in value):
        items = [v.strip() for v in value]
    else:
        raise _fail(where, value, "comma-separated globs over target paths, e.g. 'aiter.ops.quant.*,aiter.gemm_*'")
    items = [item for item in items if item]
    if not items and (not isinstance(value, str) or value.strip()):
        raise _fail(where, value, "at least one glob (to guard nothing, do not enable quantguard)")
    for item in items:
        if any(ch.isspace() for ch in item):
            raise _fail(where, value, "globs without spaces, separated by commas")
    return tuple(items)


def _target_globs(value: Any, where: str) -> tuple[str, ...]:
    globs = _globs(value, where)
    return globs or ("*",)


#: Values a user types meaning "logging on/off" or a level/format: never meant as a file name in the cwd.
_LOG_SWITCH_WORDS = _TRUE + _FALSE + ("json", "console", "debug", "info", "warning", "error", "none", "null")


def _log_destination(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(where, value, "stderr, stdout, logging, or a file path")
    text = value.strip()
    if text.lower() in ("stderr", "stdout", "logging"):
        return text.lower()
    if text.lower() in _LOG_SWITCH_WORDS:
        raise _fail(where, value, "stderr, stdout, logging, or a file path (a switch word is not a log file name)")
    problem = destination_problem(_expand_path(os.path.expanduser(text)))
    if problem is not None:
        raise ConfigError(
            f"{where}={value!r} is not valid: {problem}; accepted: stderr, stdout, logging, or the path of a new "
            "file (created owner-only) or of an existing quantguard log, in an existing writable directory"
        )
    return text


def _gfx(value: Any, where: str) -> str | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "auto")):
        return None
    text = str(value).strip().lower()
    if not (text.startswith("gfx") and len(text) > 3 and text[3:].isalnum()):
        raise _fail(where, value, "an AMD GPU arch name such as gfx942 (MI300X) or gfx950 (MI355X), or auto")
    return text


THRESHOLD_FORMATS = ("fp8", "int8", "fp4", "mxfp4", "int4")


def _pairs(value: Any, where: str, accepted: str, bare_key: str | None = None) -> list[tuple[Any, Any]]:
    """``KEY=VALUE`` parts of a comma-separated string, or a mapping's items.

    A part without ``=`` gets the key ``bare_key`` (``*``: every target), or is refused without one.
    """
    if isinstance(value, Mapping):
        return list(value.items())
    if not isinstance(value, str):
        raise _fail(where, value, accepted)
    pairs = []
    for part in value.split(","):
        if not part.strip():
            continue
        key, sep, item = part.rpartition("=")
        if not sep and bare_key is None:
            raise _fail(where, value, accepted)
        pairs.append((key.strip() if sep else bare_key, item.strip()))
    return pairs


def _thresholds(value: Any, where: str) -> dict[str, float]:
    accepted = (
        "KEY=COSINE pairs separated by commas (or a mapping); KEY is a format "
        f"({', '.join(THRESHOLD_FORMATS)}), a target glob, or TARGET_GLOB@LAYER_GLOB; COSINE in (0, 1]"
    )
    result: dict[str, float] = {}
    for key, number in _pairs(value, where, accepted):
        try:
            cosine = float(number)
        except (TypeError, ValueError):
            raise _fail(where, value, accepted) from None
        if not isinstance(key, str) or not key or not (0.0 < cosine <= 1.0):
            raise _fail(where, value, accepted)
        result[key] = cosine
    return result


#: How a precision-matched shadow reference is compared (``quantguard.shadow.thresholds``).
SHADOW_COMPARE_MODES = ("cosine", "allclose", "exact")


def _shadow_compare(value: Any, where: str) -> dict[str, str]:
    accepted = (
        f"{', '.join(SHADOW_COMPARE_MODES)} for every target, or GLOB=MODE pairs separated by commas "
        "(GLOB a target glob, a function name glob or TARGET_GLOB@LAYER_GLOB; MODE one of "
        f"{', '.join(SHADOW_COMPARE_MODES)}), e.g. 'exact' or 'gemm_a8w8*=allclose'"
    )
    result: dict[str, str] = {}
    for key, mode in _pairs(value, where, accepted, bare_key="*"):
        if (
            not isinstance(key, str)
            or not key
            or any(ch.isspace() for ch in key)
            or not isinstance(mode, str)
            or mode.strip().lower() not in SHADOW_COMPARE_MODES
        ):
            raise _fail(where, value, accepted)
        result[key] = mode.strip().lower()
    return result


#: Output dtypes ``shadow_allclose`` takes bounds for, by the names a user types.
_ALLCLOSE_DTYPES = {
    "bf16": "bfloat16",
    "bfloat16": "bfloat16",
    "fp16": "float16",
    "float16": "float16",
    "fp32": "float32",
    "float32": "float32",
}


def _shadow_allclose(value: Any, where: str) -> dict[str, tuple[float, float]]:
    accepted = (
        "DTYPE=RTOL:ATOL pairs separated by commas (or a mapping to (rtol, atol)); DTYPE one of bf16, fp16, "
        "fp32; RTOL and ATOL (in units of the reference's RMS) finite numbers >= 0, e.g. 'bf16=0.0078125:0.0078125'"
    )
    result: dict[str, tuple[float, float]] = {}
    for key, bounds in _pairs(value, where, accepted):
        dtype = _ALLCLOSE_DTYPES.get(str(key).strip().lower())
        parts = bounds.split(":") if isinstance(bounds, str) else bounds
        if dtype is None or not isinstance(parts, (list, tuple)) or len(parts) != 2:
            raise _fail(where, value, accepted)
        try:
            result[dtype] = (
                _finite_float(parts[0], where, True, accepted),
                _finite_float(parts[1], where, True, accepted),
            )
        except ConfigError:
            raise _fail(where, value, accepted) from None  # name the whole value, not the one number
    return result


def _label(value: Any, where: str) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or len(value) > 200 or any(ch in value for ch in "\n\r"):
        raise _fail(where, value, "a one-line name of at most 200 characters")
    return value.strip()


@dataclass(frozen=True)
class _Option:
    name: str
    parse: Callable[[Any, str], Any]
    env_var: str | None


_OPTIONS: tuple[_Option, ...] = (
    _Option("mode", _choice(MODES), env.QUANTGUARD_MODE),
    _Option("targets", _target_globs, env.QUANTGUARD_TARGETS),
    _Option("disabled_targets", _globs, env.QUANTGUARD_DISABLED_TARGETS),
    _Option("sample_rate", _fraction, env.QUANTGUARD_SAMPLE_RATE),
    _Option("sample_first", _non_negative_int, env.QUANTGUARD_SAMPLE_FIRST),
    _Option("max_samples_per_second", _optional_positive_float, env.QUANTGUARD_MAX_SAMPLES_PER_SEC),
    _Option("seed", _optional_int, env.QUANTGUARD_SEED),
    _Option("log", _log_destination, env.QUANTGUARD_LOG),
    _Option("log_format", _choice(LOG_FORMATS), env.QUANTGUARD_LOG_FORMAT),
    _Option("log_values", parse_bool, env.QUANTGUARD_LOG_VALUES),
    _Option("gfx", _gfx, env.QUANTGUARD_GFX),
    _Option("ck_free", _optional_bool, env.QUANTGUARD_CK_FREE),
    _Option("on_block", _choice(ON_BLOCK), env.QUANTGUARD_ON_BLOCK),
    _Option("shadow", parse_bool, env.QUANTGUARD_SHADOW),
    _Option("shadow_rows", _int_in(1, 65536), env.QUANTGUARD_SHADOW_ROWS),
    _Option("shadow_full", parse_bool, env.QUANTGUARD_SHADOW_FULL),
    _Option("shadow_precision", _choice(PRECISIONS), env.QUANTGUARD_SHADOW_PRECISION),
    _Option("shadow_queue_size", _int_in(1, 1 << 20), None),
    _Option("graph_checks", parse_bool, env.QUANTGUARD_GRAPH_CHECKS),
    _Option("graph_period", _optional_positive_int, env.QUANTGUARD_GRAPH_PERIOD),
    _Option("graph_snapshot_mib", _int_in(1, 1 << 20), env.QUANTGUARD_GRAPH_SNAPSHOT_MIB),
    _Option("thorough_interval", _non_negative_float, env.QUANTGUARD_THOROUGH_INTERVAL),
    _Option("thresholds", _thresholds, env.QUANTGUARD_THRESHOLDS),
    _Option("shadow_compare", _shadow_compare, env.QUANTGUARD_SHADOW_COMPARE),
    _Option("shadow_allclose", _shadow_allclose, env.QUANTGUARD_SHADOW_ALLCLOSE),
    _Option("e8m0_rounding", _optional_choice(E8M0_ROUNDING_MODES), env.QUANTGUARD_E8M0_ROUNDING),
    _Option("rate_limit_interval", _positive_float, env.QUANTGUARD_RATE_LIMIT_INTERVAL),
    _Option("summary_at_exit", parse_bool, None),
    _Option("label", _label, env.QUANTGUARD_LABEL),
    _Option("metrics_port", _int_in(0, 65535), env.QUANTGUARD_METRICS_PORT),
    _Option("metrics", parse_bool, env.QUANTGUARD_METRICS),
    _Option("otel", _optional_bool, env.QUANTGUARD_OTEL),
)
_BY_NAME = {option.name: option for option in _OPTIONS}


def env_variable(option: str) -> str | None:
    """The ``QUANTGUARD_*`` variable that sets ``option`` (``None`` for keyword-only options)."""
    found = _BY_NAME.get(option)
    return found.env_var if found is not None else None


def resolve_config(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None, base: Config | None = None
) -> Config:
    """Build a :class:`Config` from keyword overrides over environment over ``base``/defaults.

    Raises :class:`ConfigError` (a ``ValueError``) naming the keyword or variable,
    the bad value and the accepted values.
    """
    overrides = dict(overrides or {})
    environ = os.environ if environ is None else environ
    unknown = sorted(set(overrides) - set(_BY_NAME))
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(unknown)}; accepted: {', '.join(sorted(_BY_NAME))}")
    values: dict[str, Any] = {}
    for option in _OPTIONS:
        if option.name in overrides:
            values[option.name] = option.parse(overrides[option.name], option.name)
        elif option.env_var is not None and environ.get(option.env_var, "").strip():
            values[option.name] = option.parse(environ[option.env_var], option.env_var)
    return (base or Config()).replace(**values) if values else (base or Config())
