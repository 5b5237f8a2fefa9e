"""Runs data checks' device work off the hot path and judges results when they are ready.

On CPU everything is synchronous: measure, read, judge, report.  On CUDA the
inspected call's main-stream work is limited to cheap snapshots (taken by the
checks right after the kernel); the measurements are enqueued on a side stream
that waits for the main stream, all result tensors are packed into one small
float64 buffer copied to pinned host memory without blocking, and an event
marks completion.  A daemon drainer thread polls the events, unpacks the host
values and lets each check judge them.  The queue is bounded: when full, new
jobs are dropped and counted (never blocking the engine).  Nothing here calls
``.item()``, ``.tolist()`` or ``synchronize`` on the producing thread.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from quantguard._fork import abandon
from quantguard.reentrancy import suppressed

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.checks.base import DataCheck, Measurement
    from quantguard.engine.calls import CallRecord

__all__ = ["Executor", "Job"]


@dataclass
class Job:
    record: CallRecord
    items: list[tuple[DataCheck, Measurement]]
    judge: Callable[[CallRecord, list[tuple[DataCheck, Measurement]], list[dict[str, Any]]], None]
    host: Any = None  # pinned host buffer (CUDA) or CPU tensor
    event: Any = None  # completion event (CUDA)
    layout: list[list[tuple[str, tuple[int, ...], int]]] | None = None


def _pack(items: list[tuple[DataCheck, Measurement]]) -> tuple[Any, list[list[tuple[str, tuple[int, ...], int]]]]:
    """Flatten every measurement tensor into one float64 vector (one cat); remember how to cut it."""
    flat, layout = [], []
    for _, measurement in items:
        entries = []
        for name, tensor in measurement.tensors.items():
            entries.append((name, tuple(tensor.shape), tensor.numel()))
            flat.append(tensor.reshape(-1) if tensor.dtype == torch.float64 else tensor.reshape(-1).double())
        layout.append(entries)
    if not flat:
        return None, layout
    return (torch.cat(flat) if len(flat) > 1 else flat[0]), layout


def _unpack(values: list[float], layout: list[list[tuple[str, tuple[int, ...], int]]]) -> list[dict[str, Any]]:
    out, offset = [], 0
    for entries in layout:
        result: dict[str, Any] = {}
        for name, shape, count in entries:
            chunk = values[offset : offset + count]
            offset += count
            result[name] = chunk[0] if shape == () else chunk
        out.append(result)
    return out


class Executor:
    __slots__ = (
        "capacity",
        "dropped",
        "_queue",
        "_lock",
        "_thread",
        "_stream",
        "_stop",
        "_on_drop",
        "_pid",
        "_in_flight",
        "_wakeup",
        "_running",
        "_working",
        "_pinned",
    )

    def __init__(self, capacity: int, on_drop: Callable[[int], None]) -> None:
        self.capacity = capacity
        self.dropped = 0
        self._queue: collections.deque[Job] = collections.deque()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stream: Any = None
        self._stop = threading.Event()
        self._wakeup = threading.Event()
        self._in_flight = 0
        self._on_drop = on_drop
        self._pid = os.getpid()
        self._running = threading.Event()  # cleared while a CUDA graph is captured
        self._running.set()
        self._working = threading.Lock()  # held while the drainer judges one job
        self._pinned: dict[int, list[Any]] = {}

    # -- producer side -------------------------------------------------------------------
    @staticmethod
    def is_async(device: Any) -> bool:
        return getattr(device, "type", None) == "cuda"

    def side_stream(self, device: Any) -> Any:
        if self._stream is None or self._stream.device != device:
            self._stream = torch.cuda.Stream(device=device)
        return self._stream

    def run(
        self,
        record: CallRecord,
        device: Any,
        measure: Callable[[], list[tuple[DataCheck, Measurement]]],
        judge: Callable[..., None],
    ) -> None:
        """Measure now (CPU) or on a side stream (CUDA) and judge when the values are on the host."""
        if not self.is_async(device):
            with suppressed():
                items = measure()
                packed, layout = _pack(items)
                values = packed.tolist() if packed is not None else []
                judge(record, items, _unpack(values, layout))
            return
        if len(self._queue) >= self.capacity:
            self.dropped += 1
            self._on_drop(1)
            return
        main = torch.cuda.current_stream()
        side = self.side_stream(device if device.index is not None else main.device)
        side.wait_stream(main)
        with suppressed(), torch.cuda.stream(side):
            items = measure()
            packed, layout = _pack(items)
            host = event = None
            if packed is not None:
                host = self._pinned_buffer(packed.numel())
                host.copy_(packed, non_blocking=True)
                event = torch.cuda.Event()
                event.record(side)
        for _, measurement in items:
            for value in measurement.tensors.values():
                if isinstance(value, torch.Tensor) and value.is_cuda:
                    value.record_stream(side)
        self._enqueue(Job(record, items, judge, host, event, layout))

    def _pinned_buffer(self, length: int) -> Any:
        """A pinned float64 host buffer of ``length``, reused (allocating pinned memory costs ~10s of us)."""
        with self._lock:
            free = self._pinned.get(length)
            if free:
                return free.pop()
        return torch.empty(length, dtype=torch.float64, pin_memory=True)

    def _recycle(self, host: Any) -> None:
        if host is None or not host.is_pinned() or host.dtype != torch.float64:
            return
        with self._lock:
            free = self._pinned.setdefault(host.numel(), [])
            if len(free) < 8:
                free.append(host)

    def submit(self, event: Any, callback: Callable[[], None]) -> bool:
        """Run ``callback`` on the drainer once ``event`` completed; ``False`` (dropped) when the queue is full."""
        if len(self._queue) >= self.capacity:
            self.dropped += 1
            self._on_drop(1)
            return False
        self._enqueue(Job(None, [], lambda *_: callback(), None, event, []))  # type: ignore[arg-type]
        return True

    def pause(self, timeout: float = 5.0) -> None:
        """Hold the drainer between jobs (a global-mode graph capture forbids CUDA calls from other threads)."""
        self._running.clear()
        if (
            self._thread is not None
            and self._thread is not threading.current_thread()
            and self._working.acquire(timeout=timeout)
        ):
            self._working.release()

    def resume(self) -> None:
        self._running.set()

    def _enqueue(self, job: Job) -> None:
        self._ensure_thread()
        with self._lock:
            self._queue.append(job)
            self._in_flight += 1
        self._wakeup.set()

    # -- drainer -------------------------------------------------------------------------
    def _ensure_thread(self) -> None:
        if self._pid != os.getpid():
            self.after_fork()
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._drain_loop, name="quantguard-drainer", daemon=True)
            self._thread.start()

    def _drain_loop(self) -> None:
        with suppressed():
            while not self._stop.is_set():
                job = None
                with self._lock:
                    head = self._queue[0] if self._queue else None
                if head is None:
                    self._wakeup.wait(0.05)
                    self._wakeup.clear()
                    continue
                if not self._running.wait(0.05):
                    continue
                with self._working:
                    if not self._running.is_set():
                        continue
                    if head.event is not None:
                        head.event.synchronize()  # this thread waits (GIL released); the producer never does
                    with self._lock:
                        job = self._queue.popleft()
                    try:
                        self._finish(job)
                    finally:
                        with self._lock:
                            self._in_flight -= 1
                        self._recycle(job.host)

    @staticmethod
    def _finish(job: Job) -> None:
        values = job.host.tolist() if job.host is not None else []
        job.judge(job.record, job.items, _unpack(values, job.layout or []))

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until queued jobs are judged (used by disable() and tests); ``False`` on timeout."""
        deadline = time.monotonic() + timeout
        while self._in_flight and time.monotonic() < deadline:
            time.sleep(0.001)
        return not self._in_flight

    def stop(self) -> None:
        self.flush()
        self._stop.set()
        self._wakeup.set()

    def after_fork(self) -> None:
        # The parent's queued jobs, stream and pinned buffers: freeing them would abort this child.
        abandon(self._queue, self._stream, self._pinned)
        self._lock = threading.Lock()
        self._queue = collections.deque()
        self._thread = None
        self._stream = None
        self._stop = threading.Event()
        self._wakeup = threading.Event()
        self._in_flight = 0
        self._pid = os.getpid()
        self._running = threading.Event()
        self._running.set()
        self._working = threading.Lock()
        self._pinned = {}
