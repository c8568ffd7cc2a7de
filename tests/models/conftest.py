"""Inputs shared by the encoder tests."""

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
