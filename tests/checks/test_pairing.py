"""``scale_pairing``: each GEMM operand with its own scale, from provenance, before numerics.

Activations: the quantized x and x_scale must come from one producer call.
Weights: w and w_scale must be the pair the loader (or ``scan_weights``)
registered.  Faults are applied by hand to the simulator's AITER calls and to
the ATOM-like workload after loading; clean variants (views, reshapes,
``.view(dtype)``, ``as_strided``, slices of one pair) must stay quiet.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import quantguard
import quantguard.sim as sim
from quantguard.sim import workload
from quantguard.testing import capture_events

M, N, K = 40, 256, 512


def _x(seed: int) -> torch.Tensor:
    return (torch.randn(M, K, generator=torch.Generator().manual_seed(seed)) * 2).to(torch.bfloat16)


def _block_weight(fp8: torch.dtype, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    w = torch.randn(N, K, generator=torch.Generator().manual_seed(seed)) * 0.05
    scale = w.view(N // 128, 128, K // 128, 128).abs().amax((1, 3)) / torch.finfo(fp8).max
    expanded = scale.repeat_interleave(128, 0).repeat_interleave(128, 1)
    return (w / expanded).to(fp8), scale


def _enable(tmp_path) -> None:
    quantguard.enable(log=str(tmp_path / "log.jsonl"), sample_rate=1.0)


def _pairing(events) -> list[dict]:
    return events.violations(check="scale_pairing")


# -- activations -------------------------------------------------------------------------------

SAME_CALL = {
    "as_produced": lambda q, s: (q, s),
    "reshaped": lambda q, s: (q.reshape(-1).reshape(q.shape), s.reshape(-1).reshape(s.shape)),
    "view_dtype": lambda q, s: (q.view(torch.uint8).view(q.dtype), s.view(torch.int32).view(torch.float32)),
    "as_strided": lambda q, s: (q, torch.as_strided(s, s.shape, s.stride(), s.storage_offset())),
    "double_transpose": lambda q, s: (q.t().t(), s.t().t()),
    "row_slices": lambda q, s: (q[: M // 2], s[: M // 2]),
}


@pytest.mark.parametrize("name", sorted(SAME_CALL))
def test_activation_and_scale_of_one_call_are_quiet(tmp_path, name):
    sim.install("gfx942")
    import aiter

    wq, ws = _block_weight(aiter.dtypes.fp8)
    with capture_events() as events:
        _enable(tmp_path)
        q, s = aiter.per_group_quant_hip(_x(0), quant_dtype=aiter.dtypes.fp8)
        aiter.per_group_quant_hip(_x(1), quant_dtype=aiter.dtypes.fp8)  # another call, not consumed
        x, x_scale = SAME_CALL[name](q, s)
        aiter.gemm_a8w8_blockscale(x, wq, x_scale, ws)
    assert not _pairing(events), [e["message"] for e in _pairing(events)]


MIXED = {
    "another_activation_scale": lambda q1, s1, q2, s2: (q1, s2),
    "through_views": lambda q1, s1, q2, s2: (q1.view(torch.uint8).view(q1.dtype), s2.reshape(-1).reshape(s2.shape)),
    "row_slices": lambda q1, s1, q2, s2: (q1[: M // 2], s2[: M // 2]),
}


@pytest.mark.parametrize("name", sorted(MIXED))
@pytest.mark.parametrize("consumer", ["gemm_a8w8_blockscale", "triton"])
def test_scale_of_another_producer_call_is_caught(tmp_path, name, consumer):
    sim.install("gfx942")
    import aiter

    wq, ws = _block_weight(aiter.dtypes.fp8)
    with capture_events() as events:
        _enable(tmp_path)
        if consumer == "triton":  # looked up once guarded
            from aiter.ops.triton.gemm.basic.gemm_a8w8_blockscale import gemm_a8w8_blockscale as gemm
        else:
            gemm = aiter.gemm_a8w8_blockscale
        q1, s1 = aiter.per_group_quant_hip(_x(0), quant_dtype=aiter.dtypes.fp8)
        q2, s2 = aiter.per_group_quant_hip(_x(1), quant_dtype=aiter.dtypes.fp8)
        x, x_scale = MIXED[name](q1, s1, q2, s2)
        gemm(x, wq, x_scale, ws)
    [violation] = [e for e in _pairing(events) if e["count"] == 1]
    assert violation["severity"] == "error" and violation["variant"] == "x_scale"
    message = violation["message"]
    assert message.startswith("x_scale is not x's") and message.count("per_group_quant_hip call #") == 2
    details = violation["details"]
    assert details["x_producer"]["pair"] != details["x_scale_producer"]["pair"]
    assert details["x_producer"]["call"] + 1 == details["x_scale_producer"]["call"]
    assert "test_pairing.py" in details["x_producer"]["callsite"]
    # reported before any numerics of the same call
    order = [e["check"] for e in events.violations() if e["target"] == violation["target"]]
    assert "numerics" not in order or order.index("scale_pairing") < order.index("numerics")


def test_a_consumed_scale_is_still_known(tmp_path):
    """The first GEMM spends the records; a second GEMM mixing them up is still caught."""
    sim.install("gfx942")
    import aiter

    wq, ws = _block_weight(aiter.dtypes.fp8)
    with capture_events() as events:
        _enable(tmp_path)
        q1, s1 = aiter.per_group_quant_hip(_x(0), quant_dtype=aiter.dtypes.fp8)
        aiter.gemm_a8w8_blockscale(q1, wq, s1, ws)
        q2, s2 = aiter.per_group_quant_hip(_x(1), quant_dtype=aiter.dtypes.fp8)
        aiter.gemm_a8w8_blockscale(q2, wq, s1, ws)
    assert len(_pairing(events)) == 1


def test_unknown_scale_stays_silent(tmp_path):
    sim.install("gfx942")
    import aiter

    wq, ws = _block_weight(aiter.dtypes.fp8)
    with capture_events() as events:
        _enable(tmp_path)
        q, s = aiter.per_group_quant_hip(_x(0), quant_dtype=aiter.dtypes.fp8)
        aiter.gemm_a8w8_blockscale(q, wq, s.clone(), ws)  # a copy has no provenance: not judged here
    assert not _pairing(events)


def test_scale_overwritten_in_place_is_unknown(tmp_path):
    """An in-place write ends the record: the scale is no longer that call's, nor anyone's."""
    sim.install("gfx942")
    import aiter

    wq, ws = _block_weight(aiter.dtypes.fp8)
    with capture_events() as events:
        _enable(tmp_path)
        q1, s1 = aiter.per_group_quant_hip(_x(0), quant_dtype=aiter.dtypes.fp8)
        q2, s2 = aiter.per_group_quant_hip(_x(1), quant_dtype=aiter.dtypes.fp8)
        s2.copy_(s1)
        aiter.gemm_a8w8_blockscale(q1, wq, s2, ws)
    assert not _pairing(events)


# -- weights: plain modules registered by scan_weights ----------------------------------------


class _Linear(nn.Module):
    def __init__(self, seed: int, fp8: torch.dtype) -> None:
        super().__init__()
        weight, scale = _block_weight(fp8, seed)
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.weight_scale = nn.Parameter(scale, requires_grad=False)


class _Model(nn.Module):
    def __init__(self, fp8: torch.dtype) -> None:
        super().__init__()
        self.up = _Linear(1, fp8)
        self.down = _Linear(2, fp8)


def _gemm_plain(aiter, w, w_scale, seed: int = 0):
    q, s = aiter.per_group_quant_hip(_x(seed), quant_dtype=aiter.dtypes.fp8)
    return aiter.gemm_a8w8_blockscale(q, w, s, w_scale)


PLAIN_CLEAN = {
    "as_loaded": lambda m: (m.up.weight, m.up.weight_scale),
    "data_aliases": lambda m: (m.up.weight.data, m.up.weight_scale.data),
    "views": lambda m: (m.up.weight.view(torch.uint8).view(m.up.weight.dtype), m.up.weight_scale.t().t()),
    "float_copy": lambda m: (m.up.weight, m.up.weight_scale.clone()),
}


@pytest.mark.parametrize("name", sorted(PLAIN_CLEAN))
def test_registered_pair_is_quiet(tmp_path, name):
    sim.install("gfx942")
    import aiter

    model = _Model(aiter.dtypes.fp8)
    with capture_events() as events:
        _enable(tmp_path)
        quantguard.scan_weights(model)
        _gemm_plain(aiter, *PLAIN_CLEAN[name](model))
    assert not _pairing(events), [e["message"] for e in _pairing(events)]


def _requantize_through_loader(model) -> tuple:
    weight, scale = _block_weight(model.up.weight.dtype, 7)
    model.up.weight.data, model.up.weight_scale.data = weight, scale
    quantguard.scan_weights(model)  # the loader registers the new pair
    return model.up.weight, model.up.weight_scale


def test_requantization_through_the_loader_re_registers(tmp_path):
    sim.install("gfx942")
    import aiter

    model = _Model(aiter.dtypes.fp8)
    with capture_events() as events:
        _enable(tmp_path)
        quantguard.scan_weights(model)
        _gemm_plain(aiter, *_requantize_through_loader(model))
    assert not _pairing(events)


def test_unregistered_weights_stay_silent(tmp_path):
    sim.install("gfx942")
    import aiter

    model = _Model(aiter.dtypes.fp8)
    with capture_events() as events:
        _enable(tmp_path)
        _gemm_plain(aiter, model.up.weight, torch.ones_like(model.up.weight_scale))
    assert not _pairing(events)


def _overwrite_in_place(m):
    with torch.no_grad():
        m.up.weight_scale.mul_(2)
    return m.up.weight, m.up.weight_scale


def _overwrite_through_data(m):
    m.up.weight_scale.data.mul_(2)
    return m.up.weight, m.up.weight_scale


def _weight_replaced(m):
    m.up.weight.data = _block_weight(m.up.weight.dtype, 9)[0]
    return m.up.weight, m.up.weight_scale


def _weight_rewritten(m):
    with torch.no_grad():
        m.up.weight.copy_(_block_weight(m.up.weight.dtype, 9)[0])
    return m.up.weight, m.up.weight_scale


PLAIN_FAULTS = {
    "other_layer_scale": (lambda m: (m.up.weight, m.down.weight_scale), "down.weight_scale"),
    "ones": (lambda m: (m.up.weight, torch.ones_like(m.up.weight_scale)), "unregistered"),
    "scale_overwritten": (_overwrite_in_place, "overwritten after loading"),
    "scale_overwritten_via_data": (_overwrite_through_data, "overwritten after loading"),
    "weight_replaced_scale_kept": (_weight_replaced, "replaced after loading"),
    "weight_rewritten_scale_kept": (_weight_rewritten, "rewritten after loading"),
}


@pytest.mark.parametrize("name", sorted(PLAIN_FAULTS))
def test_weight_with_a_scale_not_its_own_is_caught(tmp_path, name):
    sim.install("gfx942")
    import aiter

    model = _Model(aiter.dtypes.fp8)
    fault, fragment = PLAIN_FAULTS[name]
    with capture_events() as events:
        _enable(tmp_path)
        quantguard.scan_weights(model)
        _gemm_plain(aiter, *fault(model))
    [violation] = [e for e in _pairing(events) if e["count"] == 1]
    assert violation["severity"] == "error" and violation["variant"] == "w_scale"
    assert fragment in violation["message"] and "up.weight" in violation["message"], violation["message"]
    assert violation["details"]["layer"] == "up"


# -- weights: the ATOM-like workload (registered after process_weights_after_loading) ----------


def _swap_scales(model):
    model.get_submodule("layers.0.attn.q_proj").weight_scale = model.get_submodule("layers.1.attn.q_proj").weight_scale


def _ones_scale(model):
    layer = model.get_submodule("layers.0.attn.o_proj")
    layer.weight_scale = nn.Parameter(torch.ones_like(layer.weight_scale), requires_grad=False)


def _overwrite_scale(model):
    with torch.no_grad():
        model.get_submodule("layers.0.mlp.shared_expert.gate_up_proj").weight_scale.mul_(0.5)


def _requantize_weight_only(model):
    layer = model.get_submodule("layers.1.attn.kv_a_proj")
    layer.weight.data = (layer.weight.data.float() * 0.5).to(layer.weight.dtype)


WORKLOAD_FAULTS = {
    "another_layers_scale": (_swap_scales, "layers.0.attn.q_proj.weight", "layers.1.attn.q_proj.weight_scale"),
    "ones_scale": (_ones_scale, "layers.0.attn.o_proj.weight", "unregistered"),
    "overwritten_scale": (
        _overwrite_scale,
        "layers.0.mlp.shared_expert.gate_up_proj.weight_scale",
        "overwritten after loading",
    ),
    "scale_left_from_before_requantization": (
        _requantize_weight_only,
        "layers.1.attn.kv_a_proj.weight",
        "replaced after loading",
    ),
}


@pytest.mark.parametrize("backend", ["ck", "triton"])
@pytest.mark.parametrize("name", sorted(WORKLOAD_FAULTS))
def test_workload_weight_scale_faults_are_caught(tmp_path, name, backend):
    fault, names, fragment = WORKLOAD_FAULTS[name]
    with capture_events() as events:
        quantguard.enable(sample_rate=0.0, log=str(tmp_path / "log.jsonl"))  # the first calls are inspected
        with workload.deploy(arch="gfx942", backend=backend) as deployment:
            model = workload.build_model(deployment)
            fault(model)
            workload.generate(model, [1, 2, 3, 4, 5], max_new_tokens=2)
        quantguard.disable()
    messages = [e["message"] for e in _pairing(events)]
    assert any(names in m and fragment in m for m in messages), messages
    assert not events.named("internal_error")


def test_attached_model_pairs_are_registered(tmp_path):
    sim.install("gfx942")
    import aiter

    model = _Model(aiter.dtypes.fp8)
    with capture_events() as events:
        _enable(tmp_path)
        quantguard.attach(model)
        _gemm_plain(aiter, model.up.weight, model.up.weight_scale)
        _gemm_plain(aiter, model.up.weight, model.down.weight_scale)
    [violation] = [e for e in _pairing(events) if e["count"] == 1]
    assert "down.weight_scale" in violation["message"]


class _Experts(nn.Module):
    def __init__(self, fp8: torch.dtype) -> None:
        super().__init__()
        pairs = [_block_weight(fp8, seed) for seed in (3, 4)]
        self.w13_weight = nn.Parameter(torch.stack([w for w, _ in pairs]), requires_grad=False)
        self.w13_weight_scale = nn.Parameter(torch.stack([s for _, s in pairs]), requires_grad=False)


@pytest.mark.parametrize("weight_expert, scale_expert", [(0, 0), (1, 1), (0, 1)])
def test_moe_expert_slices_pair_by_expert(tmp_path, weight_expert, scale_expert):
    sim.install("gfx942")
    import aiter

    experts = _Experts(aiter.dtypes.fp8)
    with capture_events() as events:
        _enable(tmp_path)
        quantguard.scan_weights(experts)
        _gemm_plain(aiter, experts.w13_weight[weight_expert], experts.w13_weight_scale[scale_expert])
    messages = [e["message"] for e in _pairing(events)]
    if weight_expert == scale_expert:
        assert not messages
    else:
        [message] = messages
        assert "<model>.w13_weight[0]" in message and "<model>.w13_weight_scale[1]" in message
