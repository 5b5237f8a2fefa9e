"""Graph breaks and observed calls per forward under torch.compile, quantguard on and off.

Runs the simulated ATOM workload (prefill of a 16-token prompt) on each backend and
arch and prints, side by side, for two compiled pieces: the whole model without
``fullgraph`` (its MoE routing is data-dependent: Dynamo breaks there with or without
quantguard) and the dense path (every layer's MLA attention, final norm and LM head)
with ``fullgraph=True``:

* graph breaks with quantguard off and on (the difference is quantguard's);
* whether ``fullgraph=True`` compiled;
* guarded calls observed per compiled forward, and per eager forward (quantguard on);
* whether compiled outputs with quantguard are bitwise those without it, and the largest
  difference from eager (the backend's own numerics, e.g. Inductor's bf16 fusions).

    python benchmarks/compile_observation.py [--backends eager,aot_eager,inductor] [--arch gfx942,gfx950]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import torch

import quantguard
from quantguard.engine import lifecycle
from quantguard.sim import workload

PROMPT = list(range(1, 17))


def _breaks() -> int:
    from torch._dynamo.utils import counters

    return sum(counters["graph_break"].values())


def _whole_model(model):
    def forward(ids):
        return model(ids)

    return forward


def _dense_path(model):
    def forward(ids):
        h = model.embed(ids)
        cache = workload.KVCache(len(model.layers))
        for index, layer in enumerate(model.layers):
            h = h + layer.attn(layer.input_norm(h), cache, index)
        return model.lm_head(model.norm(h))

    return forward


def _observed() -> dict[str, int]:
    runtime = lifecycle.current_runtime()
    return runtime.call_counts() if runtime is not None else {}


def _delta(after: dict[str, int], before: dict[str, int]) -> int:
    return sum(count - before.get(target, 0) for target, count in after.items())


def _compile_run(forward, ids, backend: str, fullgraph: bool):
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    compiled = torch.compile(forward, backend=backend, fullgraph=fullgraph)
    try:
        compiled(ids)  # compiles
    except Exception as exc:  # a fullgraph failure is a result, not a crash of the benchmark
        return None, _breaks(), f"{type(exc).__name__}"
    return compiled, _breaks(), "ok"


def run(arch: str, backend: str, fullgraph: bool) -> dict[str, object]:
    ids = torch.tensor(PROMPT)
    with workload.deploy(arch=arch, backend="triton") as deployment:
        model = workload.build_model(deployment)
        forward = (_dense_path if fullgraph else _whole_model)(model)
        with torch.no_grad():
            reference = forward(ids)
            compiled_off, breaks_off, status_off = _compile_run(forward, ids, backend, fullgraph)
            output_off = compiled_off(ids) if compiled_off is not None else None
            quantguard.enable(log=os.devnull, sample_rate=0.0, sample_first=0, log_format="json", targets="aiter.*")
            try:
                before = _observed()
                forward(ids)
                eager_calls = _delta(_observed(), before)
                compiled, breaks_on, status_on = _compile_run(forward, ids, backend, fullgraph)
                compiled_calls, difference, same_as_off = None, None, None
                if compiled is not None:
                    before = _observed()
                    output = compiled(ids)
                    compiled_calls = _delta(_observed(), before)
                    difference = float((output.float() - reference.float()).abs().max())
                    if output_off is not None:
                        same_as_off = bool(torch.equal(output, output_off))
            finally:
                quantguard.disable()
    return {
        "arch": arch,
        "backend": backend,
        "fullgraph": fullgraph,
        "breaks_off": breaks_off,
        "breaks_on": breaks_on,
        "status_off": status_off,
        "status_on": status_on,
        "eager_calls": eager_calls,
        "compiled_calls": compiled_calls,
        "max_abs_diff": difference,
        "same_as_off": same_as_off,
    }


def _in_child(arch: str, backend: str, fullgraph: bool) -> dict[str, object]:
    """One configuration in a fresh process: re-importing the simulated ``atom`` in one process
    leaves Dynamo's global aliases (``__import_atom_dot_...``) pointing at the previous module."""
    command = [sys.executable, __file__, "--one", f"{arch},{backend},{int(fullgraph)}"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{command} failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="eager,aot_eager,inductor")
    parser.add_argument("--arch", default="gfx942,gfx950")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    options = parser.parse_args()
    import logging

    logging.disable(logging.WARNING)
    if options.one:
        arch, backend, fullgraph = options.one.split(",")
        print(json.dumps(run(arch, backend, fullgraph == "1")))
        return
    rows = []
    started = time.perf_counter()
    for arch in options.arch.split(","):
        for backend in options.backends.split(","):
            for fullgraph in (False, True):
                rows.append(_in_child(arch, backend, fullgraph))
    header = (
        "arch",
        "backend",
        "piece, fullgraph",
        "breaks off",
        "breaks on",
        "compiled (off/on)",
        "calls/fwd eager",
        "calls/fwd compiled",
        "output on == off",
        "max |diff| vs eager",
    )
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for r in rows:
        print(
            " | ".join(
                str(v)
                for v in (
                    r["arch"],
                    r["backend"],
                    "dense path, True" if r["fullgraph"] else "whole model, False",
                    r["breaks_off"],
                    r["breaks_on"],
                    f"{r['status_off']}/{r['status_on']}",
                    r["eager_calls"],
                    r["compiled_calls"],
                    "n/a" if r["same_as_off"] is None else ("bitwise" if r["same_as_off"] else "DIFFERENT"),
                    "n/a" if r["max_abs_diff"] is None else f"{r['max_abs_diff']:.3g}",
                )
            )
        )
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
