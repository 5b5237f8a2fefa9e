"""``quantguard.scan_weights``: the weight scan of a loaded model, reported through the running quantguard.

The scan itself is generic (:func:`quantguard.checks.weights.scan_tensors`);
this module ties it to the runtime: the model's weight/scale pairs are
registered for ``scale_pairing`` and findings are reported as violations when
quantguard is enabled.
"""

from __future__ import annotations

import torch

from quantguard.checks.base import Finding
from quantguard.checks.weights import register_weight_pairs, scan_tensors

__all__ = ["scan_weights"]


def scan_weights(model: torch.nn.Module, report: bool = True) -> list[Finding]:
    """Scan every parameter and buffer of ``model``; report violations if quantguard is enabled.

    When quantguard is enabled, the model's weight/scale pairs are registered
    too (``scale_pairing`` holds GEMMs to them).
    """
    from quantguard.engine.callsite import find_callsite
    from quantguard.engine.lifecycle import current_runtime
    from quantguard.reentrancy import suppressed

    with suppressed(), torch.no_grad():
        named = list(model.named_parameters()) + list(model.named_buffers())
        findings = scan_tensors(named)
    runtime = current_runtime()
    if runtime is not None:
        with suppressed():
            register_weight_pairs(runtime.provenance, named)
    if report and runtime is not None:
        callsite = find_callsite(2)
        for finding in findings:
            runtime.reporter.violation("quantguard.scan_weights", finding, callsite, {"model": type(model).__name__})
    return findings
