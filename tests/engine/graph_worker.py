"""Graph checks end to end on a CPU: a stand-in graph class, the Triton interpreter for the kernels.

Run as a subprocess with ``TRITON_INTERPRET=1`` (the interpreter must be on
before Triton kernels are defined) by ``test_graphs.py``; prints one JSON line.

``FakeGraph`` behaves like ``torch.cuda.CUDAGraph`` where quantguard can see
it: ``capture_begin``/``capture_end``/``replay`` methods, a "capturing" state
that ``torch.cuda.is_current_stream_capturing`` reports, and replays that
re-run the captured work (the guarded GEMM writing into its static output,
then the kernels recorded after it) without running any guard code.
"""

from __future__ import annotations

import json
import sys

import torch
from fake_gemm import BIAS, Faults, contract, product
from fake_gemm import layers as make_layers

import quantguard
import quantguard.shadow.graph_snapshot as graph_snapshot
from quantguard.reentrancy import suppressed
from quantguard.testing import capture_events

SHAPES = [(256, 512), (128, 256), (512, 128), (256, 512)]  # (N, K); sites 0 and 3 are judged in one batch


class FakeGraph:
    capturing: FakeGraph | None = None

    def __init__(self) -> None:
        self.work = None
        self.launches: list = []

    def capture_begin(self, *args, **kwargs) -> None:
        FakeGraph.capturing = self

    def capture_end(self) -> None:
        FakeGraph.capturing = None

    def replay(self) -> None:
        with suppressed():
            self.work()
        for launch in self.launches:
            launch()


OUTPUTS: dict = {}


def gemm(x, w, x_scale, w_scale):
    """A per-token scaled GEMM writing into a static output (as captured work does)."""
    out = product(x, w, x_scale, w_scale)
    static = OUTPUTS.setdefault(id(w), torch.empty_like(out))  # one static output per layer
    static.copy_(out)
    return static


def _enable():
    """quantguard with graph checks on the stand-in graph class, a short period, CPU snapshot memory."""
    runtime = quantguard.enable(
        log="/dev/null",
        rate_limit_interval=1e-6,
        graph_period=4,
        graph_snapshot_mib=1,
        summary_at_exit=False,
        sample_first=0,
    )
    runtime.graphs.device = "cpu"
    runtime.graphs.install(FakeGraph)
    return runtime


def main(scenario: str) -> dict:
    quantguard.register(contract(f"{__name__}.gemm"))
    layers = make_layers(SHAPES)
    module = sys.modules[__name__]
    if scenario == "bias":  # a layout the snapshot does not cover: reported unmonitored, never an error
        for _, w, _, _ in layers:
            BIAS[id(w)] = torch.zeros(w.shape[0])
    torch.cuda.is_current_stream_capturing = lambda: FakeGraph.capturing is not None  # type: ignore[assignment]
    real_launch = graph_snapshot.launch_snapshot

    def recording_launch(layout, slot, period, phase):
        if scenario == "launch_error":  # the snapshot kernel cannot be recorded: the host's capture goes on
            raise RuntimeError("simulated launch failure")
        FakeGraph.capturing.launches.append(lambda: real_launch(layout, slot, period, phase))

    if scenario == "no_triton":
        import quantguard.shadow.triton_kernels as kernels

        kernels.available = lambda device: False  # type: ignore[assignment]

    graph_snapshot.launch_snapshot = recording_launch
    with capture_events() as events:
        runtime = _enable()

        def step():
            return [module.gemm(*layer) for layer in layers]

        step()  # eager warm-up
        graph = FakeGraph()
        graph.capture_begin()
        if scenario == "thread":  # another thread's eager call during the capture must not reopen the fast path
            import threading

            module.gemm(*layers[0])
            worker = threading.Thread(target=module.gemm, args=layers[1])
            worker.start()
            worker.join()
            for layer in layers[2:]:
                module.gemm(*layer)
        else:
            step()
        graph.capture_end()
        captured_outputs = [out.clone() for out in OUTPUTS.values()]
        with suppressed():
            expected = [out.clone() for out in step()]
        graph.work = step
        for _ in range(12):
            graph.replay()
        runtime.executor.flush()
        clean = len(events.violations())
        if scenario == "scale":
            layers[1][3].mul_(2.0)  # a weight-scale buffer overwritten between replays
        elif scenario == "output":
            Faults.output_factor = 1.5  # the captured work now corrupts some output columns
        for _ in range(12):
            graph.replay()
        runtime.executor.flush()
        summary = quantguard.disable()
        if scenario == "reenable":  # the first graph keeps replaying into its slots after disable()
            first_slots = [
                (probe.chunk, probe.offset, probe.layout.size)
                for probe in next(iter(runtime.graphs._graphs.values())).probes
            ]
            runtime = _enable()
            second = FakeGraph()
            second.capture_begin()
            step()
            second.capture_end()
            second.work = step
            for _ in range(8):
                graph.replay()
                second.replay()
            runtime.executor.flush()
            second_slots = [
                (probe.chunk, probe.offset, probe.layout.size)
                for probe in next(iter(runtime.graphs._graphs.values())).probes
            ]
            summary = quantguard.disable()
            return {
                "first": first_slots,
                "second": second_slots,
                "graphs": summary["graphs"],
                "violations": [e["message"] for e in events.violations()],
                "internal_errors": [e["error"] for e in events.named("internal_error")],
            }
    graph_events = [e for e in events.named("shadow") if e.get("graph")]
    return {
        "clean_violations": clean,
        "captured_outputs_correct": all(torch.equal(a, b) for a, b in zip(captured_outputs, expected)),
        "graph_event": events.named("graph")[0] if events.named("graph") else None,
        "checks_per_site": {site: sum(e["graph_site"] == site for e in graph_events) for site in range(len(SHAPES))},
        "passed": [e["passed"] for e in graph_events],
        "violations": sorted({(e["check"], e["details"].get("graph_site")) for e in events.violations()}),
        "internal_errors": [e["error"] for e in events.named("internal_error")],
        "graphs": summary["graphs"] if summary else None,
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1]), default=str))
