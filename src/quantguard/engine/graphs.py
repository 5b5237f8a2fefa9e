"""Checks that run inside CUDA graphs: snapshots recorded at capture, judged after replays.

ATOM serves decode as CUDA-graph replays (its own piecewise graphs, or
torch.compile's ``mode="reduce-overhead"``); a replay runs no Python, so an
eager-only shadow never sees decode traffic.  quantguard hooks
``torch.cuda.CUDAGraph`` (every capture path — ``torch.cuda.graph``,
cudagraph trees, ATOM's capture — goes through its ``capture_begin`` /
``capture_end`` / ``replay``):

``capture_begin``
    Pauses the drainer (no CUDA call from another thread may run during a
    global-mode capture), reserves the snapshot memory (zeroed, outside the
    capture; once) and sends every guard down its slow path, so each
    captured call is seen.
``a guarded GEMM while capturing``
    Its plan checks run as usual; then one gated snapshot kernel is recorded
    after it (:mod:`quantguard.shadow.graph_snapshot`), with its own device
    counter and slot.  Call sites get different phases, so the copies of one
    replay are spread over the period.
``capture_end``
    Copies the weight scales as captured, restores the fast paths, resumes
    the drainer, and reports the graph's monitored and unmonitored call sites
    (``quantguard.graph``).
``replay``
    Counts replays; every ``period`` replays it enqueues one device→host copy
    of the graph's slots (pinned memory, same stream, no host sync) and hands
    the copy to the drainer, which judges each new snapshot with the eager
    check's own verdict code and reports it as a ``quantguard.shadow`` event
    with ``graph: true`` and the replay count.
"""

from __future__ import annotations

import itertools
import threading
import time
import weakref
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from quantguard import events

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.calls import CallRecord
    from quantguard.engine.guard import GuardState
    from quantguard.engine.runtime import Runtime
    from quantguard.shadow.graph_snapshot import SnapshotLayout

__all__ = ["GraphMonitor"]

#: Snapshot memory, process-wide: [tensor, used bytes] per chunk.  Captured graphs keep writing
#: into their slots on every replay, also after ``disable()`` and after a new ``enable()`` (a
#: graph cannot be edited), so this memory is never freed while the process runs.
_CHUNKS: list[list[Any]] = []

_HOOKED = ("capture_begin", "capture_end", "replay")


def _meta(value: Any) -> Any:
    """A tensor's metadata without its memory (shape, strides, dtype on the meta device)."""
    import torch

    if isinstance(value, torch.Tensor):
        return torch.empty_strided(tuple(value.shape), tuple(value.stride()), dtype=value.dtype, device="meta")
    if isinstance(value, (tuple, list)):
        return type(value)(_meta(item) for item in value)
    return value


def _detached(record: CallRecord) -> CallRecord:
    """The record with its tensors replaced by metadata (its view, judged later, needs no values)."""
    record.args = tuple(_meta(value) for value in record.args)
    record.kwargs = {name: _meta(value) for name, value in record.kwargs.items()}
    record.arguments = {name: _meta(value) for name, value in record.arguments.items()}
    record.result = _meta(record.result)
    record.reset_view()
    return record


def _detached_layout(layout: SnapshotLayout) -> SnapshotLayout:
    operands = layout.operands

    def detached(operand: Any) -> Any:
        return None if operand is None else replace(operand, tensor=_meta(operand.tensor))

    return replace(
        layout,
        operands=replace(
            operands,
            x=detached(operands.x),
            x_scale=detached(operands.x_scale),
            w=detached(operands.w),
            w_scale=detached(operands.w_scale),
            out=_meta(operands.out),
        ),
    )


@dataclass
class _Probe:
    """One captured GEMM call: its record, where its snapshot lives, the last snapshot judged."""

    state: GuardState
    record: CallRecord
    check: Any
    layout: SnapshotLayout
    chunk: int
    offset: int
    last_sequence: int = 0
    w_scale_span: Any = None  # the weight scales' memory, held only until the capture ends
    truth_w_scale: Any = None  # host copy of it, made when the capture ends
    truth_ready: Any = None  # event marking that copy complete


@dataclass
class _Graph:
    name: str
    period: int
    probes: list[_Probe] = field(default_factory=list)
    unmonitored: dict[str, int] = field(default_factory=dict)
    replays: int = 0
    buffers: list[list[Any]] = field(default_factory=list)  # [pinned host copy, busy]
    ranges: list[tuple[int, int, int]] = field(default_factory=list)  # (chunk, start, end)


class GraphMonitor:
    """Owns the CUDA-graph hooks, the snapshot memory and the probes of every captured graph."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.device: Any = None  # where snapshot memory lives (None: the current CUDA device)
        self.capturing = 0
        self._graphs: weakref.WeakKeyDictionary[Any, _Graph] = weakref.WeakKeyDictionary()
        self._current = threading.local()
        self._saved_next_sample: dict[int, tuple[Any, int]] = {}
        self._originals: dict[str, Any] = {}
        self._names = itertools.count(1)
        self._lock = threading.RLock()
        self.stats = {
            "graphs": 0,
            "sites": 0,
            "monitored": 0,
            "unmonitored": 0,
            "checks": 0,
            "drains": 0,
            "drains_skipped": 0,
            "judge_seconds": 0.0,
        }

    # -- configuration -------------------------------------------------------------------
    @property
    def period(self) -> int:
        config = self.runtime.config
        if config.graph_period is not None:
            return config.graph_period
        rate = config.sample_rate
        return max(1, min(1_000_000, round(1.0 / rate))) if rate > 0 else 0

    @property
    def active(self) -> bool:
        config = self.runtime.config
        return config.graph_checks and config.shadow and self.period > 0

    @property
    def budget_bytes(self) -> int:
        return self.runtime.config.graph_snapshot_mib << 20

    # -- hooks ---------------------------------------------------------------------------
    def install(self, graph_class: Any = None) -> bool:
        """Hook ``torch.cuda.CUDAGraph`` (or ``graph_class``); ``False`` when there is nothing to hook."""
        if self._originals:
            return True
        if graph_class is None:
            try:
                import torch

                graph_class = torch.cuda.CUDAGraph
            except Exception:
                return False
        monitor = self
        originals = {name: graph_class.__dict__.get(name) or getattr(graph_class, name) for name in _HOOKED}

        def capture_begin(graph: Any, *args: Any, **kwargs: Any) -> Any:
            monitor._before_capture(graph)
            try:
                return originals["capture_begin"](graph, *args, **kwargs)
            except BaseException:
                monitor._after_capture(graph, failed=True)
                raise

        def capture_end(graph: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return originals["capture_end"](graph, *args, **kwargs)
            finally:
                monitor._after_capture(graph)

        def replay(graph: Any, *args: Any, **kwargs: Any) -> Any:
            result = originals["replay"](graph, *args, **kwargs)
            if monitor._graphs:
                monitor._after_replay(graph)
            return result

        for name, hook in (("capture_begin", capture_begin), ("capture_end", capture_end), ("replay", replay)):
            hook.__wrapped__ = originals[name]  # type: ignore[attr-defined]
            hook.__qualname__ = f"{getattr(graph_class, '__qualname__', 'CUDAGraph')}.{name}"
            hook.__doc__ = getattr(originals[name], "__doc__", None)
            setattr(graph_class, name, hook)
        self._originals = originals
        self._graph_class = graph_class
        return True

    def uninstall(self) -> None:
        if not self._originals:
            return
        for name, original in self._originals.items():
            setattr(self._graph_class, name, original)
        self._originals = {}
        self.runtime.executor.resume()

    # -- capture -------------------------------------------------------------------------
    def _before_capture(self, graph: Any) -> None:
        try:
            if not self.active:
                return
            with self._lock:
                stack = getattr(self._current, "graphs", None)
                if stack is None:
                    stack = self._current.graphs = []
                entry = _Graph(f"graph-{next(self._names)}", self.period)
                stack.append((graph, entry))
                self.capturing += 1
                if self.capturing == 1:
                    self._force_slow_paths()
            self.runtime.executor.pause()
            self._reserve()
        except Exception as exc:
            self.runtime.reporter.internal_error("torch.cuda.CUDAGraph", "graph_capture", exc)

    def _after_capture(self, graph: Any, failed: bool = False) -> None:
        try:
            with self._lock:
                stack = getattr(self._current, "graphs", None) or []
                found = [item for item in stack if item[0] is graph]
                if not found:
                    return
                stack.remove(found[-1])
                entry = found[-1][1]
                self.capturing -= 1
                if self.capturing == 0:
                    self._restore_fast_paths()
            self.runtime.executor.resume()
            if failed or not (entry.probes or entry.unmonitored):
                return
            self._graphs[graph] = entry
            self._finish_ranges(entry)
            self._copy_weight_scales(entry)
            self.stats["graphs"] += 1
            monitored = len(entry.probes)
            unmonitored = sum(entry.unmonitored.values())
            events.emit(
                events.GRAPH,
                "warning" if unmonitored else "info",
                graph=entry.name,
                sites=monitored + unmonitored,
                monitored=monitored,
                unmonitored=dict(entry.unmonitored),
                snapshot_bytes=sum(end - start for _, start, end in entry.ranges),
                period=entry.period,
            )
        except Exception as exc:
            self.runtime.reporter.internal_error("torch.cuda.CUDAGraph", "graph_capture", exc)

    def _copy_weight_scales(self, entry: _Graph) -> None:
        """The weight scales as captured (weights do not change while a graph replays), copied without a sync."""
        import torch

        for probe in entry.probes:
            span, probe.w_scale_span = probe.w_scale_span, None
            if span is None:
                continue
            host = torch.empty(span.shape, dtype=span.dtype, pin_memory=span.is_cuda)
            host.copy_(span, non_blocking=True)
            if span.is_cuda:
                probe.truth_ready = torch.cuda.Event()
                probe.truth_ready.record()
            probe.truth_w_scale = host

    def _force_slow_paths(self) -> None:
        """Every guard takes its slow path while a capture runs: each captured call must be seen."""
        for applied in list(self.runtime.applied.values()):
            state = applied.state
            if state is not None and id(state) not in self._saved_next_sample:
                self._saved_next_sample[id(state)] = (state, state.next_sample)
                state.next_sample = -1

    def defer_schedule(self, state: GuardState, next_sample: int) -> None:
        """A call on another thread rescheduled ``state`` during a capture: applied when the capture ends."""
        with self._lock:
            if id(state) in self._saved_next_sample:
                self._saved_next_sample[id(state)] = (state, next_sample)
            else:
                state.next_sample = next_sample

    def _restore_fast_paths(self) -> None:
        for state, next_sample in self._saved_next_sample.values():
            state.next_sample = next_sample
        self._saved_next_sample.clear()

    def current(self) -> _Graph | None:
        stack = getattr(self._current, "graphs", None)
        return stack[-1][1] if stack else None

    def in_capture(self) -> bool:
        """Whether this thread is capturing a graph quantguard saw begin (cheap test first)."""
        if not self.capturing or self.current() is None:
            return False
        import torch

        return bool(torch.cuda.is_current_stream_capturing())

    # -- snapshot memory -----------------------------------------------------------------
    @property
    def _chunks(self) -> list[list[Any]]:
        return _CHUNKS

    def _device(self) -> Any:
        import torch

        return torch.device(self.device if self.device is not None else f"cuda:{torch.cuda.current_device()}")

    def _used(self, device: Any) -> int:
        return sum(int(chunk[0].numel()) for chunk in self._chunks if chunk[0].device == device)

    def _slot(self, size: int, device: Any) -> tuple[int, int] | None:
        for index, chunk in enumerate(self._chunks):
            if chunk[0].device == device and int(chunk[0].numel()) - chunk[1] >= size:
                offset = chunk[1]
                chunk[1] += size
                return index, offset
        return None

    def _reserve(self) -> None:
        """The snapshot memory, zeroed, allocated before a capture begins.

        Nothing may be allocated from another stream, nor zeroed, inside a
        global-mode capture (either invalidates the host's capture), and the
        size a graph needs is known only once it has been captured; so the
        whole budget is reserved at the first capture and shared by every
        graph.  Call sites beyond it are reported unmonitored.
        """
        import torch

        device = self._device()
        if self.budget_bytes <= self._used(device):
            return
        self._chunks.append([torch.zeros(self.budget_bytes - self._used(device), dtype=torch.uint8, device=device), 0])

    def _finish_ranges(self, entry: _Graph) -> None:
        spans: dict[int, list[int]] = {}
        for probe in entry.probes:
            span = spans.setdefault(probe.chunk, [probe.offset, probe.offset + probe.layout.size])
            span[0] = min(span[0], probe.offset)
            span[1] = max(span[1], probe.offset + probe.layout.size)
        entry.ranges = [(chunk, start, end) for chunk, (start, end) in sorted(spans.items())]

    # -- captured calls ------------------------------------------------------------------
    def captured(self, state: GuardState, record: CallRecord, result: Any) -> None:
        """A guarded call was just recorded into the current graph: record its snapshot after it."""
        entry = self.current()
        if entry is None:
            return
        check = state.data_check("gemm_numerics")
        if check is None:
            return  # not a GEMM with a numerics check: its plan checks ran, nothing to snapshot
        self.stats["sites"] += 1
        try:
            reason = self._probe(state, record, result, check, entry)
        except Exception as exc:  # the host's capture goes on; the site is reported unmonitored
            state.internal_error("graph_capture", exc)
            reason = f"internal error ({type(exc).__name__})"
        if reason is not None:
            self.stats["unmonitored"] += 1
            key = f"{state.contract.target}: {reason}"
            entry.unmonitored[key] = entry.unmonitored.get(key, 0) + 1

    def _probe(self, state: GuardState, record: CallRecord, result: Any, check: Any, entry: _Graph) -> str | None:
        from quantguard.checks.gemm_numerics import _out_2d
        from quantguard.contracts.views import GemmView
        from quantguard.shadow.graph_snapshot import launch_snapshot, memory_span, plan_snapshot
        from quantguard.shadow.triton_kernels import available

        record.result = result
        record.reset_view()
        view = record.view
        if not isinstance(view, GemmView) or view.w is None:
            return "no GEMM view"
        out = _out_2d(view)
        if out is None or not available(out.device):
            return "no output tensor, or Triton unavailable on its device"
        layout = plan_snapshot(view, out)
        if isinstance(layout, str):
            return layout
        where = self._slot(layout.size, out.device)
        if where is None:
            return f"snapshot memory full ({self.runtime.config.graph_snapshot_mib} MiB)"
        chunk, offset = where
        slot = self._chunks[chunk][0][offset : offset + layout.size]
        launch_snapshot(layout, slot, entry.period, len(entry.probes) % entry.period)
        _ = record.callsite  # resolve on this thread: the drainer has another stack
        span = memory_span(layout.operands.w_scale.tensor) if layout.operands.w_scale is not None else None
        # the probe keeps metadata only: a graph's memory pool must not see tensors it did not hand out
        # (torch.compile's cudagraph trees check that every live allocation in its pool is an output)
        entry.probes.append(
            _Probe(state, _detached(record), check, _detached_layout(layout), chunk, offset, w_scale_span=span)
        )
        self.stats["monitored"] += 1
        return None

    # -- replays -------------------------------------------------------------------------
    def _after_replay(self, graph: Any) -> None:
        try:
            entry = self._graphs.get(graph)
            if entry is None or not entry.probes:
                return
            entry.replays += 1
            if entry.replays % entry.period == 0:
                self._drain(entry)
        except Exception as exc:
            self.runtime.reporter.internal_error("torch.cuda.CUDAGraph", "graph_replay", exc)

    def _host_buffer(self, entry: _Graph, total: int) -> list[Any] | None:
        """A free pinned buffer for one drain.  The host runs ahead of a GPU-bound replay loop, so several
        drains can be in flight: up to 8 buffers per graph (fewer for big graphs), else the drain is skipped."""
        import torch

        for buffer in entry.buffers:
            if not buffer[1]:
                return buffer
        limit = max(2, min(64, self.budget_bytes // max(1, total)))
        if len(entry.buffers) >= limit:
            return None
        pinned = bool(self._chunks) and self._chunks[0][0].is_cuda
        buffer = [torch.empty(total, dtype=torch.uint8, pin_memory=pinned), False]
        entry.buffers.append(buffer)
        return buffer

    def _drain(self, entry: _Graph) -> None:
        """Copy the graph's slots to pinned memory (same stream, no sync); the drainer judges them."""
        import torch

        total = sum(end - start for _, start, end in entry.ranges)
        buffer = self._host_buffer(entry, total)
        if buffer is None:
            self.stats["drains_skipped"] += 1
            return
        host = buffer[0]
        chunks = self._chunks
        position = 0
        for chunk, start, end in entry.ranges:
            host[position : position + end - start].copy_(chunks[chunk][0][start:end], non_blocking=True)
            position += end - start
        event = None
        if chunks[0][0].is_cuda:
            event = torch.cuda.Event()
            event.record()
        buffer[1] = True
        replays = entry.replays
        if not self.runtime.executor.submit(event, lambda: self._judge(entry, buffer, replays)):
            buffer[1] = False
            self.stats["drains_skipped"] += 1
        else:
            self.stats["drains"] += 1

    @staticmethod
    def _host_slot(entry: _Graph, host: Any, probe: _Probe) -> Any:
        position = 0
        for chunk, start, end in entry.ranges:
            if chunk == probe.chunk:
                begin = position + probe.offset - start
                return host[begin : begin + probe.layout.size]
            position += end - start
        return None

    def _judge(self, entry: _Graph, buffer: list[Any], replays: int) -> None:
        """On the drainer: every new snapshot of the graph against its reference, reported like an eager check.

        Snapshots of one layout are decoded and compared in one batch (a few
        dozen torch ops per layout, not per call site): a 60-layer graph has
        a few layouts and hundreds of sites.
        """
        import torch

        from quantguard.shadow.graph_snapshot import batch_key, snapshots_values

        started = time.perf_counter()
        try:
            batches: dict[Any, list[tuple[_Probe, Any, int]]] = {}
            for probe in entry.probes:
                slot = self._host_slot(entry, buffer[0], probe)
                sequence = int(probe.layout.view(slot, "meta")[0]) if slot is not None else 0
                if sequence <= probe.last_sequence:
                    continue  # not filled yet, or already judged
                probe.last_sequence = sequence
                batches.setdefault(batch_key(probe.layout, probe.record.view), []).append((probe, slot, sequence))
            for items in batches.values():
                try:
                    for probe, _, _ in items:
                        if probe.truth_ready is not None:
                            probe.truth_ready.synchronize()  # on the drainer; recorded long before this drain
                    first = items[0][0]
                    results = snapshots_values(
                        first.layout,
                        first.record.view,
                        torch.stack([slot for _, slot, _ in items]),
                        [probe.truth_w_scale for probe, _, _ in items],
                    )
                except Exception as exc:
                    items[0][0].state.internal_error("graph_check", exc)
                    continue
                for (probe, _, sequence), snapshot in zip(items, results):
                    try:
                        self._report(entry, probe, snapshot, sequence, replays)
                    except Exception as exc:
                        probe.state.internal_error("graph_check", exc)
        finally:
            buffer[1] = False
            self.stats["judge_seconds"] += time.perf_counter() - started

    def _report(self, entry: _Graph, probe: _Probe, snapshot: dict[str, Any], sequence: int, replays: int) -> None:
        from quantguard.checks.base import Finding
        from quantguard.engine.snapshot_verdicts import report_snapshot

        record = probe.record
        site = entry.probes.index(probe)
        graph_fields = {
            "graph": True,
            "graph_name": entry.name,
            "graph_site": site,
            "replays": replays,
            "snapshot_replay": sequence,
        }
        self.stats["checks"] += 1
        changed = snapshot["w_scale_groups_changed"]
        if changed:
            self.runtime.reporter.report(
                probe.state,
                record,
                Finding(
                    "weight_scale",
                    f"{changed} of {snapshot['w_scale_groups_compared']} weight-scale values read by "
                    f"replay {sequence} differ from the values at capture (output columns {snapshot['columns'][0]}-"
                    f"{snapshot['columns'][-1]}); the replay is judged against the captured scales",
                    details={"changed": changed, "compared": snapshot["w_scale_groups_compared"], **graph_fields},
                    variant=f"{entry.name}:{site}",
                ),
                deferred=True,
            )
        report_snapshot(
            self.runtime,
            probe.state,
            record,
            probe.check,
            probe.layout,
            snapshot,
            graph_fields,
            f"@{entry.name}:{site}",
        )

    def summary(self) -> dict[str, Any]:
        return dict(self.stats)
