"""The gate: what makes a run fail, and the exit codes CI reads.

A run fails on any error-severity violation, any blocked kernel (even a
rerouted one: the selection that reached it is still wrong), any failed
shadow comparison and any internal error.  Warnings are reported but do
not fail.  A log with no events at all is its own code: a CI job whose
quantguard never enabled must not pass silently.  Nor does a log that was cut
short (a full disk, a killed writer): it cannot pass, since the lost part
could have held a failure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from quantguard.report._fields import as_float
from quantguard.report.records import Report

__all__ = ["EXIT_PASS", "EXIT_FAIL", "EXIT_USAGE", "EXIT_NO_EVENTS", "exit_code", "shadow_failed"]

#: Every configuration passed.
EXIT_PASS = 0
#: Something failed (see the module docstring for what counts).
EXIT_FAIL = 1
#: Bad arguments, or a log (or the output) that could not be read (written), or a log cut short
#: (truncated, or ending in a partial line): what is missing could have held a failure.
EXIT_USAGE = 2
#: The logs were readable but held no quantguard event.
EXIT_NO_EVENTS = 3


def shadow_failed(event: Mapping[str, Any]) -> bool:
    """A shadow result fails when ``passed`` is false or its cosine is below ``threshold`` (or NaN)."""
    if event.get("passed") is False:
        return True
    cosine = as_float(event.get("cosine"))
    if cosine is None:
        return False
    if math.isnan(cosine):
        return True
    threshold = as_float(event.get("threshold"))
    return threshold is not None and cosine < threshold


def exit_code(report: Report) -> int:
    if not report.events:
        return EXIT_NO_EVENTS
    if report.failing:
        return EXIT_FAIL
    return EXIT_USAGE if any(stats.truncated for stats in report.files) else EXIT_PASS
