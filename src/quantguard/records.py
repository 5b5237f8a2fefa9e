"""Plain records that checks, shadow references and the engine share, with no behaviour of their own.

What a producer call did to a tensor (:class:`Produced`, :class:`ProducerCall`)
and the byte fingerprints that tie a weight to the scale loaded with it. The
stores that keep them (:mod:`quantguard.engine.provenance`) live in the
engine; checks read the records only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ProducerCall", "Produced", "fingerprint", "WEIGHT_SAMPLE", "SCALE_SAMPLE"]

#: Elements of a weight / a scale read into its fingerprint (evenly spaced; all when fewer).
WEIGHT_SAMPLE = 4096
SCALE_SAMPLE = 1 << 16


@dataclass(frozen=True)
class ProducerCall:
    """One producer call: what it was and where it came from.  Its outputs share ``pair_id``."""

    pair_id: int
    producer: str
    index: int
    callsite: str = ""

    def describe(self) -> str:
        where = f" at {self.callsite}" if self.callsite else ""
        return f"{self.producer} call #{self.index}{where}"

    def as_dict(self) -> dict[str, Any]:
        return {"producer": self.producer, "call": self.index, "callsite": self.callsite, "pair": self.pair_id}


@dataclass
class Produced:
    """What one producer call did to one tensor."""

    producer: str  # target path of the producing call
    role: str  # "scales", "quantized", "weight"
    requested_layout: str | None  # layout the caller asked for (e.g. "transposed")
    request: str = ""  # how it was asked ("transpose_scale=True")
    written_layout: str | None = None  # set once the producer's scales were checked
    attributes: dict[str, Any] = field(default_factory=dict)
    created: float = field(default_factory=time.monotonic)
    call: ProducerCall | None = None  # the producer call (shared by its quantized output and scales)


def fingerprint(tensor: Any, sample: int) -> Any:
    """A small int64 tensor summarizing ``tensor``'s bytes: element sum and position-weighted sum.

    Up to ``sample`` evenly spaced elements (all of them when fewer), read in
    integer form so equal bytes give equal fingerprints on every device.
    Enqueued only: nothing is read back here.
    """
    import torch  # here, not at the top: importing quantguard must not import torch

    from quantguard.numerics.formats import raw_bits

    try:
        integers = raw_bits(tensor.detach())
    except ValueError:
        return None
    numel = integers.numel()
    if numel <= sample:
        index = torch.arange(numel, device=integers.device)
    else:
        index = torch.linspace(0, numel - 1, sample, device=integers.device).long()
    values = torch.take(integers, index).to(torch.int64)
    weights = index % 251 + 1
    return torch.stack([values.sum(), (values * weights).sum(), torch.tensor(numel, device=values.device)])
