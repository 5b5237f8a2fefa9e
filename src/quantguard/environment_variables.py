"""Every ``QUANTGUARD_*`` environment variable, in one place.

Like OpenTelemetry's ``environment_variables`` module: the names are constants
so that the config parser, the launcher, the bootstrap and the docs all agree.
"""

from __future__ import annotations

__all__ = [
    "QUANTGUARD_ENABLED",
    "QUANTGUARD_MODE",
    "QUANTGUARD_TARGETS",
    "QUANTGUARD_DISABLED_TARGETS",
    "QUANTGUARD_SAMPLE_RATE",
    "QUANTGUARD_SAMPLE_FIRST",
    "QUANTGUARD_MAX_SAMPLES_PER_SEC",
    "QUANTGUARD_SEED",
    "QUANTGUARD_LOG",
    "QUANTGUARD_LOG_FORMAT",
    "QUANTGUARD_LOG_VALUES",
    "QUANTGUARD_GFX",
    "QUANTGUARD_CK_FREE",
    "QUANTGUARD_ON_BLOCK",
    "QUANTGUARD_SHADOW",
    "QUANTGUARD_SHADOW_ROWS",
    "QUANTGUARD_SHADOW_FULL",
    "QUANTGUARD_SHADOW_PRECISION",
    "QUANTGUARD_THRESHOLDS",
    "QUANTGUARD_SHADOW_COMPARE",
    "QUANTGUARD_SHADOW_ALLCLOSE",
    "QUANTGUARD_E8M0_ROUNDING",
    "QUANTGUARD_RATE_LIMIT_INTERVAL",
    "QUANTGUARD_LABEL",
    "QUANTGUARD_GRAPH_CHECKS",
    "QUANTGUARD_GRAPH_PERIOD",
    "QUANTGUARD_GRAPH_SNAPSHOT_MIB",
    "QUANTGUARD_THOROUGH_INTERVAL",
    "QUANTGUARD_METRICS_PORT",
    "QUANTGUARD_METRICS",
    "QUANTGUARD_OTEL",
    "DESCRIPTIONS",
    "OTHER_VARIABLES",
]

QUANTGUARD_ENABLED = "QUANTGUARD_ENABLED"
QUANTGUARD_MODE = "QUANTGUARD_MODE"
QUANTGUARD_TARGETS = "QUANTGUARD_TARGETS"
QUANTGUARD_DISABLED_TARGETS = "QUANTGUARD_DISABLED_TARGETS"
QUANTGUARD_SAMPLE_RATE = "QUANTGUARD_SAMPLE_RATE"
QUANTGUARD_SAMPLE_FIRST = "QUANTGUARD_SAMPLE_FIRST"
QUANTGUARD_MAX_SAMPLES_PER_SEC = "QUANTGUARD_MAX_SAMPLES_PER_SEC"
QUANTGUARD_SEED = "QUANTGUARD_SEED"
QUANTGUARD_LOG = "QUANTGUARD_LOG"
QUANTGUARD_LOG_FORMAT = "QUANTGUARD_LOG_FORMAT"
QUANTGUARD_LOG_VALUES = "QUANTGUARD_LOG_VALUES"
QUANTGUARD_GFX = "QUANTGUARD_GFX"
QUANTGUARD_CK_FREE = "QUANTGUARD_CK_FREE"
QUANTGUARD_ON_BLOCK = "QUANTGUARD_ON_BLOCK"
QUANTGUARD_SHADOW = "QUANTGUARD_SHADOW"
QUANTGUARD_SHADOW_ROWS = "QUANTGUARD_SHADOW_ROWS"
QUANTGUARD_SHADOW_FULL = "QUANTGUARD_SHADOW_FULL"
QUANTGUARD_SHADOW_PRECISION = "QUANTGUARD_SHADOW_PRECISION"
QUANTGUARD_THRESHOLDS = "QUANTGUARD_THRESHOLDS"
QUANTGUARD_SHADOW_COMPARE = "QUANTGUARD_SHADOW_COMPARE"
QUANTGUARD_SHADOW_ALLCLOSE = "QUANTGUARD_SHADOW_ALLCLOSE"
QUANTGUARD_E8M0_ROUNDING = "QUANTGUARD_E8M0_ROUNDING"
QUANTGUARD_RATE_LIMIT_INTERVAL = "QUANTGUARD_RATE_LIMIT_INTERVAL"
QUANTGUARD_LABEL = "QUANTGUARD_LABEL"
QUANTGUARD_GRAPH_CHECKS = "QUANTGUARD_GRAPH_CHECKS"
QUANTGUARD_GRAPH_PERIOD = "QUANTGUARD_GRAPH_PERIOD"
QUANTGUARD_GRAPH_SNAPSHOT_MIB = "QUANTGUARD_GRAPH_SNAPSHOT_MIB"
QUANTGUARD_THOROUGH_INTERVAL = "QUANTGUARD_THOROUGH_INTERVAL"
QUANTGUARD_METRICS_PORT = "QUANTGUARD_METRICS_PORT"
QUANTGUARD_METRICS = "QUANTGUARD_METRICS"
QUANTGUARD_OTEL = "QUANTGUARD_OTEL"

#: One line per variable: what it does and what it accepts (used by ``quantguard info`` and docs).
DESCRIPTIONS: dict[str, str] = {
    QUANTGUARD_ENABLED: "1/true activates quantguard at interpreter start (no code change); 0/false or unset: off",
    QUANTGUARD_MODE: "log (default) records violations; raise also raises QuantGuardViolation",
    QUANTGUARD_TARGETS: "comma-separated globs over target paths to guard (default: *)",
    QUANTGUARD_DISABLED_TARGETS: "comma-separated globs over target paths to leave alone",
    QUANTGUARD_SAMPLE_RATE: "fraction of calls inspected after the first N per signature, 0..1 (default 0.01)",
    QUANTGUARD_SAMPLE_FIRST: "calls always inspected for each new (target, metadata signature) (default 3)",
    QUANTGUARD_MAX_SAMPLES_PER_SEC: "cap on sampled inspections per second per target (default: no cap)",
    QUANTGUARD_SEED: "integer seed for deterministic sampling",
    QUANTGUARD_LOG: "stderr (default), stdout, logging (stdlib logger 'quantguard') or a file path ({pid} and {rank} are expanded)",
    QUANTGUARD_LOG_FORMAT: "json (default) or console",
    QUANTGUARD_LOG_VALUES: "1 lets events carry tensor values (off by default: only shapes, dtypes, strides, statistics)",
    QUANTGUARD_GFX: "override arch detection, e.g. gfx942 or gfx950",
    QUANTGUARD_CK_FREE: "override CK-free detection: 1/true or 0/false",
    QUANTGUARD_ON_BLOCK: "what a blocked kernel does: raise (default), reroute (call the Triton equivalent) or log",
    QUANTGUARD_SHADOW: "1 (default) re-computes sampled calls with a reference; 0 turns shadow numerics off",
    QUANTGUARD_SHADOW_ROWS: "rows of each sampled GEMM compared with the reference (default 16)",
    QUANTGUARD_SHADOW_FULL: "1 compares whole tensors instead of a row subset",
    QUANTGUARD_SHADOW_PRECISION: "fp32 (default) or fp64 accumulation for references",
    QUANTGUARD_THRESHOLDS: "comma-separated KEY=COSINE; KEY is a format (fp8, int8, fp4, mxfp4, int4), a target glob, or TARGET_GLOB@LAYER_GLOB",
    QUANTGUARD_SHADOW_COMPARE: "how precision-matched GEMM references are compared: cosine (default), allclose or exact, for every target or as GLOB=MODE pairs (e.g. gemm_a8w8*=exact); only for bit-reproducible references",
    QUANTGUARD_SHADOW_ALLCLOSE: "allclose bounds per output dtype: DTYPE=RTOL:ATOL pairs (bf16, fp16, fp32; ATOL in units of the reference's RMS); default one rounding unit of the dtype",
    QUANTGUARD_E8M0_ROUNDING: "e8m0 rounding the model's reference expects: up, down, even or ceil; producers using another mode are flagged",
    QUANTGUARD_RATE_LIMIT_INTERVAL: "seconds between repeated events for the same (target, check, callsite) (default 10)",
    QUANTGUARD_GRAPH_CHECKS: "1 (default) records a gated snapshot of each captured GEMM into CUDA graphs and judges it after replays; 0 turns graph checks off",
    QUANTGUARD_GRAPH_PERIOD: "replays between two snapshots of one captured call (default: 1/sample_rate, i.e. 100 at 1%)",
    QUANTGUARD_GRAPH_SNAPSHOT_MIB: "device memory for graph snapshots, in MiB (default 64); call sites beyond it are reported unmonitored",
    QUANTGUARD_THOROUGH_INTERVAL: "seconds between two thorough sampled calls of one GEMM call site on CUDA (default 5); other sampled calls are light (one device snapshot, judged off the host's path); 0: every sampled call is thorough",
    QUANTGUARD_METRICS_PORT: "serve Prometheus metrics on this port plus the local rank (LOCAL_RANK, else RANK); with PROMETHEUS_MULTIPROC_DIR, local rank 0 serves every rank's on the port itself; 0 (default): off; needs the 'metrics' extra",
    QUANTGUARD_METRICS: "1 keeps Prometheus metrics without serving a port: quantguard.telemetry.metrics_text(), and with PROMETHEUS_MULTIPROC_DIR the counts go to that directory for the host's own multiprocess exporter (default 0; a metrics port turns them on too)",
    QUANTGUARD_OTEL: "1 sends events and metrics to the OpenTelemetry SDK's global providers, 0 never; unset: on when OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_LOGS_EXPORTER or OTEL_METRICS_EXPORTER is set; needs opentelemetry-sdk",
    QUANTGUARD_LABEL: "a name for this run's configuration (e.g. 'mi355x-ckfree-triton'); reports group by it",
}

#: ``QUANTGUARD_*`` variables read by quantguard's simulator and its own test harnesses, not by the
#: runtime configuration: known names, so the start-up audit does not call them typos.
OTHER_VARIABLES = (
    "QUANTGUARD_SIM_BUILD",  # quantguard.sim: head or release build of the simulated AITER
    "QUANTGUARD_THIRD_PARTY",  # tests/real_aiter: where the real AITER/ATOM trees are
    "QUANTGUARD_SCENARIO_DEVICE",  # tests/real_aiter: cpu or cuda
    "QUANTGUARD_REAL_START_TIMEOUT",  # tests/real_aiter: worker start timeout (s)
    "QUANTGUARD_REAL_CALL_TIMEOUT",  # tests/real_aiter: worker call timeout (s)
)
