"""What a guarded producer wrote into a tensor, remembered weakly until a consumer reads it.

Strides do not reveal a scale's layout: ``per_group_quant_hip(transpose_scale=True)``
returns a contiguous ``(M, G)`` tensor whose bytes are ``(G, M)``.  Only the
producer knows.  So a guarded quant call records, for the tensors it wrote,
the layout it was asked for (and, once checked, the layout it actually wrote);
a guarded GEMM consuming that memory compares it with what the kernel reads.

Entries are keyed by the tensor's data pointer and validated by a weak
reference to the producing tensor, or to its base when it is a view (dead →
memory may be reused → no match), and its version counter (an in-place write after production invalidates the
record).  Views that start at the same address (``.view``, ``.t()``,
``reshape``) share both, so they match.  Entries are few (only inspected
producer calls record), expire after a while, and are dropped once consumed.
"""

from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Produced", "ProvenanceStore"]

_MAX_ENTRIES = 1024
_TTL_SECONDS = 30.0


@dataclass
class Produced:
    """What one producer call did to one tensor."""

    producer: str                 # target path of the producing call
    role: str                     # "scales", "quantized", "weight"
    requested_layout: str | None  # layout the caller asked for (e.g. "transposed")
    request: str = ""             # how it was asked ("transpose_scale=True")
    written_layout: str | None = None   # set once the producer's scales were checked
    attributes: dict[str, Any] = field(default_factory=dict)
    created: float = field(default_factory=time.monotonic)


class _Entry:
    __slots__ = ("ref", "version", "produced")

    def __init__(self, ref: Any, version: int, produced: Produced) -> None:
        self.ref = ref
        self.version = version
        self.produced = produced


class ProvenanceStore:
    __slots__ = ("_entries", "_lock", "live", "__weakref__")

    def __init__(self) -> None:
        self._entries: dict[int, list[_Entry]] = {}
        self._lock = threading.Lock()
        #: Number of live entries; guards that consume provenance take the slow path while > 0.
        self.live = 0

    def record(self, tensor: Any, produced: Produced) -> None:
        try:
            address = tensor.data_ptr()
            version = tensor._version
        except Exception:
            return
        if address == 0:
            return
        store_ref = weakref.ref(self)

        def forget(_: Any, address: int = address) -> None:
            store = store_ref()
            if store is not None:
                store._discard_dead(address)

        # A view (a reshape made for checking) dies at once; its base lives as long as any view of it.
        anchor = getattr(tensor, "_base", None)
        try:
            ref = weakref.ref(tensor if anchor is None else anchor, forget)
        except TypeError:
            return
        with self._lock:
            self._expire_locked()
            bucket = self._entries.setdefault(address, [])
            bucket[:] = [e for e in bucket if e.ref() is not None and e.produced.role != produced.role]
            bucket.append(_Entry(ref, version, produced))
            self._recount_locked()

    def lookup(self, tensor: Any, consume: bool = False) -> Produced | None:
        """The record for memory ``tensor`` starts at, if still valid."""
        if not self.live or tensor is None:
            return None
        try:
            address = tensor.data_ptr()
            version = tensor._version
        except Exception:
            return None
        with self._lock:
            bucket = self._entries.get(address)
            if not bucket:
                return None
            for entry in reversed(bucket):
                source = entry.ref()
                if source is None or source._version != version or entry.version != version:
                    continue
                if consume:
                    bucket.remove(entry)
                    self._recount_locked()
                return entry.produced
        return None

    def _discard_dead(self, address: int) -> None:
        with self._lock:
            bucket = self._entries.get(address)
            if bucket is not None:
                bucket[:] = [e for e in bucket if e.ref() is not None]
                if not bucket:
                    del self._entries[address]
            self._recount_locked()

    def _expire_locked(self) -> None:
        now = time.monotonic()
        if len(self._entries) < _MAX_ENTRIES and not any(
                now - e.produced.created > _TTL_SECONDS for b in self._entries.values() for e in b[:1]):
            return
        for address in list(self._entries):
            bucket = [e for e in self._entries[address]
                      if e.ref() is not None and now - e.produced.created <= _TTL_SECONDS]
            if bucket:
                self._entries[address] = bucket
            else:
                del self._entries[address]
        while len(self._entries) >= _MAX_ENTRIES:
            self._entries.pop(next(iter(self._entries)))

    def _recount_locked(self) -> None:
        self.live = sum(len(bucket) for bucket in self._entries.values())

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.live = 0

    def after_fork(self) -> None:
        self._lock = threading.Lock()
