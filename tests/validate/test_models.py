"""Model specs: transformers models (known configs, checkpoints, config.json), user callables, the sim workload."""

from __future__ import annotations

import textwrap

import pytest
import torch

pytest.importorskip("transformers")

from hf_models import SMALL, save_checkpoint, word_tokenizer  # noqa: E402
from transformers import LlamaConfig  # noqa: E402

from quantguard.validate.accuracy import models, models_hf, ready_models  # noqa: E402
from quantguard.validate.accuracy.configurations import parse_configurations  # noqa: E402
from quantguard.validate.quantize import UnsupportedPath  # noqa: E402


def _options(**overrides) -> models.LoadOptions:
    settings = dict(arch="gfx942", device=torch.device("cpu"), dtype=torch.bfloat16, num_prompts=3, skip=("lm_head",))
    settings.update(overrides)
    return models.LoadOptions(**settings)


def _config(name: str):
    return parse_configurations(name, "ck", None)[0]


def test_tiny_llama_is_a_transformers_llama_with_seeded_weights():
    spec = ready_models.load_model("tiny-llama", _options())
    assert type(spec.reference).__name__ == "LlamaForCausalLM"
    assert spec.layers == tuple(f"model.layers.{i}" for i in range(4))
    assert len(spec.prompts) == 3 and sum(batch.shape[0] for batch in spec.calibration) == 3
    assert next(spec.reference.parameters()).dtype == torch.bfloat16
    assert spec.decode is None and "no tokenizer" in spec.description
    again = ready_models.load_model("tiny-llama", _options()).reference.state_dict()
    assert all(torch.equal(tensor, again[name]) for name, tensor in spec.reference.state_dict().items())
    # the LM head is a permutation of the embedding: each token has one clear successor
    head, embed = spec.reference.lm_head.weight.float(), spec.reference.model.embed_tokens.weight.float()
    assert torch.allclose(head.norm(dim=1).sort().values, (embed.norm(dim=1) / 16).sort().values, rtol=1e-2)


def test_tiny_llama_cache_decodes_like_a_full_recompute():
    spec = ready_models.load_model("tiny-llama", _options())
    cached = spec.generate(spec.reference, spec.prompts, 8)
    recompute = models.recompute_step(spec.logits)
    recomputed = models.greedy_generate(recompute, spec.reference, spec.prompts, 8, torch.device("cpu"))
    assert cached == recomputed and all(len(tokens) == 8 for tokens in cached)


def test_checkpoint_directory_loads_its_weights_and_tokenizer(tmp_path):
    saved = save_checkpoint(tmp_path, tokenizer=True)
    spec = ready_models.load_model(str(tmp_path), _options(dtype=torch.float32))
    assert "checkpoint weights" in spec.description and "; tokenizer " in spec.description
    loaded = spec.reference.state_dict()
    assert all(torch.equal(tensor, loaded[name]) for name, tensor in saved.state_dict().items())
    assert spec.prompts[0] == tuple(word_tokenizer()(models_hf.TEXT_PROMPTS[0])["input_ids"])
    assert spec.decode is not None and spec.decode(spec.prompts[0]) == models_hf.TEXT_PROMPTS[0]


def test_checkpoint_without_tokenizer_uses_token_ids(tmp_path):
    save_checkpoint(tmp_path, tokenizer=False)
    spec = ready_models.load_model(str(tmp_path), _options())
    assert spec.decode is None and "no tokenizer" in spec.description
    assert all(len(prompt) == 16 and max(prompt) < SMALL["vocab_size"] for prompt in spec.prompts)


def test_config_only_gets_seeded_random_weights(tmp_path):
    LlamaConfig(**SMALL).to_json_file(tmp_path / "config.json")
    from_file = ready_models.load_model(str(tmp_path / "config.json"), _options()).reference.state_dict()
    from_directory = ready_models.load_model(str(tmp_path), _options())
    assert "seeded random weights" in from_directory.description
    assert all(torch.equal(tensor, from_directory.reference.state_dict()[k]) for k, tensor in from_file.items())


@pytest.mark.parametrize(
    "target, message",
    [
        ("meta-llama/Llama-2-7b-hf", "nothing is downloaded here; accepted: tiny-llama, sim, a local checkpoint"),
        ("llama-7b", "accepted: tiny-llama"),
        ("{tmp}", "has no config.json"),
        ("{tmp}/bad.json", "not a transformers config.json"),
    ],
)
def test_models_that_are_not_local_are_explained(tmp_path, target, message):
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(models.ModelError, match=message):
        ready_models.load_model(target.format(tmp=tmp_path), _options())


def test_generation_batches_prompts_of_each_length_and_keeps_their_order():
    spec = ready_models.load_model("tiny-llama", _options())
    prompts = [[1, 2, 3], [4, 5], [6, 7, 8], [9]]
    together = spec.generate(spec.reference, prompts, 5)
    alone = [spec.generate(spec.reference, [p], 5)[0] for p in prompts]
    assert together == alone


def _write_module(tmp_path, monkeypatch, source: str) -> None:
    (tmp_path / "user_models.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))


USER_MODELS = """
    import torch
    from torch import nn
    from transformers import LlamaConfig, LlamaForCausalLM

    def _model():
        config = LlamaConfig(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                             num_attention_heads=2, num_key_value_heads=1)
        return LlamaForCausalLM(config)

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
        ("fp8-torch", "gfx942", True),
        ("ckfree", "gfx942", False),
    ],
)
def test_sim_workload_offers_what_atom_runs(scheme, arch, refused):
    spec = ready_models.load_model("sim", _options(arch=arch))
    assert spec.layers == ("layers.0", "layers.1")
    if refused:
        with pytest.raises(UnsupportedPath):
            spec.check(_config(scheme))
    else:
        spec.check(_config(scheme))


@pytest.mark.parametrize(
    "overrides, message",
    [({"dtype": torch.float16}, "BF16"), ({"faults": ("partial_transpose_noop",)}, "ck_free")],
)
def test_sim_workload_refuses_what_it_cannot_run(overrides, message):
    with pytest.raises(models.ModelError, match=message):
        ready_models.load_model("sim", _options(**overrides))
