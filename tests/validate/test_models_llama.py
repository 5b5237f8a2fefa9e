"""The built-in tiny Llama computes what Hugging Face's LlamaForCausalLM computes from the same weights."""

from __future__ import annotations

import pytest
import torch

from quantguard.validate.accuracy import models
from quantguard.validate.accuracy.models_llama import TinyLlamaConfig, build_tiny_llama

pytest.importorskip("transformers")

SMALL = TinyLlamaConfig(num_layers=2)


def test_builtin_matches_transformers_llama():
    hugging_face = build_tiny_llama(SMALL)
    builtin = build_tiny_llama(SMALL, use_transformers=False)
    assert hugging_face.implementation == "transformers"
    hf_modules = dict(hugging_face.model.named_modules())
    assert {name for name, _ in builtin.model.named_modules()} <= set(hf_modules)
    prompts = models.seeded_prompts(3, SMALL.vocab_size)
    ids = torch.tensor(prompts)
    with torch.no_grad():
        want, got = hugging_face.logits(hugging_face.model, ids), builtin.logits(builtin.model, ids)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    cpu = torch.device("cpu")
    hf_tokens = models.greedy_generate(hugging_face.step, hugging_face.model, prompts, 8, cpu)
    assert models.greedy_generate(builtin.step, builtin.model, prompts, 8, cpu) == hf_tokens
