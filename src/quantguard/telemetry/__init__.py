"""Production metrics: Prometheus and OpenTelemetry views of quantguard's own counters.

Off by default, and then nothing of it runs and neither ``prometheus_client``
nor ``opentelemetry`` is imported.  When on (``metrics_port``, ``otel``), the
guards are unchanged: counters are read from the runtime's stats when scraped
or collected, and one event listener fills the shadow histograms (see
``docs/metrics.md``).  :func:`start` and :func:`stop` are called by
``quantguard.enable()`` / ``disable()``; they never raise into the host.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Mapping
from typing import Any

from quantguard.telemetry._series import METRIC_NAMES
from quantguard.telemetry._tap import EventTap

__all__ = ["METRIC_NAMES", "start", "stop", "flush", "metrics_text", "otel_wanted", "serving_port"]

#: ``OTEL_*`` variables that mean "this process exports OpenTelemetry" (value ``none`` excepted).
_OTEL_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_LOGS_EXPORTER", "OTEL_METRICS_EXPORTER")

_lock = threading.Lock()
_tap: EventTap | None = None
_prometheus: Any = None
_otel: Any = None


def otel_wanted(setting: bool | None, environ: Mapping[str, str]) -> bool:
    """``otel`` on, or left to auto and an ``OTEL_*`` exporter variable is set."""
    if setting is not None:
        return setting
    return any(environ.get(name, "").strip().lower() not in ("", "none") for name in _OTEL_VARIABLES)


def serving_port(port: int, environ: Mapping[str, str], shared_directory: bool = False) -> int:
    """The port this process serves (0: none).

    Each rank of a host serves its own counts on ``port`` plus its local rank.
    With a multiprocess directory every rank's counts are in the directory, so
    local rank 0 alone serves them all, on ``port`` itself.
    """
    if not port:
        return 0
    rank_text = (environ.get("LOCAL_RANK") or environ.get("RANK") or "0").strip()
    rank = int(rank_text) if rank_text.isdigit() else 0
    if shared_directory:
        return port if rank == 0 else 0
    return port + rank


def _available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def start(runtime: Any) -> None:
    """Bring metrics in line with ``runtime.config`` (first enable or reconfigure); never raises."""
    global _tap, _prometheus, _otel
    config = runtime.config
    want_otel = otel_wanted(config.otel, os.environ) and _available("opentelemetry.sdk")
    # a missing library: see config_audit
    want_prometheus = bool(config.metrics_port or config.metrics) and _available("prometheus_client")
    with _lock:
        try:
            if not (want_prometheus or want_otel or _prometheus is not None or _otel is not None):
                return
            if _tap is None:
                _tap = EventTap()
                _tap.install()
            _tap.attach(runtime.reporter)
            if want_prometheus and _prometheus is None:
                from quantguard.telemetry.prometheus import PrometheusMetrics, multiprocess_directory

                _prometheus = PrometheusMetrics(runtime, _tap, multiprocess_directory())
            elif not want_prometheus and _prometheus is not None:
                _prometheus.close()
                _prometheus = None
            if _prometheus is not None:
                _prometheus.runtime = runtime
                _prometheus.serve(serving_port(config.metrics_port, os.environ, _prometheus.directory is not None))
            if want_otel and _otel is None:
                from quantguard.telemetry.otel import OtelBridge

                _otel = OtelBridge.open(runtime, _tap)
            elif not want_otel and _otel is not None:
                _otel.close()
                _otel = None
            if _otel is not None:
                _otel.runtime = runtime
        except Exception as exc:  # a busy port or a broken library: run on without it
            from quantguard.engine.reporter import emit_internal_error

            emit_internal_error("quantguard.telemetry", "metrics", exc)


def stop() -> None:
    """Stop serving and listening (``disable()``); never raises."""
    global _tap, _prometheus, _otel
    with _lock:
        for part in (_prometheus, _otel):
            if part is not None:
                try:
                    part.close()
                except Exception:
                    pass
        if _tap is not None:
            _tap.uninstall()
        _tap = _prometheus = _otel = None


def flush() -> None:
    """Write pending counts to prometheus-client's multiprocess directory (exit, SIGTERM); never raises."""
    prometheus = _prometheus
    if prometheus is not None:
        try:
            prometheus.flush()
        except Exception:
            pass


def metrics_text() -> str:
    """The Prometheus exposition text of the enabled runtime ('' when Prometheus metrics are off).

    In multiprocess mode it is the aggregate of every process writing to the directory.
    """
    prometheus = _prometheus
    return prometheus.text() if prometheus is not None else ""
