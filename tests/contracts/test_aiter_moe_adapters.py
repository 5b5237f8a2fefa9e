"""How ``fused_moe`` calls are read: which activations and options the MoE reference models."""

from __future__ import annotations

import enum
import types
from typing import Any

import pytest

from quantguard.contracts.aiter.moe_adapters import fused_moe


class ActivationType(enum.IntEnum):  # the names of AITER's pybind enum
    Silu = 0
    Gelu = 1
    Swiglu = 2


class _Call:
    """The parts of a CallRecord the adapter reads."""

    def __init__(self, **arguments: Any) -> None:
        self.arguments = {
            "hidden_states": "x",
            "w1": "w1",
            "w2": "w2",
            "topk_weight": "weights",
            "topk_ids": "ids",
            "quant_type": "QuantType.No",
            **arguments,
        }
        self.result = "out"
        self.platform = types.SimpleNamespace(expected_fp8=lambda: None)

    def __getitem__(self, name: str) -> Any:
        return self.arguments[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.arguments.get(name, default)


@pytest.mark.parametrize(
    "arguments, expected",
    [
        ({"activation": ActivationType.Silu}, ("silu", 7.0)),
        ({"activation": ActivationType.Swiglu}, ("swiglu", 7.0)),  # swiglu_limit=None: AITER's 7.0
        ({"activation": ActivationType.Swiglu, "swiglu_limit": 10.0}, ("swiglu", 10.0)),
        ({"activation": ActivationType.Swiglu, "gate_mode": "separated"}, ("swiglu", 7.0)),
        ({"activation": ActivationType.Swiglu, "gate_mode": "interleave"}, None),
        ({"activation": ActivationType.Swiglu, "bias1": "b1"}, None),  # gpt-oss expert biases: not modelled
        ({"activation": ActivationType.Silu, "swiglu_limit": 7.0}, None),  # clamped SiLU: not modelled
        ({"activation": ActivationType.Gelu}, None),
        ({"activation": ActivationType.Silu, "intermediate_pad": 64}, None),
    ],
)
def test_fused_moe_activation_is_read(arguments, expected):
    view = fused_moe(_Call(**arguments))
    if expected is None:
        assert view is None
        return
    assert (view.activation, view.swiglu_limit) == expected
    assert view.swiglu_alpha == 1.702
