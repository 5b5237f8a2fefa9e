"""What a guarded producer wrote into memory, remembered weakly until a consumer reads it.

Strides do not reveal a scale's layout: ``per_group_quant_hip(transpose_scale=True)``
returns a contiguous ``(M, G)`` tensor whose bytes are ``(G, M)``.  Only the
producer knows.  So a guarded quant call records, for the tensors it wrote,
the layout it was asked for (and, once checked, the layout it actually wrote)
and which call wrote them (a pair id shared by its quantized output and its
scales); a guarded GEMM consuming that memory compares it with what the
kernel reads and checks that its activation and its scale come from one call.

Records are byte-level: keyed by the tensor's untyped storage, with the byte
offset and byte extent written.  Any tensor over those bytes matches —
``.view``, ``.t()``, ``reshape``, ``as_strided``, ``.view(dtype)`` — because
it has the same storage and lies within the range.  A record is valid while
its storage is alive (a weak reference to the storage object: a freed and
reused address is another storage) and while the version counter of the
recorded tensor's base is unchanged: views share it, so an in-place write
through any of them ends the record.  (A ``.data`` alias has a counter of its
own; writes through it are invisible here, which is why weight scales are also
fingerprinted by :class:`WeightPairs`.)

Entries are few (only inspected producer calls record), expire after a
while, and are *spent* once a consumer read them: a spent record no longer
makes guards take the slow path (``live`` counts unspent ones) but can still
be found by a consumer that asks for it (pairing).

:class:`WeightPairs` remembers which weight and which scale were loaded
together (by the weight scan after ``process_weights_after_loading``, or
``quantguard.scan_weights``), with the same byte-level keys and a small
fingerprint of each; it never makes a guard take the slow path: pairs are
checked on sampled GEMM calls.
"""

from __future__ import annotations

import itertools
import threading
import time
import weakref
from typing import Any

from quantguard.records import SCALE_SAMPLE, WEIGHT_SAMPLE, Produced, ProducerCall, fingerprint

__all__ = ["Produced", "ProducerCall", "ProvenanceStore", "WeightPair", "WeightPairs", "byte_range", "fingerprint"]

_MAX_ENTRIES = 1024
_MAX_PER_STORAGE = 64
_TTL_SECONDS = 30.0
_MAX_WEIGHT_PAIRS = 1 << 16
#: Elements of a weight read for its fingerprint (scales are read whole up to ``SCALE_SAMPLE``).


def byte_range(tensor: Any) -> tuple[Any, int, int, int] | None:
    """``(storage, storage data_ptr, byte offset, byte extent)`` of the bytes ``tensor`` reads, or None.

    The extent spans the lowest to the highest byte any element touches
    (non-negative strides), so every view over the same bytes has the same
    range and a slice a sub-range.
    """
    try:
        storage = tensor.untyped_storage()
        address = storage.data_ptr()
        size = tensor.element_size()
        elements = 1
        for extent, stride in zip(tensor.shape, tensor.stride()):
            if extent == 0:
                return None
            elements += (extent - 1) * abs(stride)
        return storage, address, tensor.storage_offset() * size, elements * size
    except Exception:
        return None


def _base(tensor: Any) -> Any:
    base = getattr(tensor, "_base", None)
    return tensor if base is None else base


class _Entry:
    __slots__ = ("storage", "ref", "start", "stop", "version", "produced", "spent")

    def __init__(self, storage: Any, ref: Any, start: int, stop: int, version: int, produced: Any) -> None:
        self.storage = storage  # weak reference to the untyped storage
        self.ref = ref  # weak reference to the recorded tensor's base (its version counter)
        self.start = start
        self.stop = stop
        self.version = version
        self.produced = produced
        self.spent = False

    def alive(self) -> bool:
        return self.storage() is not None and self.ref() is not None

    def intact(self) -> bool:
        """Storage alive, still the anchor's storage, and no in-place write through the anchor or its views."""
        storage, anchor = self.storage(), self.ref()
        if storage is None or anchor is None:
            return False
        try:
            return anchor._version == self.version and anchor.untyped_storage() is storage
        except Exception:
            return False

    def covers(self, storage: Any, start: int, stop: int, same_start: bool) -> bool:
        if self.storage() is not storage:
            return False
        if same_start:
            return start == self.start and stop <= self.stop
        return self.start <= start and stop <= self.stop

    def shares_counter(self, tensor: Any) -> bool:
        anchor = self.ref()
        return anchor is not None and (tensor is anchor or getattr(tensor, "_base", None) is anchor)


def _anchor(tensor: Any, store_ref: Any, address: int) -> tuple[Any, Any, int] | None:
    """Weak references to ``tensor``'s storage and base (both drop the record when they die), its version."""

    def forget(_: Any, address: int = address) -> None:
        store = store_ref()
        if store is not None:
            store._discard_dead(address)

    base = _base(tensor)
    try:
        return weakref.ref(tensor.untyped_storage(), forget), weakref.ref(base, forget), base._version
    except TypeError:
        return None


class ProvenanceStore:
    __slots__ = ("_entries", "_lock", "_pairs", "live", "weights", "__weakref__")

    def __init__(self) -> None:
        self._entries: dict[int, list[_Entry]] = {}
        self._lock = threading.Lock()
        self._pairs = itertools.count(1)
        #: Number of unspent entries; guards that consume provenance take the slow path while > 0.
        self.live = 0
        #: Weights and the scales loaded with them (never counted in ``live``).
        self.weights = WeightPairs()

    def new_call(self, producer: str, index: int, callsite: str = "") -> ProducerCall:
        """A fresh pair id for one producer call; its quantized output and scales are recorded with it."""
        return ProducerCall(next(self._pairs), producer, index, callsite)

    def record(self, tensor: Any, produced: Produced) -> None:
        found = byte_range(tensor)
        if found is None or found[1] == 0:
            return
        storage, address, start, extent = found
        anchors = _anchor(tensor, weakref.ref(self), address)
        if anchors is None:
            return
        storage_ref, base_ref, version = anchors
        stop = start + extent
        with self._lock:
            self._expire_locked()
            bucket = self._entries.setdefault(address, [])
            # the same kind of output rewritten over these bytes replaces what was there
            bucket[:] = [
                e
                for e in bucket
                if e.alive() and not (e.produced.role == produced.role and e.start < stop and start < e.stop)
            ]
            bucket.append(_Entry(storage_ref, base_ref, start, stop, version, produced))
            del bucket[:-_MAX_PER_STORAGE]
            self._recount_locked()

    def lookup(self, tensor: Any, consume: bool = False, within: bool = False, spent: bool = False) -> Produced | None:
        """The record for the bytes ``tensor`` reads, if still valid.

        By default ``tensor`` must start where the record starts (layouts are
        compared from there); ``within=True`` accepts any sub-range (a slice of
        the produced tensor).  ``consume`` marks the record spent; ``spent``
        also finds spent records.
        """
        if tensor is None or not (self.live or spent):
            return None
        found = byte_range(tensor)
        if found is None:
            return None
        storage, address, start, extent = found
        with self._lock:
            bucket = self._entries.get(address)
            if not bucket:
                return None
            for entry in reversed(bucket):
                if (entry.spent and not spent) or not entry.covers(storage, start, start + extent, not within):
                    continue
                if not entry.intact():
                    continue
                if entry.shares_counter(tensor) and tensor._version != entry.version:
                    continue
                if consume and not entry.spent:
                    entry.spent = True
                    self._recount_locked()
                return entry.produced
        return None

    def _discard_dead(self, address: int) -> None:
        with self._lock:
            bucket = self._entries.get(address)
            if bucket is not None:
                bucket[:] = [e for e in bucket if e.alive()]
                if not bucket:
                    del self._entries[address]
            self._recount_locked()

    def _expire_locked(self) -> None:
        now = time.monotonic()
        if len(self._entries) < _MAX_ENTRIES and not any(
            now - e.produced.created > _TTL_SECONDS for b in self._entries.values() for e in b[:1]
        ):
            return
        for address in list(self._entries):
            bucket = [e for e in self._entries[address] if e.alive() and now - e.produced.created <= _TTL_SECONDS]
            if bucket:
                self._entries[address] = bucket
            else:
                del self._entries[address]
        while len(self._entries) >= _MAX_ENTRIES:
            self._entries.pop(next(iter(self._entries)))

    def _recount_locked(self) -> None:
        self.live = sum(1 for bucket in self._entries.values() for e in bucket if not e.spent)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.live = 0
        self.weights.clear()

    def after_fork(self) -> None:
        self._lock = threading.Lock()
        self.weights.after_fork()


# -- weights and their scales ----------------------------------------------------------------------


class WeightPair:
    """A weight and the scale loaded with it, as registered (names, byte ranges, fingerprints)."""

    __slots__ = (
        "layer",
        "weight_name",
        "scale_name",
        "weight",
        "scale",
        "weight_print",
        "scale_print",
        "experts",
        "__weakref__",
    )

    def __init__(self, layer: str, weight_name: str, scale_name: str) -> None:
        self.layer = layer
        self.weight_name = weight_name
        self.scale_name = scale_name
        self.weight: _Entry | None = None
        self.scale: _Entry | None = None
        self.weight_print: Any = None
        self.scale_print: Any = None
        self.experts = 0  # leading (E, ...) dim shared by weight and scale (MoE), else 0

    def describe(self, role: str = "weight") -> str:
        return f"{self.layer}.{self.weight_name if role == 'weight' else self.scale_name}"

    def weight_tensor(self) -> Any:
        return None if self.weight is None else self.weight.ref()

    def scale_tensor(self) -> Any:
        return None if self.scale is None else self.scale.ref()

    def weight_replaced(self) -> bool:
        """The registered weight tensor no longer holds the registered bytes (new storage, written, freed)."""
        return self.weight is None or not self.weight.intact()

    def scale_replaced(self) -> bool:
        return self.scale is None or not self.scale.intact()

    def expert_of(self, role: str, start: int, stop: int) -> int | None:
        """Which expert (leading-dim slice) of the registered tensor the byte range lies in, if exactly one."""
        entry = self.weight if role == "weight" else self.scale
        if not self.experts or entry is None:
            return None
        step = (entry.stop - entry.start) // self.experts
        if step <= 0 or stop - start > step:
            return None
        first = (start - entry.start) // step
        return first if (stop - 1 - entry.start) // step == first else None


class WeightPairs:
    """Registered (weight, scale) pairs, found by the bytes a GEMM is handed."""

    __slots__ = ("_by_storage", "_by_name", "_lock", "attached", "__weakref__")

    def __init__(self) -> None:
        self._by_storage: dict[int, list[tuple[str, WeightPair]]] = {}
        self._by_name: dict[tuple[str, str], WeightPair] = {}
        self._lock = threading.Lock()
        #: ids of the ``quantguard.attach`` handles whose models were registered
        self.attached: set[int] = set()

    def __len__(self) -> int:
        return len(self._by_name)

    def register(self, weight: Any, scale: Any, layer: str, weight_name: str, scale_name: str) -> WeightPair | None:
        """Remember that ``scale`` was loaded with ``weight`` (replacing what was registered for either)."""
        weight_range, scale_range = byte_range(weight), byte_range(scale)
        if weight_range is None or scale_range is None or not weight_range[1] or not scale_range[1]:
            return None
        pair = WeightPair(layer, weight_name, scale_name)
        store_ref = weakref.ref(self)
        entries = []
        for tensor, (storage, address, start, extent) in ((weight, weight_range), (scale, scale_range)):

            def forget(_: Any, address: int = address) -> None:
                pairs = store_ref()
                if pairs is not None:
                    pairs._discard_dead(address)

            try:
                base = _base(tensor)
                entry = _Entry(
                    weakref.ref(storage, forget), weakref.ref(base, forget), start, start + extent, base._version, pair
                )
            except TypeError:
                return None
            entries.append((address, entry))
        pair.weight, pair.scale = entries[0][1], entries[1][1]
        if weight.dim() >= 3 and scale.dim() >= 3 and weight.shape[0] == scale.shape[0] > 1:
            pair.experts = int(weight.shape[0])
        pair.weight_print = fingerprint(weight, WEIGHT_SAMPLE)
        pair.scale_print = fingerprint(scale, SCALE_SAMPLE)
        with self._lock:
            self._unregister_locked(self._by_name.get((layer, weight_name)))
            for (address, entry), role in zip(entries, ("weight", "scale")):
                for other_role, other in list(self._by_storage.get(address, ())):
                    held = other.weight if other_role == "weight" else other.scale
                    if (
                        other_role == role
                        and held is not None
                        and held.storage() is entry.storage()
                        and held.start < entry.stop
                        and entry.start < held.stop
                    ):
                        self._unregister_locked(other)
            for (address, _entry), role in zip(entries, ("weight", "scale")):
                self._by_storage.setdefault(address, []).append((role, pair))
            self._by_name[(layer, weight_name)] = pair
            if len(self._by_name) > _MAX_WEIGHT_PAIRS:
                self._unregister_locked(next(iter(self._by_name.values())))
        return pair

    def find(self, tensor: Any, role: str) -> list[tuple[WeightPair, int, int]]:
        """Pairs whose ``role`` tensor (``"weight"`` or ``"scale"``) holds the bytes ``tensor`` reads.

        Each comes with the byte range read; a pair whose registered tensor no
        longer holds the storage (replaced ``.data``) does not match.
        """
        if tensor is None or not self._by_name:
            return []
        found = byte_range(tensor)
        if found is None:
            return []
        storage, address, start, extent = found
        matches = []
        with self._lock:
            for held_role, pair in self._by_storage.get(address, ()):
                entry = pair.weight if held_role == "weight" else pair.scale
                if held_role == role and entry is not None and entry.covers(storage, start, start + extent, False):
                    matches.append((pair, start, start + extent))
        return matches

    def _unregister_locked(self, pair: WeightPair | None) -> None:
        if pair is None:
            return
        if self._by_name.get((pair.layer, pair.weight_name)) is pair:
            del self._by_name[(pair.layer, pair.weight_name)]
        for address in list(self._by_storage):
            bucket = [item for item in self._by_storage[address] if item[1] is not pair]
            if bucket:
                self._by_storage[address] = bucket
            else:
                del self._by_storage[address]

    def _discard_dead(self, address: int) -> None:
        """Storage freed: drop its side; a pair stays findable by the side still alive (its partner is gone)."""
        with self._lock:
            bucket = self._by_storage.get(address, [])
            for _role, pair in list(bucket):
                if pair.weight.storage() is None and pair.scale.storage() is None:
                    self._unregister_locked(pair)
            remaining = [
                (role, pair)
                for role, pair in self._by_storage.get(address, ())
                if (pair.weight if role == "weight" else pair.scale).storage() is not None
            ]
            if remaining:
                self._by_storage[address] = remaining
            else:
                self._by_storage.pop(address, None)

    def clear(self) -> None:
        with self._lock:
            self._by_storage.clear()
            self._by_name.clear()
            self.attached.clear()

    def after_fork(self) -> None:
        self._lock = threading.Lock()
