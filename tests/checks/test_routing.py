"""``custom_routing``: a routing that was given a custom function returns exactly that function's result.

The incident (DeepSeek-V4 hash layers): ATOM's ``FusedMoE.select_experts``
computed its own top-k from the gate logits although a
``custom_routing_function`` was passed.  The simulated ATOM reproduces it
(``custom_routing_ignored``); the generic check is also driven through a user
contract whose routing returns chosen wrong answers.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

import quantguard
import quantguard.sim as sim
from quantguard.contracts.atom import CONTRACTS
from quantguard.testing import capture_events

TOKENS, EXPERTS, TOPK = 12, 8, 2
#: A hash table token -> experts, as DeepSeek-V4's ``tid2eid``.
TID2EID = torch.tensor([[3, 5], [0, 7], [1, 2], [6, 4]])
[SELECT_EXPERTS] = [c for c in CONTRACTS if c.target.endswith("FusedMoE.select_experts")]


class HashRouting:
    """A custom routing function like V4's ``_hash_topk``: ids from the table, sqrt-softplus weights."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.calls = 0
        self.fail_after = fail_after

    def __call__(self, hidden_states, gating_output, topk, renormalize):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("forward context is gone")
        ids = TID2EID[torch.arange(gating_output.shape[0]) % len(TID2EID)][:, :topk]
        weights = torch.nn.functional.softplus(gating_output.float()).sqrt().gather(1, ids)
        if renormalize:
            weights = weights / weights.sum(-1, keepdim=True)
        return weights, ids.to(torch.int32)


def _inputs():
    generator = torch.Generator().manual_seed(0)
    return torch.randn(TOKENS, 64, generator=generator), torch.randn(TOKENS, EXPERTS, generator=generator)


def _select(select_experts, routing, **extra):
    hidden, logits = _inputs()
    return select_experts(
        hidden_states=hidden,
        router_logits=logits,
        top_k=TOPK,
        use_grouped_topk=True,
        renormalize=True,
        topk_group=2,
        num_expert_group=4,
        custom_routing_function=routing,
        scoring_func="sigmoid",
        e_score_correction_bias=torch.zeros(EXPERTS),
        routed_scaling_factor=1.0,
        **extra,
    )


@pytest.mark.parametrize("faulty", [False, True], ids=["clean", "custom_routing_ignored"])
def test_simulated_atom_select_experts(monkeypatch, quiet_log, faulty):
    monkeypatch.setenv("ATOM_CK_FREE", "0")
    sim.install("gfx942", atom=True, faults=("custom_routing_ignored",) if faulty else ())
    from atom.model_ops.moe import FusedMoE

    routing = HashRouting()
    with capture_events() as events:
        quantguard.enable(log=quiet_log, sample_rate=1.0)
        weights, ids = _select(FusedMoE.select_experts, routing)
    found = events.violations(target=SELECT_EXPERTS.target)
    assert not events.named("internal_error")
    if not faulty:
        assert not found and routing.calls == 2  # ATOM's call, then the check's
        assert torch.equal(ids, routing(*_inputs(), TOPK, True)[1])
        return
    assert routing.calls == 1  # only the check called it
    by_check = {event["check"]: event["message"] for event in found}
    assert set(by_check) == {"kwarg_ignored", "ignored_parameter"}
    assert "sampled tokens were routed to other experts than it chose" in by_check["kwarg_ignored"]
    assert "accepts custom_routing_function but never reads it" in by_check["ignored_parameter"]


def test_unsampled_calls_never_call_the_function(monkeypatch, quiet_log):
    monkeypatch.setenv("ATOM_CK_FREE", "0")
    sim.install("gfx942", atom=True)
    from atom.model_ops.moe import FusedMoE

    routing = HashRouting()
    with capture_events() as events:
        quantguard.enable(log=quiet_log, sample_rate=0.0, sample_first=0)
        for _ in range(3):
            _select(FusedMoE.select_experts, routing)
    assert routing.calls == 3 and not events.violations()


_ROUTER = """
import torch
BUFFER = {"weights": torch.zeros(12, 2), "ids": torch.zeros(12, 2, dtype=torch.int32)}

def select_experts(hidden_states, router_logits, top_k, use_grouped_topk, renormalize, topk_group=None,
                   num_expert_group=None, custom_routing_function=None, scoring_func="softmax",
                   e_score_correction_bias=None, num_routing_experts=0, num_fused_shared_experts=0,
                   fused_shared_experts_scoring_func=None, routed_scaling_factor=1.0):
    weights, ids = custom_routing_function(
        hidden_states=hidden_states, gating_output=router_logits, topk=top_k, renormalize=renormalize)
    if MODE == "weights":
        return weights * 0.5, ids
    if MODE == "reversed":
        return weights.flip(-1), ids.flip(-1)
    if MODE == "own_topk_in_buffer":  # its own top-k, written into the buffer the function also writes
        top = router_logits.topk(top_k, dim=-1)
        BUFFER["weights"].copy_(top.values)
        BUFFER["ids"].copy_(top.indices)
        return BUFFER["weights"], BUFFER["ids"]
    return weights, ids
"""


def _buffered(routing):
    """The function writes its result into the module's buffer and returns it (V4's fused shared path)."""

    def write_into_buffer(**arguments):
        weights, ids = routing(**arguments)
        buffer = write_into_buffer.buffer
        buffer["weights"].copy_(weights)
        buffer["ids"].copy_(ids)
        return buffer["weights"], buffer["ids"]

    return write_into_buffer


@pytest.mark.parametrize(
    "mode, expected",
    [
        ("same", None),
        ("reversed", None),  # the same experts in another order: the same routing
        ("weights", "carry other weights than it produced"),
        ("own_topk_in_buffer", "were routed to other experts than it chose"),
    ],
)
def test_custom_routing_check_through_a_user_contract(make_module, quiet_log, mode, expected):
    module = make_module("qgt_router", _ROUTER)
    module.MODE = mode
    quantguard.register(dataclasses.replace(SELECT_EXPERTS, target="qgt_router.select_experts", options={}))
    routing = HashRouting()
    if mode == "own_topk_in_buffer":
        routing = _buffered(routing)
        routing.buffer = module.BUFFER
    with capture_events() as events:
        quantguard.enable(log=quiet_log, sample_rate=1.0)
        weights, ids = _select(module.select_experts, routing)
        returned = weights.clone(), ids.clone()
    found = [e["message"] for e in events.violations(check="kwarg_ignored")]
    assert not events.named("internal_error")
    if expected is None:
        assert not found
    else:
        assert len(found) == 1 and expected in found[0], found
    # the host keeps what the call returned, even where the check's re-run wrote into the same buffer
    assert torch.equal(weights, returned[0]) and torch.equal(ids, returned[1])
    if mode == "own_topk_in_buffer":
        assert torch.equal(module.BUFFER["ids"], _inputs()[1].topk(TOPK, dim=-1).indices.int())


def test_a_function_that_raises_on_the_rerun_fails_open(make_module, quiet_log):
    module = make_module("qgt_router", _ROUTER)
    module.MODE = "weights"
    quantguard.register(dataclasses.replace(SELECT_EXPERTS, target="qgt_router.select_experts", options={}))
    with capture_events() as events:
        quantguard.enable(log=quiet_log, sample_rate=1.0)
        weights, _ = _select(module.select_experts, HashRouting(fail_after=1))
    assert weights.shape == (TOKENS, TOPK)  # the host's call returned normally
    assert not events.violations(check="kwarg_ignored")
    [error] = events.named("internal_error")
    assert error["check"] == "custom_routing"
