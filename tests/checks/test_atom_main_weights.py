"""Weight scan pairs every weight with its scale (dense and MoE names); MoE backend choice per layer."""

from __future__ import annotations

import pytest
import torch

from quantguard.checks.backend_selection import audit_backend_selection
from quantguard.checks.weights import scale_name, scan_tensors
from quantguard.contracts.atom_selection import moe_selections
from quantguard.hardware import Platform

#: Dense linear, and ATOM's MoE gate/up and down experts (3D: experts first).
WEIGHTS = [
    ("model.q_proj.weight", (256, 256)),
    ("model.experts.w13_weight", (4, 256, 128)),
    ("model.experts.w2_weight", (4, 128, 128)),
]
_GEN = torch.Generator().manual_seed(0)


def _fp8_checkpoint(shape):
    """FP8 e4m3fn values with fp32 block scales (one per 128x128 block, per expert)."""
    values = (torch.randn(shape, generator=_GEN) * 100).clamp(-448, 448).to(torch.float8_e4m3fn)
    blocks = (*shape[:-2], shape[-2] // 128, shape[-1] // 128)
    return values, torch.full(blocks, 1e-4)


def _bad(kind, shape):
    """The tensors of one loading incident, and the check that must report it."""
    weight, scale = _fp8_checkpoint(shape)
    if kind == "inverted_scale":
        return {"weight": weight, "weight_scale": 1 / scale}, "weight_magnitude"
    if kind == "dropped_block_scale":  # copy_ of FP8 into a BF16 parameter without dequantizing
        return {"weight": weight.to(torch.bfloat16)}, "weight_magnitude"
    if kind == "e8m0_copied_as_zeros":
        return {"weight": weight, "weight_scale": torch.zeros(scale.shape, dtype=torch.uint8)}, "scale_values"
    if kind == "e8m0_numerically_converted":
        return {"weight": weight, "weight_scale": torch.full(scale.shape, 3, dtype=torch.uint8)}, "scale_values"
    if kind == "never_loaded":
        return {"weight": torch.zeros(shape, dtype=torch.bfloat16)}, "unloaded_parameter"
    if kind == "nan":
        bf16 = torch.randn(shape, generator=_GEN).bfloat16()
        bf16.view(-1)[7] = float("nan")
        return {"weight": bf16}, "nonfinite"
    raise ValueError(kind)


def _named(name, tensors):
    return [(name if key == "weight" else scale_name(name), tensor) for key, tensor in tensors.items()]


@pytest.mark.parametrize("name, shape", WEIGHTS)
@pytest.mark.parametrize(
    "kind",
    [
        "inverted_scale",
        "dropped_block_scale",
        "e8m0_copied_as_zeros",
        "e8m0_numerically_converted",
        "never_loaded",
        "nan",
    ],
)
def test_each_incident_is_caught_for_dense_and_moe_weights(name, shape, kind):
    tensors, check = _bad(kind, shape)
    findings = scan_tensors(_named(name, tensors))
    assert [f.check for f in findings] == [check]
    assert findings[0].details["parameter"] == (scale_name(name) if check == "scale_values" else name)


@pytest.mark.parametrize("name, shape", WEIGHTS)
def test_healthy_weights_are_quiet(name, shape):
    weight, scale = _fp8_checkpoint(shape)
    e8m0 = torch.full(scale.shape, 120, dtype=torch.uint8)
    assert scan_tensors(_named(name, {"weight": weight, "weight_scale": scale})) == []
    assert scan_tensors(_named(name, {"weight": weight, "weight_scale": e8m0})) == []
    assert scan_tensors([(name, torch.randn(shape, generator=_GEN).bfloat16())]) == []


def test_moe_weight_is_paired_with_its_own_scale_not_the_dense_name():
    weight, scale = _fp8_checkpoint((4, 256, 128))
    named = [
        ("experts.w13_weight", weight),
        ("experts.w13_weight_scale", 1 / scale),
        ("experts.weight_scale", scale),
    ]  # a dense-style name must not be used for w13
    assert [f.check for f in scan_tensors(named)] == ["weight_magnitude"]


@pytest.mark.parametrize(
    "weight, scale",
    [
        ("x.weight", "x.weight_scale"),
        ("x.w13_weight", "x.w13_weight_scale"),
        ("w2_weight", "w2_weight_scale"),
        ("x.bias", None),
    ],
)
def test_scale_name(weight, scale):
    assert scale_name(weight) == scale


# --------------------------------------------------------------------------- MoE per-layer selection


class _Method:
    def __init__(self, use_triton):
        self.use_triton = use_triton


class _Layer(torch.nn.Module):
    def __init__(self, prefix, method):
        super().__init__()
        self.prefix, self.quant_method = prefix, method


def _model(*choices):
    model = torch.nn.Module()
    for index, choice in enumerate(choices):
        model.add_module(f"moe{index}", _Layer(f"layers.{index}.mlp.experts", _Method(choice)))
    return model


def _platform(ck_free):
    return Platform("gfx950", "test", ck_free, "test CK-free source", "float8_e4m3fn", "test")


def test_moe_selections_read_each_layer():
    model = _model(True, False)
    model.add_module("plain", _Layer("layers.9.mlp", object()))  # no per-instance switch: not a selection
    assert moe_selections(model) == [
        ("layers.0.mlp.experts", "_Method", True),
        ("layers.1.mlp.experts", "_Method", False),
    ]


@pytest.mark.parametrize(
    "ck_free, choices, flagged",
    [
        (True, (True, False), ["layers.1.mlp.experts"]),  # CK-free: a CK path selected is a violation
        (True, (True, True), []),  # Triton selected is clean
        (False, (False, False), []),  # a CK build may run CK
    ],
)
def test_audit_reads_moe_choices_per_layer(ck_free, choices, flagged):
    findings = [
        finding
        for path, finding in audit_backend_selection(_platform(ck_free), _model(*choices))
        if path.endswith(".use_triton")
    ]
    assert [finding.details["layer"] for finding in findings] == flagged
    assert all(f.check == "backend_selection" and "test CK-free source" in f.message for f in findings)
