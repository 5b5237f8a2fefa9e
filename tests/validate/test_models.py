"""Model specs: the tiny Llama, user callables, layer detection, generation, the sim workload."""

from __future__ import annotations

import textwrap

import pytest
import torch

from quantguard.validate.accuracy import models, ready_models
from quantguard.validate.accuracy.models_llama import TinyLlamaConfig, build_tiny_llama, seeded_weights
from quantguard.validate.quantize import QuantConfig, UnsupportedPath

SMALL = TinyLlamaConfig(num_layers=2)


def _options(**overrides) -> models.LoadOptions:
    settings = dict(arch="gfx942", device=torch.device("cpu"), dtype=torch.bfloat16, num_prompts=3, skip=("lm_head",))
    settings.update(overrides)
    return models.LoadOptions(**settings)


def test_tiny_llama_has_hugging_face_names_and_seeded_weights():
    built = build_tiny_llama(SMALL, use_transformers=False)
    names = {name for name, _ in built.model.named_modules()}
    assert {"model.layers.1.self_attn.q_proj", "model.layers.0.mlp.down_proj", "lm_head"} <= names
    assert set(built.model.state_dict()) == set(seeded_weights(SMALL))
    again = build_tiny_llama(SMALL, use_transformers=False).model.state_dict()
    assert all(torch.equal(tensor, again[name]) for name, tensor in built.model.state_dict().items())
    reseeded = seeded_weights(TinyLlamaConfig(num_layers=2, seed=1))
    assert not torch.equal(reseeded["lm_head.weight"], again["lm_head.weight"])


def test_tiny_llama_is_causal_and_its_cache_decodes_like_a_full_recompute():
    built = build_tiny_llama(SMALL, use_transformers=False)
    prompts = models.seeded_prompts(4, SMALL.vocab_size)
    ids = torch.tensor(prompts)
    with torch.no_grad():
        torch.testing.assert_close(built.logits(built.model, ids)[:, :8], built.logits(built.model, ids[:, :8]))
    model = built.model.to(torch.bfloat16)
    cached = models.greedy_generate(built.step, model, prompts, 12, torch.device("cpu"))
    recomputed = models.greedy_generate(models.recompute_step(built.logits), model, prompts, 12, torch.device("cpu"))
    assert cached == recomputed
    assert all(len(tokens) == 12 for tokens in cached)


def test_generation_batches_prompts_of_each_length_and_keeps_their_order():
    built = build_tiny_llama(SMALL, use_transformers=False)
    prompts = [[1, 2, 3], [4, 5], [6, 7, 8], [9]]
    together = models.greedy_generate(built.step, built.model, prompts, 5, torch.device("cpu"))
    alone = [models.greedy_generate(built.step, built.model, [p], 5, torch.device("cpu"))[0] for p in prompts]
    assert together == alone


def test_ready_made_tiny_llama_spec():
    spec = ready_models.load_model("tiny-llama", _options())
    assert spec.layers == tuple(f"model.layers.{i}" for i in range(TinyLlamaConfig().num_layers))
    assert len(spec.prompts) == 3 and sum(batch.shape[0] for batch in spec.calibration) == 3
    assert next(spec.reference.parameters()).dtype == torch.bfloat16


def _write_module(tmp_path, monkeypatch, source: str) -> None:
    (tmp_path / "user_models.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))


USER_MODELS = """
    import torch
    from torch import nn
    from quantguard.validate.accuracy.models_llama import TinyLlamaConfig, build_tiny_llama

    def _model():
        return build_tiny_llama(TinyLlamaConfig(num_layers=2), use_transformers=False).model

    def as_tuple():
        return _model(), torch.randint(0, 512, (4, 10))

    def as_prompt_list():
        return _model(), [[1, 2, 3], [4, 5, 6, 7]]

    def as_dict():
        return {"model": _model(), "prompts": ["ab c", "d e f"], "tokenize": lambda text: [ord(c) for c in text]}

    def text_without_tokenizer():
        return {"model": _model(), "prompts": ["hello"]}

    def not_a_module():
        return object(), [[1, 2]]

    def three_things():
        return 1, 2, 3

    class Flat(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(16, 8)
            self.head = nn.Linear(8, 16)

        def forward(self, ids):
            return (self.head(self.embed(ids)),)

    def flat():
        return Flat(), [[1, 2, 3]]
"""


@pytest.mark.parametrize(
    "function, sequences, prompts",
    [("as_tuple", 4, 3), ("as_prompt_list", 2, 2), ("as_dict", 2, 2)],
)
def test_user_callable_forms(tmp_path, monkeypatch, function, sequences, prompts):
    _write_module(tmp_path, monkeypatch, USER_MODELS)
    spec = ready_models.load_model(f"user_models:{function}", _options())
    assert spec.layers == ("model.layers.0", "model.layers.1")
    assert sum(batch.shape[0] for batch in spec.calibration) == sequences
    assert len(spec.prompts) == prompts
    tokens = spec.generate(spec.reference, spec.prompts, 3)
    assert [len(t) for t in tokens] == [3] * prompts


def test_user_tokenizer_is_applied(tmp_path, monkeypatch):
    _write_module(tmp_path, monkeypatch, USER_MODELS)
    spec = ready_models.load_model("user_models:as_dict", _options())
    assert spec.prompts[0] == tuple(ord(c) for c in "ab c")


@pytest.mark.parametrize(
    "target, message",
    [
        ("user_models:text_without_tokenizer", "tokenize"),
        ("user_models:not_a_module", "nn.Module"),
        ("user_models:three_things", "must return"),
        ("user_models:missing", "cannot load"),
        ("no_such_module_xyz:load", "cannot load"),
        ("llama-7b", "module:function"),
        ("user_models:flat", "--layers"),
    ],
)
def test_bad_models_are_explained(tmp_path, monkeypatch, target, message):
    _write_module(tmp_path, monkeypatch, USER_MODELS)
    with pytest.raises(models.ModelError, match=message):
        ready_models.load_model(target, _options())


def test_layers_pattern_names_the_layers(tmp_path, monkeypatch):
    _write_module(tmp_path, monkeypatch, USER_MODELS)
    spec = ready_models.load_model("user_models:flat", _options(layers=r"embed|head"))
    assert spec.layers == ("embed", "head")
    with pytest.raises(models.ModelError, match="matches no module"):
        ready_models.load_model("user_models:flat", _options(layers="nothing"))


@pytest.mark.parametrize(
    "scheme, arch, refused",
    [
        ("fp8_per_token", "gfx942", False),
        ("mxfp4", "gfx942", True),
        ("mxfp4", "gfx950", False),
        ("int4", "gfx950", True),
    ],
)
def test_sim_workload_offers_what_atom_runs(scheme, arch, refused):
    spec = ready_models.load_model("sim", _options(arch=arch))
    assert spec.layers == ("layers.0", "layers.1")
    if refused:
        with pytest.raises(UnsupportedPath):
            spec.check(QuantConfig(scheme))
    else:
        spec.check(QuantConfig(scheme))


@pytest.mark.parametrize(
    "overrides, message",
    [({"dtype": torch.float16}, "BF16"), ({"faults": ("partial_transpose_noop",)}, "ck_free")],
)
def test_sim_workload_refuses_what_it_cannot_run(overrides, message):
    with pytest.raises(models.ModelError, match=message):
        ready_models.load_model("sim", _options(**overrides))
