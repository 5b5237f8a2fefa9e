"""Byte-level provenance: records follow the bytes (views match), in-place writes and freed storage end them."""

from __future__ import annotations

import gc

import pytest
import torch

from quantguard.engine.provenance import ProvenanceStore, WeightPairs, byte_range
from quantguard.records import Produced


def _produced(role: str = "scales") -> Produced:
    return Produced("lib.producer", role, "row_major")


SAME_BYTES = {
    "itself": lambda t: t,
    "reshape": lambda t: t.reshape(-1),
    "transpose": lambda t: t.t(),
    "view_dtype": lambda t: t.view(torch.int32),
    "view_bytes": lambda t: t.view(torch.uint8),
    "as_strided": lambda t: torch.as_strided(t, (t.shape[1], t.shape[0]), (1, t.shape[1])),
    "detach": lambda t: t.detach(),
    "data_alias": lambda t: t.data,
}


@pytest.mark.parametrize("name", sorted(SAME_BYTES))
def test_views_of_the_recorded_bytes_match(name):
    store = ProvenanceStore()
    tensor = torch.rand(8, 4)
    produced = _produced()
    store.record(tensor, produced)
    assert store.lookup(SAME_BYTES[name](tensor)) is produced


def test_sub_ranges_match_only_when_asked():
    store = ProvenanceStore()
    tensor = torch.rand(8, 4)
    store.record(tensor, _produced())
    assert store.lookup(tensor[:3]) is not None  # starts where the record starts
    assert store.lookup(tensor[2:5]) is None
    assert store.lookup(tensor[2:5], within=True) is not None
    assert store.lookup(torch.rand(8, 4)) is None  # other storage


@pytest.mark.parametrize(
    "write",
    [
        lambda t: t.add_(1),
        lambda t: t.view(-1)[3].fill_(0),
        lambda t: t.t().mul_(2),
    ],
)
def test_in_place_write_ends_the_record(write):
    store = ProvenanceStore()
    tensor = torch.rand(8, 4)
    store.record(tensor, _produced())
    write(tensor)
    assert store.lookup(tensor) is None and store.lookup(tensor.reshape(-1), within=True, spent=True) is None


def test_replaced_data_ends_the_record():
    store = ProvenanceStore()
    param = torch.nn.Parameter(torch.rand(8, 4), requires_grad=False)
    store.record(param, _produced())
    param.data = torch.rand(8, 4)
    assert store.lookup(param) is None


def test_freed_storage_drops_the_record():
    store = ProvenanceStore()
    tensor = torch.rand(8, 4)
    store.record(tensor.t(), _produced())  # a view: its base keeps it alive
    assert store.live == 1
    del tensor
    gc.collect()
    assert store.live == 0


def test_consumed_records_are_spent_not_forgotten():
    store = ProvenanceStore()
    tensor = torch.rand(8, 4)
    produced = _produced()
    store.record(tensor, produced)
    assert store.lookup(tensor, consume=True) is produced
    assert store.live == 0 and store.lookup(tensor) is None
    assert store.lookup(tensor, spent=True) is produced


def test_a_producer_call_pairs_its_outputs():
    store = ProvenanceStore()
    first, second = store.new_call("lib.quant", 1, "model.py:3"), store.new_call("lib.quant", 2)
    assert first.pair_id != second.pair_id
    assert first.describe() == "lib.quant call #1 at model.py:3"


def test_rewriting_a_buffer_replaces_its_record():
    store = ProvenanceStore()
    buffer = torch.rand(8, 4)
    store.record(buffer, _produced())
    buffer.add_(1)
    newer = _produced()
    store.record(buffer, newer)
    assert store.lookup(buffer) is newer and store.live == 1


def test_byte_range_of_views():
    tensor = torch.rand(8, 4)
    _, address, start, extent = byte_range(tensor[2:])
    assert address == tensor.untyped_storage().data_ptr() and start == 2 * 4 * 4 and extent == 6 * 4 * 4
    assert byte_range(tensor.view(torch.uint8))[2:] == byte_range(tensor)[2:]


def test_weight_pairs_follow_experts():
    pairs = WeightPairs()
    weight, scale = torch.zeros(4, 16, 8, dtype=torch.uint8), torch.rand(4, 2, 1)
    pair = pairs.register(weight, scale, "model.experts", "w13_weight", "w13_weight_scale")
    [(found, start, stop)] = pairs.find(weight[2], "weight")
    assert found is pair and pair.expert_of("weight", start, stop) == 2
    [(_, start, stop)] = pairs.find(scale[3], "scale")
    assert pair.expert_of("scale", start, stop) == 3


def test_weight_pairs_re_register_and_outlive_one_side():
    pairs = WeightPairs()
    weight = torch.zeros(16, 8, dtype=torch.uint8)
    old_scale, new_scale = torch.rand(16, 1), torch.rand(16, 1)
    pairs.register(weight, old_scale, "layer", "weight", "weight_scale")
    pair = pairs.register(weight, new_scale, "layer", "weight", "weight_scale")
    assert len(pairs) == 1 and not pairs.find(old_scale, "scale")
    del new_scale
    gc.collect()
    [(found, _, _)] = pairs.find(weight, "weight")
    assert found is pair and pair.scale_replaced()
