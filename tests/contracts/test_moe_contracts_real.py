"""The MoE routing and activation contracts against the real AITER/ATOM trees (``shared/third_party``).

In a subprocess, as ``test_atom_main_real``.

The real ``FusedMoE.select_experts`` (a staticmethod of the class behind the
``LazyMoEWrapper``) is patched, its signature is the one the contract
declares, and a call with a ``custom_routing_function`` is judged on CPU: the
real function returns the custom function's result as is, so a pure function
is quiet and one whose second answer differs (what a path computing its own
top-k looks like to the check) is reported.  The real ``fused_moe`` has the
keywords the MoE adapter reads to decide which activation to model.  Skipped
where the trees or their requirements are absent.
"""

from __future__ import annotations

import textwrap

import pytest
from real_atom_probe import run_probe

_TARGET = "atom.model_ops.moe:FusedMoE.select_experts"

_PROBE = textwrap.dedent("""
    import json, os, sys
    sys.path.insert(0, sys.argv[1])
    import real_aiter
    import torch
    import aiter
    import atom.model_ops.moe as moe
    import quantguard
    from quantguard.contracts.atom import CONTRACTS, class_behind_lazy_wrapper
    from quantguard.contracts.drift import compare_signature
    from quantguard.engine.lifecycle import current_runtime
    from quantguard.testing import capture_events

    [contract] = [c for c in CONTRACTS if c.target == sys.argv[2]]
    real_function = vars(class_behind_lazy_wrapper(moe.FusedMoE))["select_experts"].__func__
    result = {"drift": compare_signature(contract, real_function)[0]}
    import inspect
    import aiter.fused_moe
    result["fused_moe_params"] = list(inspect.signature(aiter.fused_moe.fused_moe).parameters)
    table = torch.tensor([[3, 5], [0, 7], [1, 2], [6, 4]], dtype=torch.int32)
    logits = torch.randn(8, 8, generator=torch.Generator().manual_seed(0))

    def routing(shift):
        calls = []
        def hash_topk(hidden_states, gating_output, topk, renormalize):
            calls.append(1)
            ids = (table[torch.arange(gating_output.shape[0]) % 4] + shift * (len(calls) - 1)) % 8
            weights = torch.nn.functional.softplus(gating_output.float()).sqrt().gather(1, ids.long())
            return weights / weights.sum(-1, keepdim=True), ids
        return hash_topk, calls

    with capture_events() as events:
        quantguard.enable(log=os.devnull, sample_rate=1.0)
        result["status"] = current_runtime().applied[sys.argv[2]].status
        for name, shift in (("pure", 0), ("second_answer_differs", 1)):
            function, calls = routing(shift)
            # ATOM's own call site: FusedMoE.select_experts on the LazyMoEWrapper
            moe.FusedMoE.select_experts(
                hidden_states=torch.zeros(8, 16), router_logits=logits, top_k=2, use_grouped_topk=True,
                renormalize=True, topk_group=2, num_expert_group=4, custom_routing_function=function,
                scoring_func="sqrtsoftplus", e_score_correction_bias=torch.zeros(8), routed_scaling_factor=1.5)
            result[name] = {
                "calls": len(calls),
                "violations": [(e["check"], e["message"]) for e in events.violations(target=sys.argv[2])],
                "internal_errors": [e["check"] for e in events.named("internal_error")],
            }
            events.clear()
        quantguard.disable()
    print("PROBE" + json.dumps(result))
""")


@pytest.fixture(scope="module")
def probe(tmp_path_factory) -> dict:
    scratch = tmp_path_factory.mktemp("real_atom_routing")
    return run_probe(_PROBE, [_TARGET], scratch)


def test_contract_binds_to_the_real_select_experts(probe):
    assert probe["status"] == "patched"
    assert probe["drift"] == []  # the declared parameter names and order are ATOM main's


def test_real_fused_moe_has_the_keywords_the_adapter_reads(probe):
    read = ("activation", "quant_type", "swiglu_limit", "gate_mode", "bias1", "bias2", "hidden_pad", "intermediate_pad")
    assert set(read) <= set(probe["fused_moe_params"])


def test_a_pure_custom_routing_function_is_quiet(probe):
    result = probe["pure"]
    assert result["calls"] == 2  # ATOM's call, then the check's
    assert result["violations"] == [] and result["internal_errors"] == []


def test_a_result_other_than_the_functions_is_reported(probe):
    result = probe["second_answer_differs"]
    assert result["calls"] == 2 and result["internal_errors"] == []
    [(check, message)] = result["violations"]
    assert check == "kwarg_ignored" and "routed to other experts than it chose" in message
