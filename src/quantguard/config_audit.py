"""Configurations that parse but cannot do what they say: found at enable, reported as warnings.

:mod:`quantguard.config` rejects values that are malformed.  Some well-formed
values are still mistakes that would leave a canary silently checking less
than its operator believes: a target glob with a typo guards nothing, a
misspelled ``QUANTGUARD_*`` variable is ignored, shadow options do nothing
while the shadow is off, a console-rendered file cannot be read back by
``quantguard report``.  Each becomes one ``quantguard.config_warning`` event
naming the option (and variable), the value and what to do instead.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib.util
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from quantguard import environment_variables as env
from quantguard.config import THRESHOLD_FORMATS, Config, env_variable
from quantguard.contracts.base import target_matches

__all__ = ["ConfigWarning", "audit_config", "KNOWN_VARIABLES", "ARCHS_WITH_RULES"]

#: Every variable quantguard reads (anything else named ``QUANTGUARD_*`` is a typo or a stale setting).
KNOWN_VARIABLES = tuple(name for name in env.__all__ if name.startswith("QUANTGUARD_"))
#: Archs whose rules quantguard knows (FP8 variant, CK-free ASM policy); others get generic rules only.
ARCHS_WITH_RULES = ("gfx942", "gfx950")
_DEFAULTS = Config()


@dataclass(frozen=True)
class ConfigWarning:
    """One setting that cannot do what it says."""

    option: str
    value: Any
    message: str
    variable: str | None = None

    def as_fields(self) -> dict[str, Any]:
        return {"option": self.option, "variable": self.variable, "value": _short(self.value), "message": self.message}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module without a spec
        return False


def _short(value: Any) -> Any:
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    text = str(list(value) if isinstance(value, tuple) else value)
    return text if len(text) <= 200 else text[:197] + "..."


def _set(config: Config, option: str) -> bool:
    return getattr(config, option) != getattr(_DEFAULTS, option)


class _Audit:
    def __init__(self, config: Config, targets: list[str], environ: Mapping[str, str]) -> None:
        self.config = config
        self.targets = targets
        self.environ = environ
        self.found: list[ConfigWarning] = []

    def warn(self, option: str, message: str, value: Any = None) -> None:
        variable = env_variable(option)
        from_env = variable is not None and bool(self.environ.get(variable, "").strip())
        shown = getattr(self.config, option) if value is None else value
        self.found.append(ConfigWarning(option, shown, message, variable if from_env else None))

    def unknown_variables(self) -> None:
        for name in sorted(self.environ):
            if not name.startswith("QUANTGUARD_") or name in KNOWN_VARIABLES or name in env.OTHER_VARIABLES:
                continue
            close = difflib.get_close_matches(name, KNOWN_VARIABLES, n=1, cutoff=0.75)
            hint = f"did you mean {close[0]}?" if close else f"known: {', '.join(KNOWN_VARIABLES)}"
            self.found.append(
                ConfigWarning(name, self.environ[name], f"{name} is not a quantguard variable and is ignored; {hint}")
            )

    def globs(self) -> None:
        for option in ("targets", "disabled_targets"):
            for glob in getattr(self.config, option):
                if glob != "*" and not any(target_matches(target, (glob,)) for target in self.targets):
                    self.warn(
                        option,
                        f"{option} glob {glob!r} matches no contract target, so it "
                        f"{'guards' if option == 'targets' else 'leaves out'} nothing "
                        "(`quantguard info` lists the targets)",
                        glob,
                    )
        guarded = [
            t
            for t in self.targets
            if target_matches(t, self.config.targets) and not target_matches(t, self.config.disabled_targets)
        ]
        if self.targets and not guarded:
            self.warn("disabled_targets", "targets and disabled_targets together leave no target guarded")

    def thresholds(self) -> None:
        for key in self.config.thresholds:
            if key in THRESHOLD_FORMATS:
                continue
            glob = key.partition("@")[0]
            if not any(target_matches(target, (glob,)) for target in self.targets):
                self.warn(
                    "thresholds",
                    f"threshold key {key!r} is neither a format ({', '.join(THRESHOLD_FORMATS)}) nor a glob "
                    "matching a contract target, so it applies to nothing",
                    key,
                )

    def compare(self) -> None:
        """``shadow_compare`` keys that match no contract target (by path or bare function name)."""
        names = {target.replace(":", ".").rsplit(".", 1)[-1] for target in self.targets}
        for key in self.config.shadow_compare:
            glob = key.partition("@")[0]
            if glob == "*" or any(target_matches(target, (glob,)) for target in self.targets):
                continue
            if not any(fnmatch.fnmatchcase(name, glob) for name in names):
                self.warn(
                    "shadow_compare",
                    f"shadow_compare key {key!r} matches no contract target (path or function name), "
                    "so it applies to nothing",
                    key,
                )

    def switched_off(self) -> None:
        config = self.config
        if not config.shadow:
            for option in (
                "shadow_full",
                "shadow_precision",
                "shadow_rows",
                "thorough_interval",
                "shadow_compare",
                "shadow_allclose",
            ):
                if _set(config, option):
                    self.warn(option, f"{option} has no effect while shadow is off (QUANTGUARD_SHADOW=0)")
        if not config.graph_checks:
            for option in ("graph_period", "graph_snapshot_mib"):
                if _set(config, option):
                    self.warn(option, f"{option} has no effect while graph_checks is off")
        if config.sample_rate == 0 and config.sample_first == 0:
            self.warn(
                "sample_rate",
                "sample_rate=0 with sample_first=0 inspects no call: data checks and the shadow never run "
                "(only per-signature plan checks do)",
            )
        elif config.sample_rate == 0 and config.max_samples_per_second is not None:
            self.warn("max_samples_per_second", "max_samples_per_second has no effect with sample_rate=0")

    def platform(self) -> None:
        arch = self.config.gfx
        if arch is not None and arch not in ARCHS_WITH_RULES:
            self.warn(
                "gfx",
                f"quantguard's arch rules cover {' and '.join(ARCHS_WITH_RULES)}; on {arch} the FP8-variant "
                "check assumes OCP e4m3fn and the CK-free ASM policy does not apply",
            )

    def telemetry(self) -> None:
        """Metrics asked for without their library: quantguard runs on without them, and says so."""
        option = "metrics_port" if self.config.metrics_port else "metrics" if self.config.metrics else None
        if option and not _installed("prometheus_client"):
            self.warn(
                option,
                "prometheus-client is not installed: no metrics are served; pip install 'quantguard[metrics]'",
            )
        directory = self.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if option and directory and not (os.path.isdir(directory) and os.access(directory, os.W_OK)):
            self.warn(
                option,
                f"PROMETHEUS_MULTIPROC_DIR={directory!r} is not a writable directory: prometheus-client's "
                "multiprocess mode needs one that exists (create it, or unset the variable for one port per rank)",
            )
        if self.config.otel and not _installed("opentelemetry.sdk"):
            self.warn(
                "otel",
                "opentelemetry-sdk is not installed: nothing goes to OpenTelemetry; pip install opentelemetry-sdk",
            )

    def logging(self) -> None:
        config = self.config
        if config.log_format == "console" and config.log not in ("stderr", "stdout", "logging"):
            self.warn(
                "log_format",
                "console rendering into a file: `quantguard report` reads JSON lines only; use log_format=json "
                "for files",
            )


def audit_config(config: Config, contract_targets: Iterable[str], environ: Mapping[str, str]) -> list[ConfigWarning]:
    """Every setting of ``config`` (and every ``QUANTGUARD_*`` variable) that cannot do what it says."""
    audit = _Audit(config, sorted(set(contract_targets)), environ)
    audit.unknown_variables()
    audit.globs()
    audit.thresholds()
    audit.compare()
    audit.switched_off()
    audit.platform()
    audit.logging()
    audit.telemetry()
    return audit.found
