"""Tiny ``transformers`` checkpoints written offline, for the accuracy tests (a random Llama, a word tokenizer)."""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from quantguard.validate.accuracy import models_hf

#: A checkpoint small enough to save and load in a blink.
SMALL = dict(
    vocab_size=128,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=1,
    tie_word_embeddings=False,
)


def word_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer trained offline on the built-in prompts."""
    from tokenizers import Tokenizer, pre_tokenizers, trainers
    from tokenizers import models as tok_models

    tokenizer = Tokenizer(tok_models.WordLevel(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.train_from_iterator(models_hf.TEXT_PROMPTS, trainers.WordLevelTrainer(special_tokens=["[UNK]"]))
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]")


def save_checkpoint(directory, tokenizer: bool) -> LlamaForCausalLM:
    """A random tiny Llama (and a tokenizer) written with save_pretrained, as a user's checkpoint would be."""
    torch.manual_seed(7)
    model = LlamaForCausalLM(LlamaConfig(**SMALL))
    model.save_pretrained(directory)
    if tokenizer:
        word_tokenizer().save_pretrained(directory)
    return model
