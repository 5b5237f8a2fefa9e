"""``--model`` as a ``transformers`` causal LM: a known tiny config, a config.json or a local checkpoint.

Nothing is downloaded, ever. ``--model`` is, in order:

* a known name (:data:`KNOWN_CONFIGS`, e.g. ``tiny-llama``): a ``transformers``
  config class instantiated with small shapes, seeded random weights;
* a local checkpoint directory (``config.json``, and ``save_pretrained``
  weights and a tokenizer when present): loaded with its weights, or seeded
  random weights when it has none;
* a ``config.json`` file: seeded random weights;
* a Hugging Face model id already in the local cache (``local_files_only``),
  loaded as a checkpoint directory.

Random weights are not ``transformers``' initialisation but shaped like a
trained model's where it matters for a quantization check: every linear is
``N(0, 1/in)``, the projections that write to the residual stream
(``o_proj``, ``down_proj``...) are scaled down so the residual dominates, and
the LM head is a row permutation of the embedding, so every token has one clear
successor and greedy decoding is stable under quantization noise while a broken
kernel still garbles it. Such a model validates kernels, not language quality.

With a tokenizer the prompts are English sentences, generations are decoded to
text and BLEU is computed on that text; without one the prompts are seeded
token ids and BLEU is computed on token ids.
"""

from __future__ import annotations

import inspect
import json
import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

from quantguard.validate.accuracy.models import LoadOptions, ModelError, ModelSpec, prompt_batches, seeded_prompts
from quantguard.validate.accuracy.models import swapper_spec as _swapper_spec

__all__ = ["ACCEPTED", "KNOWN_CONFIGS", "TEXT_PROMPTS", "hf_model", "seed_weights", "tiny_llama_config"]

#: What ``--model`` accepts, for error messages.
ACCEPTED = (
    "tiny-llama, sim, a local checkpoint directory (config.json; weights and tokenizer optional), "
    "a config.json file, a Hugging Face model id already in the local cache, or module:function"
)

#: Residual-stream writers are scaled by this (how much one layer moves the hidden state).
UPDATE_GAIN = 0.15
_UPDATE_PROJECTIONS = ("o_proj", "down_proj", "out_proj", "c_proj", "dense_4h_to_h", "fc2", "w2", "wo")
_WEIGHT_FILES = ("*.safetensors", "pytorch_model*.bin")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
_HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")
_SEED = 0

#: Prompts of models with a tokenizer (cycled when more are asked for).
TEXT_PROMPTS = (
    "The capital of France is",
    "Quantization trades precision for",
    "Once upon a time, in a small village,",
    "The quick brown fox jumps over",
    "In machine learning, a transformer is",
    "The weather today is",
    "To bake bread you need flour, water and",
    "The GPU kernel multiplies two matrices and",
    "She opened the door and saw",
    "The best way to learn a language is",
    "Water boils at a temperature of",
    "The history of the Roman Empire",
)


def _transformers():
    try:
        import transformers
    except ImportError as exc:
        raise ModelError(
            f"--model needs transformers for {ACCEPTED.split(', sim')[0]} and checkpoints "
            f"(pip install 'quantguard[accuracy]'): {exc}"
        ) from exc
    return transformers


def tiny_llama_config():
    """``LlamaConfig`` of ``tiny-llama``: 4 layers, hidden 256, 4 heads (2 KV), vocab 512; GEMM dims % 128 == 0."""
    return _transformers().LlamaConfig(
        vocab_size=512,
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
    )


#: ``--model`` names built from ``transformers`` config classes.
KNOWN_CONFIGS: dict[str, Callable[[], object]] = {"tiny-llama": tiny_llama_config}


@torch.no_grad()
def seed_weights(model: nn.Module, seed: int = _SEED) -> None:
    """Overwrite ``model``'s embedding and linears with seeded, residual-dominated weights (see the module doc)."""
    gen = torch.Generator().manual_seed(seed)
    embedding = model.get_input_embeddings()
    head = model.get_output_embeddings()
    embedding.weight.copy_(torch.randn(embedding.weight.shape, generator=gen))
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear) or module is head:
            continue
        gain = UPDATE_GAIN if name.rpartition(".")[2] in _UPDATE_PROJECTIONS else 1.0
        module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * (gain / math.sqrt(module.in_features)))
        if module.bias is not None:
            module.bias.zero_()
    if head is not None and head.weight is not embedding.weight and head.weight.shape == embedding.weight.shape:
        permutation = torch.randperm(embedding.weight.shape[0], generator=gen)
        head.weight.copy_(embedding.weight[permutation] / math.sqrt(embedding.weight.shape[1]))


def _random_model(config: object) -> nn.Module:
    transformers = _transformers()
    with torch.random.fork_rng():
        torch.manual_seed(_SEED)
        try:
            model = transformers.AutoModelForCausalLM.from_config(config)
        except ValueError as exc:
            raise ModelError(f"transformers has no causal LM for this config: {exc}") from exc
    seed_weights(model)
    return model


def _has(directory: Path, patterns: Sequence[str]) -> bool:
    return any(next(directory.glob(pattern), None) is not None for pattern in patterns)


def _local_directory(target: str) -> Path | None:
    """A checkpoint directory for ``target``: the path itself, or its snapshot in the Hugging Face cache."""
    path = Path(target).expanduser()
    if path.is_dir():
        return path
    if path.exists() or not _HUB_ID.fullmatch(target):
        return None
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(target, local_files_only=True))
    except Exception:  # not cached (LocalEntryNotFoundError), or no huggingface_hub: not local
        return None


def _load(target: str) -> tuple[nn.Module, object | None, str]:
    """(model in fp32, tokenizer or None, description) for a non-``sim``, non-``module:function`` ``--model``."""
    transformers = _transformers()
    transformers.utils.logging.disable_progress_bar()  # no loading bars in the validation's output
    if target in KNOWN_CONFIGS:
        config = KNOWN_CONFIGS[target]()
        return _random_model(config), None, f"{type(config).__name__}, seeded random weights"
    path = Path(target).expanduser()
    if path.is_file() and path.suffix == ".json":
        try:
            config = transformers.AutoConfig.from_pretrained(str(path))
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
            raise ModelError(f"--model {target!r}: not a transformers config.json ({exc})") from exc
        return _random_model(config), None, f"{type(config).__name__}, seeded random weights"
    directory = _local_directory(target)
    if directory is None:
        raise ModelError(
            f"--model {target!r} is not a local checkpoint, config.json or cached model, and nothing is "
            f"downloaded here; accepted: {ACCEPTED}"
        )
    if not (directory / "config.json").is_file():
        raise ModelError(f"--model {target!r}: {directory} has no config.json; accepted: {ACCEPTED}")
    try:
        if _has(directory, _WEIGHT_FILES):
            model = transformers.AutoModelForCausalLM.from_pretrained(str(directory))
            weights = "checkpoint weights"
        else:
            model = _random_model(transformers.AutoConfig.from_pretrained(str(directory)))
            weights = "no weights in the directory: seeded random weights"
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"--model {target!r}: cannot load {directory}: {exc}") from exc
    tokenizer = None
    if _has(directory, _TOKENIZER_FILES):
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(str(directory))
        except (OSError, ValueError, KeyError) as exc:
            weights += f"; tokenizer not loaded ({exc})"
    where = "" if directory == Path(target).expanduser() else f"{directory}, "
    return model, tokenizer, f"{where}{type(model).__name__}, {weights}"


def _logits(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    return model(input_ids=ids, use_cache=False).logits


def _step(model: nn.Module, ids: torch.Tensor, cache: object) -> tuple[torch.Tensor, object]:
    """One greedy step with the model's own KV cache (the whole prompt on the first step).

    transformers 5 names the cache ``cache``, 4.x ``past_key_values``.
    """
    name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    output = model(input_ids=ids if cache is None else ids[:, -1:], use_cache=True, **{name: cache})
    return output.logits[:, -1], getattr(output, name)


def _text_prompts(tokenizer: object, count: int, vocab_size: int) -> tuple[tuple[int, ...], ...]:
    prompts = []
    for index in range(count):
        ids = tuple(int(t) for t in tokenizer(TEXT_PROMPTS[index % len(TEXT_PROMPTS)])["input_ids"])  # type: ignore[operator]
        if not ids or max(ids) >= vocab_size:
            raise ModelError(f"the tokenizer gives ids outside the model's vocabulary ({vocab_size}): {ids}")
        prompts.append(ids)
    return tuple(prompts)


def hf_model(target: str, options: LoadOptions) -> ModelSpec:
    """The spec of a ``transformers`` causal LM named by ``--model`` (see the module doc)."""
    model, tokenizer, description = _load(target)
    model.eval()
    vocab_size = model.get_input_embeddings().weight.shape[0]
    config = model.config
    shape = (
        f"{getattr(config, 'num_hidden_layers', '?')} layers, hidden {getattr(config, 'hidden_size', '?')}, "
        f"vocab {vocab_size}"
    )
    if tokenizer is not None:
        prompts = _text_prompts(tokenizer, options.num_prompts, vocab_size)
        decode = lambda ids: tokenizer.decode(list(ids), skip_special_tokens=True)  # type: ignore[attr-defined]  # noqa: E731
        text = f"tokenizer {type(tokenizer).__name__}"
    else:
        prompts, decode, text = seeded_prompts(options.num_prompts, vocab_size), None, "no tokenizer: token ids"
    name = Path(target).name if Path(target).expanduser().exists() else target
    spec = _swapper_spec(
        name,
        f"{target}: {description}; {shape}; {text}",
        model,
        prompt_batches(prompts),
        prompts,
        options,
        _logits,
        _step,
    )
    return spec.with_decode(decode)
