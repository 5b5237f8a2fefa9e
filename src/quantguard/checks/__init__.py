"""Generic checks: small uniform callables that know nothing about AITER's names.

Importing this package registers every built-in check; contracts refer to
them by name.  See :mod:`quantguard.checks.base` for the phases.
"""

from quantguard.checks import (  # noqa: F401
    backend_policy,
    backend_selection,
    fp8_normalization,
    fp8_variant,
    gemm_numerics,
    ignored_parameters,
    jit_exit,
    kwarg_honored,
    moe_numerics,
    nonfinite,
    noop_transform,
    pairing,
    provenance_record,
    quant_numerics,
    requant,
    routing,
    scale_plausibility,
    scale_provenance,
    scale_tensors,
    scale_values,
    weight_scales,
    weights,
)
from quantguard.checks.base import (
    AroundCheck,
    Check,
    DataCheck,
    Finding,
    Measurement,
    PlanCheck,
    ScanCheck,
    get_check,
    register_check,
    registered_checks,
)

__all__ = [
    "Check",
    "PlanCheck",
    "DataCheck",
    "AroundCheck",
    "ScanCheck",
    "Finding",
    "Measurement",
    "register_check",
    "get_check",
    "registered_checks",
]
