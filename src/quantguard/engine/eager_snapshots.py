"""Light eager samples: a sampled GEMM call judged from one device snapshot, off the host's path.

A thorough sampled call runs every data check of its contract (whole scale
tensors, provenance, weight scales, the fused reference): ~40 small kernels
and ~1 ms of host time, which a launch-bound decode loop feels even at 1%
sampling.  Most sampled calls do not need all of it: the whole-tensor checks
look at weights (checked once per version) and at properties that do not
change from one call to the next.  So on CUDA, a sampled GEMM call is
*light* unless its call site had no thorough sample for ``thorough_interval``
seconds (and the first ``sample_first`` calls of every signature are always
thorough):

1. right after the kernel, the graph-snapshot kernel
   (:func:`~quantguard.shadow.graph_snapshot.launch_snapshot`, ungated)
   copies 4 rows of x, one 16-column block of W, their scales and the 4 x 16
   outputs into a slot of a device ring; the rows and the column block move
   on at every sample of the call site (a per-site device counter);
2. one device→host copy of the slot into a pinned ring (same stream, no
   sync) and an event;
3. the drainer judges every completed slot, in batches of one layout, with
   the precision-matched reference on the CPU and ``GemmNumerics.judge``:
   the same verdicts and events as a thorough sample (``snapshot: true``).

One launch and two small copies on the host's stream; nothing waits.  When
the ring is full (the drainer is behind), the sample is skipped and counted,
never blocking.  A call the snapshot cannot cover (a bias, an unsupported
layout) falls back to the thorough path and is remembered.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from quantguard._fork import abandon

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.calls import CallRecord
    from quantguard.engine.guard import GuardState
    from quantguard.engine.runtime import Runtime
    from quantguard.shadow.graph_snapshot import SnapshotLayout

__all__ = ["EagerSnapshots", "RING_BYTES"]

#: Device ring (and its pinned host twin) for light samples in flight: ~100 slots at K = 7168.
RING_BYTES = 16 << 20
#: Per device: (device ring, pinned host ring, allocator).  Process-wide and never freed: pinning
#: 16 MiB costs milliseconds, paid once per process, not at every ``enable()``.
_RINGS: dict[Any, tuple[Any, Any, _Ring]] = {}
_RINGS_LOCK = threading.Lock()
_ALIGN = 256
#: Samples waiting for the drainer beyond which new ones are skipped (before any work is done).
_MAX_PENDING = 128
#: The drainer waits this long before judging, so samples arriving meanwhile are judged in the same batch.
_GATHER_SECONDS = 0.005
_UNFIT = "eager_snapshots.unfit"
_COUNTER = "eager_snapshots.counter"
_THOROUGH_AT = "eager_snapshots.thorough_at"


@dataclass
class _Pending:
    state: GuardState
    record: CallRecord
    check: Any
    layout: SnapshotLayout
    ring: _Ring
    host: Any  # this sample's slot in the pinned host ring
    start: int
    end: int
    event: Any


class _Ring:
    """Byte ranges of a fixed buffer handed out in order and given back (mostly) in order."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.head = 0
        self.live: collections.deque[tuple[int, int]] = collections.deque()

    def take(self, length: int) -> tuple[int, int] | None:
        """``(start, end)`` of a free range of at least ``length`` bytes (aligned), or None when full."""
        length = -(-length // _ALIGN) * _ALIGN
        if length > self.size:
            return None
        if not self.live:
            start = 0
        else:
            tail = self.live[0][0]
            if self.head > tail:  # in use: [tail, head); free: [head, size) then [0, tail)
                start = self.head if self.head + length <= self.size else (0 if length <= tail else None)
            else:  # wrapped: in use [tail, size) and [0, head); free: [head, tail)
                start = self.head if self.head + length <= tail else None
            if start is None:
                return None
        self.head = start + length
        self.live.append((start, start + length))
        return start, start + length

    def give_back(self, start: int, end: int) -> None:
        try:
            self.live.remove((start, end))
        except ValueError:
            pass


class EagerSnapshots:
    """Decides light vs thorough for sampled calls, launches light samples and judges them on the drainer."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        #: Tests on a CPU set this (with the Triton interpreter); otherwise only CUDA calls are light.
        self.allow_cpu = False
        self._lock = _RINGS_LOCK  # one lock: rings are shared by every runtime of the process
        self._pending: collections.deque[_Pending] = collections.deque()
        self._drain_queued = False
        self.stats = {"light": 0, "thorough": 0, "judged": 0, "skipped": 0, "unfit": 0, "judge_seconds": 0.0}

    # -- deciding ------------------------------------------------------------------------
    def _eligible(self, state: GuardState, record: CallRecord) -> bool:
        """A GEMM call site whose sampled calls may be light: shadow numerics on, CUDA (and Triton) there."""
        config = self.runtime.config
        if config.thorough_interval <= 0 or not config.shadow:
            return False
        if state.data_check("gemm_numerics") is None:
            return False
        from quantguard.engine.inspection import tensor_device
        from quantguard.shadow.triton_kernels import available

        device = tensor_device(record)
        return (
            device is not None
            and (device.type == "cuda" or (self.allow_cpu and device.type == "cpu"))
            and available(device)
        )

    def wanted(self, state: GuardState, key: Any, record: CallRecord) -> bool:
        """Whether this sampled call (past its signature's first calls) is light; else it is thorough."""
        memo = state.memo
        if key in memo.get(_UNFIT, ()) or not self._eligible(state, record):
            return False
        now = time.monotonic()
        last = memo.get(_THOROUGH_AT)
        if last is None or now - last >= self.runtime.config.thorough_interval:
            memo[_THOROUGH_AT] = now
            self.stats["thorough"] += 1
            return False
        return True

    def note_thorough(self, state: GuardState, record: CallRecord) -> None:
        """A signature's first calls are thorough: where light samples apply, the interval starts now."""
        if self._eligible(state, record):
            state.memo[_THOROUGH_AT] = time.monotonic()
            self.stats["thorough"] += 1

    # -- sampling ------------------------------------------------------------------------
    def sample(self, state: GuardState, key: Any, record: CallRecord, result: Any) -> bool:
        """Enqueue the light sample of a call that just ran; ``False``: it cannot be snapshotted (run thorough)."""
        if len(self._pending) >= _MAX_PENDING:  # the drainer is behind: skip, cheaply
            self.stats["skipped"] += 1
            return True
        import torch

        from quantguard.checks.gemm_numerics import _out_2d
        from quantguard.contracts.views import GemmView
        from quantguard.shadow.graph_snapshot import launch_snapshot, plan_snapshot

        record.result = result
        record.reset_view()
        view = record.view
        out = _out_2d(view) if isinstance(view, GemmView) and view.w is not None else None
        layout = plan_snapshot(view, out) if out is not None else "no GEMM output"
        if isinstance(layout, str):
            state.memo.setdefault(_UNFIT, set()).add(key)
            self.stats["unfit"] += 1
            return False
        check = state.data_check("gemm_numerics")
        device = out.device
        with self._lock:
            ring = _RINGS.get(device)
            if ring is None:
                ring = _RINGS[device] = (
                    torch.empty(RING_BYTES, dtype=torch.uint8, device=device),
                    torch.empty(RING_BYTES, dtype=torch.uint8, pin_memory=device.type == "cuda"),
                    _Ring(RING_BYTES),
                )
            taken = ring[2].take(layout.size)
        if taken is None:
            self.stats["skipped"] += 1
            return True
        start, taken_end = taken
        counter = state.memo.get(_COUNTER)
        if counter is None or counter.device != device:
            counter = state.memo[_COUNTER] = torch.zeros(1, dtype=torch.int64, device=device)
        end = start + layout.size
        try:
            launch_snapshot(layout, ring[0][start:end], 1, 0, counter=counter)
            ring[1][start:end].copy_(ring[0][start:end], non_blocking=True)
            event = None
            if device.type == "cuda":
                event = torch.cuda.Event()
                event.record()
        except BaseException:
            with self._lock:
                ring[2].give_back(start, taken_end)
            raise
        _ = record.callsite  # resolve on this thread: the drainer has another stack
        pending = _Pending(state, record, check, layout, ring[2], ring[1][start:end], start, taken_end, event)
        self.stats["light"] += 1
        with self._lock:
            self._pending.append(pending)
            if self._drain_queued:
                return True
            self._drain_queued = True
        if not self.runtime.executor.submit(event, self._judge):
            with self._lock:
                self._drain_queued = False
                self._pending.remove(pending)
                pending.ring.give_back(pending.start, pending.end)
            self.stats["light"] -= 1
            self.stats["skipped"] += 1
        return True

    # -- judging (drainer) ---------------------------------------------------------------
    def _ready(self) -> list[_Pending]:
        """Pending samples whose copies completed, oldest first (stops at the first still running)."""
        done = []
        with self._lock:
            while self._pending:
                head = self._pending[0]
                if head.event is not None and not head.event.query():
                    break
                done.append(self._pending.popleft())
        return done

    def _judge(self) -> None:
        """Judge every completed light sample, in batches of one layout; requeue for the rest."""
        import torch

        from quantguard.engine.snapshot_verdicts import report_snapshot
        from quantguard.shadow.graph_snapshot import batch_key, snapshots_values

        time.sleep(_GATHER_SECONDS)  # let the samples of the next few ms join this batch
        started = time.perf_counter()
        with self._lock:
            self._drain_queued = False
        ready = self._ready()
        try:
            batches: dict[Any, list[_Pending]] = {}
            for item in ready:
                batches.setdefault(batch_key(item.layout, item.record.view), []).append(item)
            for items in batches.values():
                try:
                    first = items[0]
                    slots = torch.stack([item.host for item in items])
                    results = snapshots_values(first.layout, first.record.view, slots, [None] * len(items))
                except Exception as exc:
                    items[0].state.internal_error("eager_snapshot", exc)
                    continue
                for item, snapshot in zip(items, results):
                    try:
                        report_snapshot(
                            self.runtime,
                            item.state,
                            item.record,
                            item.check,
                            item.layout,
                            snapshot,
                            {"snapshot": True, "snapshot_sample": snapshot["sequence"]},
                            reference_kernels="eager snapshot",
                        )
                        self.stats["judged"] += 1
                    except Exception as exc:
                        item.state.internal_error("eager_snapshot", exc)
        finally:
            with self._lock:
                for item in ready:
                    item.ring.give_back(item.start, item.end)
                waiting = self._pending[0] if self._pending and not self._drain_queued else None
                if waiting is not None:
                    self._drain_queued = True
            self.stats["judge_seconds"] += time.perf_counter() - started
        if waiting is not None and not self.runtime.executor.submit(waiting.event, self._judge):
            with self._lock:
                self._drain_queued = False

    def summary(self) -> dict[str, Any]:
        return dict(self.stats)

    def after_fork(self) -> None:
        """In a forked child: the parent's samples, rings and lock are not this process's."""
        global _RINGS_LOCK, _RINGS
        _RINGS_LOCK = self._lock = threading.Lock()
        abandon(_RINGS, self._pending)  # the parent's device memory: freeing it would abort this child
        _RINGS = {}
        self._pending = collections.deque()
        self._drain_queued = False
