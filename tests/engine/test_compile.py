"""torch.compile: guarded code compiles with fullgraph=True, gives the same outputs, and is still observed.

Two kinds of entry points, as in AITER: an opaque ``wrapper_custom(*args, **kwargs)``
around a torch custom op (guarded at the op's dispatch), and a plain Python
function (a Triton-style wrapper Dynamo inlines; guarded by a wrapt guard whose
traced branch adds an observer op to the graph).
"""

from __future__ import annotations

import pytest
import torch

import quantguard
from quantguard import Contract
from quantguard.checks.base import Finding, PlanCheck, register_check
from quantguard.engine import lifecycle
from quantguard.testing import capture_events

TOY = """
import torch

_lib = torch.library.Library("qgtoy", "FRAGMENT")
if not hasattr(torch.ops.qgtoy, "scaled_gemm"):
    _lib.define("scaled_gemm(Tensor XQ, Tensor WQ, Tensor x_scale, Tensor w_scale, ScalarType dtype=bfloat16) -> Tensor")
    _lib.define("group_quant(Tensor dummy, int group_size, Tensor x) -> (Tensor, Tensor)")

    def _gemm(XQ, WQ, x_scale, w_scale, dtype=torch.bfloat16):
        return ((XQ.float() * x_scale.float().mean()) @ (WQ.float() * w_scale.float()).t()).to(dtype)

    def _quant(dummy, group_size, x):
        groups = x.reshape(x.shape[0], -1, group_size)
        scale = groups.abs().amax(-1).clamp_min(1e-6) / 127
        return (groups / scale.unsqueeze(-1)).round().reshape(x.shape), scale

    for name, impl in (("scaled_gemm", _gemm), ("group_quant", _quant)):
        _lib.impl(name, impl, "CPU")
    _lib._register_fake("scaled_gemm", lambda XQ, WQ, x_scale, w_scale, dtype=torch.bfloat16:
                        XQ.new_empty(XQ.shape[0], WQ.shape[0], dtype=dtype))
    _lib._register_fake("group_quant", lambda dummy, group_size, x:
                        (torch.empty_like(x), x.new_empty(x.shape[0], x.shape[1] // group_size)))


def _custom(loadName, dummy):
    # the shape of AITER's torch_compile_guard wrapper: no parameter names, the op name in the closure
    def wrapper_custom(*args, **kwargs):
        if dummy:
            return getattr(torch.ops.qgtoy, loadName)(torch.empty(1), *args, **kwargs)
        return getattr(torch.ops.qgtoy, loadName)(*args, **kwargs)
    return wrapper_custom


scaled_gemm = _custom("scaled_gemm", False)
group_quant = _custom("group_quant", True)


def python_gemm(x, w, x_scale, w_scale, dtype=torch.bfloat16, y=None):
    out = ((x.float() * x_scale.float().mean()) @ (w.float() * w_scale.float()).t()).to(dtype)
    if y is not None:
        y.copy_(out)
        return y
    return out
"""


@register_check
class _ScaleRows(PlanCheck):
    """Test check: x_scale needs one row per row of x."""

    name = "test_compile_scale_rows"

    def check(self, call):
        x = call.get("XQ") if "XQ" in call.arguments else call.get("x")
        if x is not None and call["x_scale"].shape[0] != x.shape[0]:
            yield Finding("scale_shape", f"{call['x_scale'].shape[0]} scale rows for {x.shape[0]} rows")


def _contracts() -> list[Contract]:
    check = ("test_compile_scale_rows",)
    return [
        Contract(
            target="qgtoy_lib.scaled_gemm",
            kind="gemm",
            backend="ck",
            checks=check,
            op="qgtoy::scaled_gemm",
            key=("XQ", "WQ@", "x_scale+", "w_scale@", "dtype="),
            params=("XQ", "WQ", "x_scale", "w_scale", "dtype"),
        ),
        Contract(
            target="qgtoy_lib.group_quant",
            kind="quant",
            backend="hip",
            op="qgtoy::group_quant",
            key=("x", "group_size="),
            params=("group_size", "x"),
        ),
        Contract(
            target="qgtoy_lib.python_gemm",
            kind="gemm",
            backend="triton",
            checks=check,
            key=("x", "w@", "x_scale+", "w_scale@", "dtype=", "y?"),
            params=("x", "w", "x_scale", "w_scale", "dtype", "y"),
        ),
    ]


@pytest.fixture
def toy(make_module, quiet_log):
    for contract in _contracts():
        quantguard.register(contract)
    quantguard.enable(targets="qgtoy_lib.*", log=quiet_log, sample_rate=0.0, sample_first=0)
    return make_module("qgtoy_lib", TOY)


def _model(lib):
    def forward(x, w, w_scale):
        q, x_scale = lib.group_quant(32, x)
        y = lib.scaled_gemm(q, w, x_scale, w_scale, dtype=torch.float32)
        return lib.python_gemm(y, w, x_scale, w_scale, dtype=torch.float32) + 1

    return forward


def _operands(rows: int = 8):
    torch.manual_seed(0)
    return torch.randn(rows, 64), torch.randn(64, 64), torch.rand(64, 1) + 0.5


def _calls() -> dict[str, int]:
    return lifecycle.current_runtime().call_counts()


def test_opaque_wrappers_bind_by_op_schema(toy):
    applied = lifecycle.current_runtime().applied
    assert applied["qgtoy_lib.scaled_gemm"].state.binder.source == "op schema"
    assert applied["qgtoy_lib.group_quant"].state.binder.names == ("group_size", "x")  # dummy dropped
    assert not applied["qgtoy_lib.scaled_gemm"].mismatch and not applied["qgtoy_lib.group_quant"].mismatch
    assert toy.scaled_gemm.__name__ == "wrapper_custom"  # the module attribute is left as it was


# every backend, static and dynamic shapes (one inductor case: it compiles C++ on a 2-core CI machine)
@pytest.mark.parametrize(
    ("backend", "dynamic"),
    [("eager", False), ("eager", True), ("aot_eager", False), ("aot_eager", True), ("inductor", False)],
)
def test_fullgraph_compiles_with_identical_outputs_and_the_same_observed_calls(toy, backend, dynamic):
    forward = _model(toy)
    x, w, w_scale = _operands()
    before = _calls()
    expected = forward(x, w, w_scale)
    eager = {target: count - before[target] for target, count in _calls().items()}
    assert eager == {"qgtoy_lib.scaled_gemm": 1, "qgtoy_lib.group_quant": 1, "qgtoy_lib.python_gemm": 1}

    torch._dynamo.reset()
    from torch._dynamo.utils import counters

    counters.clear()
    compiled = torch.compile(forward, backend=backend, fullgraph=True, dynamic=dynamic)
    compiled(x, w, w_scale)  # compile (tracing is not a call)
    before = _calls()
    outputs = [compiled(x, w, w_scale) for _ in range(3)]
    observed = {target: count - before[target] for target, count in _calls().items()}
    assert observed == {target: 3 * count for target, count in eager.items()}
    assert not counters["graph_break"]
    for output in outputs:
        torch.testing.assert_close(output, expected, rtol=1e-5, atol=1e-4)


def test_compiled_calls_are_judged_like_eager_ones(toy):
    w = torch.randn(64, 64)
    w_scale = torch.rand(64, 1)

    def bad(x, x_scale):
        return toy.scaled_gemm(x, w, x_scale, w_scale, dtype=torch.float32) + toy.python_gemm(
            x, w, x_scale, w_scale, dtype=torch.float32
        )

    torch._dynamo.reset()
    compiled = torch.compile(bad, backend="aot_eager", fullgraph=True)
    with capture_events() as events:
        compiled(torch.randn(8, 64), torch.rand(8, 1))  # clean
        assert not events.violations()
        compiled(torch.randn(8, 64), torch.rand(4, 1))  # one scale row short: recompiles, still guarded
    targets = sorted(e["target"] for e in events.violations(check="scale_shape"))
    assert targets == ["qgtoy_lib.python_gemm", "qgtoy_lib.scaled_gemm"]


def test_disabled_guard_leaves_compiled_code_unobserved_and_correct(toy):
    forward = _model(toy)
    x, w, w_scale = _operands()
    expected = forward(x, w, w_scale)
    torch._dynamo.reset()
    compiled = torch.compile(forward, backend="aot_eager", fullgraph=True)
    compiled(x, w, w_scale)
    quantguard.disable()
    with capture_events() as events:
        torch.testing.assert_close(compiled(x, w, w_scale), expected, rtol=1e-5, atol=1e-4)
    assert not [e for e in events if e["event"] != "quantguard.summary"]
