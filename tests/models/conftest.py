"""Inputs shared by the model tests: padded encoder batches, tiny decoders for the reduced-precision tests."""

from __future__ import annotations

import pytest
import torch


def _right_padded(config, lengths, width=None, seed=0):
    """Right-padded random ids avoiding special ids, plus a second segment of type 1 when the model has one:
    (input_ids, attention_mask, token_type_ids), `width` columns (default: the longest row)."""
    gen = torch.Generator().manual_seed(seed)
    width = width or max(lengths)
    input_ids = torch.randint(3, config.vocab_size, (len(lengths), width), generator=gen)
    attention_mask = torch.zeros(len(lengths), width, dtype=torch.long)
    token_type_ids = torch.zeros(len(lengths), width, dtype=torch.long)
    for i, n in enumerate(lengths):
        attention_mask[i, :n] = 1
        input_ids[i, n:] = config.pad_token_id
        if config.type_vocab_size > 1:
            token_type_ids[i, n // 2:n] = 1
    return input_ids, attention_mask, token_type_ids


@pytest.fixture(scope="session")
def right_padded():
    return _right_padded


def spearman(a, b) -> float:
    """Rank correlation of two score lists (no ties expected in float scores)."""
    ra = torch.tensor(a).argsort().argsort().double()
    rb = torch.tensor(b).argsort().argsort().double()
    return float(torch.corrcoef(torch.stack([ra, rb]))[0, 1])


def _tiny_decoder(folder, family: str, tokenizer):
    import transformers

    torch.manual_seed(5)
    common = dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                  bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, initializer_range=0.2)
    if family == "qwen2":  # q/k/v biases: the reduced-precision Linears must add them too
        model = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**common))
    else:
        model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**common))
    model.eval().save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_decoders(tmp_path_factory, tiny_llama):
    """Seeded tiny Llama and Qwen2 causal LMs (SmolLM2's tokenizer) as folders, for the int8 and bf16 tests:
    {"llama": folder, "qwen2": folder}."""
    _, _, tokenizer = tiny_llama
    root = tmp_path_factory.mktemp("tiny-decoders")
    return {family: _tiny_decoder(root / family, family, tokenizer) for family in ("llama", "qwen2")}
