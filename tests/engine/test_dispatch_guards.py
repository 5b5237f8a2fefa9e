"""Custom-op entry points: found however the opaque wrapper is written, bound by the op schema."""

from __future__ import annotations

import pytest
import torch

import quantguard
from quantguard import Contract
from quantguard.checks.base import Finding, PlanCheck, register_check
from quantguard.engine import lifecycle
from quantguard.engine.custom_ops import op_parameters, scalar_type
from quantguard.testing import capture_events

LIBRARY = """
import torch

_lib = torch.library.Library("qgcustom", "FRAGMENT")
if not hasattr(torch.ops.qgcustom, "{name}"):
    _lib.define("{name}({placeholder}int group_size, Tensor x, Tensor scale, ScalarType dtype=bfloat16) -> Tensor")
    _lib.impl("{name}", lambda *args, **kwargs: args[-2] if len(args) > 2 else args[0], "CPU")

{wrapper}
"""

# three ways an opaque wrapper can lead to its op
WRAPPERS = {
    "aiter_loadName": """
def _make(loadName):
    def wrapper_custom(*args, **kwargs):
        return getattr(torch.ops.qgcustom, loadName)({dummy}*args, **kwargs)
    return wrapper_custom
{name} = _make("{name}")""",
    "other_closure_name": """
def _make(op_name):
    def opaque(*args, **kwargs):
        return getattr(torch.ops.qgcustom, op_name)({dummy}*args, **kwargs)
    return opaque
{name} = _make("{name}")""",
    "public_name_only": """
def {name}(*args, **kwargs):
    return torch.ops.qgcustom.{name}({dummy}*args, **kwargs)""",
}


@register_check
class _GroupedScale(PlanCheck):
    """Test check: scale needs one column per group of x."""

    name = "test_custom_op_groups"

    def check(self, call):
        x, scale, group = call["x"], call["scale"], call["group_size"]
        if scale.shape[-1] != x.shape[-1] // group:
            yield Finding("scale_shape", f"scale has {scale.shape[-1]} groups; x has {x.shape[-1] // group}")


@pytest.mark.parametrize("style", sorted(WRAPPERS))
@pytest.mark.parametrize("placeholder", ["dummy", "pad", None])
def test_opaque_wrappers_are_guarded_at_the_op_and_bound_by_its_schema(make_module, quiet_log, style, placeholder):
    name = f"scaled_{style}_{placeholder or 'none'}"
    dummy = "torch.empty(1), " if placeholder else ""
    source = LIBRARY.format(
        name=name,
        placeholder=f"Tensor {placeholder}, " if placeholder else "",
        wrapper=WRAPPERS[style].format(name=name, dummy=dummy),
    )
    quantguard.register(
        Contract(
            target=f"qgcustom_{name}.{name}",
            kind="quant",
            backend="hip",
            checks=("test_custom_op_groups",),
            key=("group_size=", "x", "scale"),
            params=("group_size", "x", "scale", "dtype"),
        )
    )
    with capture_events() as events:
        quantguard.enable(targets="qgcustom_*", log=quiet_log)
        module = make_module(f"qgcustom_{name}", source)
        applied = lifecycle.current_runtime().applied[f"qgcustom_{name}.{name}"]
        assert applied.state.binder.source == "op schema"
        assert applied.state.binder.names == ("group_size", "x", "scale", "dtype")
        assert applied.state.binder.defaults["dtype"] is torch.bfloat16
        x = torch.randn(4, 256)
        getattr(module, name)(128, x, torch.ones(4, 2))  # clean
        assert not events.violations()
        getattr(module, name)(128, x, torch.ones(4, 1))  # one group short
    assert [e["check"] for e in events.violations()] == ["scale_shape"]
    assert not events.named("target_mismatch") and not events.named("internal_error")


def test_a_plain_python_function_is_not_mistaken_for_an_op(make_module, quiet_log):
    module = make_module("qgcustom_plain", "def scaled(group_size, x, scale):\n    return x\n")
    quantguard.register(Contract(target="qgcustom_plain.scaled", kind="quant", backend="triton", key=("x",)))
    quantguard.enable(targets="qgcustom_plain.*", log=quiet_log)
    applied = lifecycle.current_runtime().applied["qgcustom_plain.scaled"]
    assert applied.state.binder.source == "signature" and type(applied.guard).__name__ == "Guard[scaled]"
    assert module.scaled(128, 1, 2) == 1


def test_schema_dtypes_read_back_as_dtypes():
    assert scalar_type(15) is torch.bfloat16 and scalar_type(24) is torch.float8_e4m3fn
    assert scalar_type(torch.float16) is torch.float16 and scalar_type(True) is True
    schema_op = torch.ops.aten.to.dtype  # (Tensor self, ScalarType dtype, ...): a dtype parameter with no default
    assert "dtype" in op_parameters(schema_op).dtype_params
