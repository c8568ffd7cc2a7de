"""EncoderModel computes only real tokens (packed [N, H], attention row by row): on batches whose rows differ
wildly in length it must still equal transformers, give zeros at padding, and give every row the same result
whatever else is in the batch. `classify_tokens` (last layer on the first token only) must equal
`classify(hidden_states(...))`."""

from __future__ import annotations

import pytest
import torch
import transformers

from scorekit.models.encoder import EncoderModel

# Rows from 1 token to the full width, in no particular order: most of this batch is padding.
LENGTHS = (3, 60, 1, 17, 41, 2)
FAMILIES = {
    # BERT: positions 0..T-1, two token types.
    "bert": (transformers.BertConfig, transformers.BertForSequenceClassification,
             dict(max_position_embeddings=64, type_vocab_size=2, pad_token_id=0)),
    # RoBERTa: positions counted after padding_idx, so a row's position ids depend on its own pads.
    "roberta": (transformers.RobertaConfig, transformers.RobertaForSequenceClassification,
                dict(max_position_embeddings=66, type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2)),
}


def make_pair(family: str):
    """A tiny random HF sequence classifier (eager attention: an independent reference) and ours on its weights."""
    config_cls, model_cls, extra = FAMILIES[family]
    torch.manual_seed(0)
    config = config_cls(vocab_size=500, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=128, num_labels=2, attn_implementation="eager", **extra)
    reference = model_cls(config).eval()
    with torch.no_grad():  # HF's LayerNorm (1, 0) and zero biases would hide swapped or dropped weights
        for name, param in reference.named_parameters():
            param.normal_(mean=1.0 if name.endswith("LayerNorm.weight") else 0.0, std=0.1)
    return reference, EncoderModel.from_config_and_state_dict(config, reference.state_dict())


@pytest.fixture(scope="module", params=list(FAMILIES))
def pair(request):
    return make_pair(request.param)


def test_equals_transformers_on_very_uneven_rows(pair, right_padded):
    reference, ours = pair
    # Wider than the longest row: columns of padding only must not matter either.
    inputs = right_padded(reference.config, LENGTHS, width=max(LENGTHS) + 3)
    input_ids, attention_mask, token_type_ids = inputs
    with torch.inference_mode():
        expected = reference(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                             output_hidden_states=True)
        hidden = ours.hidden_states(*inputs)
        logits = ours.classify(hidden)
    real = attention_mask.bool()
    assert hidden.shape == expected.hidden_states[-1].shape
    assert (hidden - expected.hidden_states[-1])[real].abs().max().item() <= 1e-5
    assert expected.logits.std().item() > 0.05, "logits too uniform for the comparison to mean anything"
    assert (logits - expected.logits).abs().max().item() <= 1e-5
    assert torch.count_nonzero(hidden[~real]) == 0, "padding positions are zeros"
    with torch.inference_mode():
        assert (ours.classify_tokens(*inputs) - expected.logits).abs().max().item() <= 1e-5


def test_row_result_does_not_depend_on_the_batch(pair, right_padded):
    reference, ours = pair
    config = reference.config
    input_ids, attention_mask, token_type_ids = right_padded(config, LENGTHS)
    with torch.inference_mode():
        together = ours.hidden_states(input_ids, attention_mask, token_type_ids)
        # The same rows in reverse order, among other rows, padded wider.
        others = right_padded(config, (64, 5, 30), seed=1)
        order = list(range(len(LENGTHS)))[::-1]
        width = 64
        mixed = [torch.cat([others[k], torch.nn.functional.pad(t[order], (0, width - t.shape[1]),
                                                               value=config.pad_token_id if k == 0 else 0)])
                 for k, t in enumerate((input_ids, attention_mask, token_type_ids))]
        shuffled = ours.hidden_states(*mixed)[len(others[0]):]
        for i, n in enumerate(LENGTHS):
            row = slice(i, i + 1)
            alone = ours.hidden_states(input_ids[row, :n], attention_mask[row, :n], token_type_ids[row, :n])[0]
            assert (together[i, :n] - alone).abs().max().item() <= 1e-5
            assert (shuffled[order.index(i), :n] - alone).abs().max().item() <= 1e-5


def test_classify_tokens_equals_classify_and_is_batch_invariant(pair, right_padded):
    reference, ours = pair
    input_ids, attention_mask, token_type_ids = right_padded(reference.config, LENGTHS)
    with torch.inference_mode():
        fast = ours.classify_tokens(input_ids, attention_mask, token_type_ids)
        full = ours.classify(ours.hidden_states(input_ids, attention_mask, token_type_ids))
        assert fast.shape == full.shape == (len(LENGTHS), 2)
        assert (fast - full).abs().max().item() <= 1e-6
        for i, n in enumerate(LENGTHS):
            row = slice(i, i + 1)
            alone = ours.classify_tokens(input_ids[row, :n], attention_mask[row, :n], token_type_ids[row, :n])
            assert (fast[i] - alone[0]).abs().max().item() <= 1e-5


def test_all_padding_row_gives_zeros_and_leaves_the_others_alone(right_padded):
    reference, ours = make_pair("bert")
    input_ids, attention_mask, token_type_ids = right_padded(reference.config, (7, 4))
    empty = (torch.zeros_like(input_ids[:1]), torch.zeros_like(attention_mask[:1]), torch.zeros_like(input_ids[:1]))
    with torch.inference_mode():
        plain = ours.hidden_states(input_ids, attention_mask, token_type_ids)
        with_empty = ours.hidden_states(*(torch.cat([a[:1], e, a[1:]]) for a, e in
                                          zip((input_ids, attention_mask, token_type_ids), empty)))
    assert torch.count_nonzero(with_empty[1]) == 0
    assert (with_empty[[0, 2]] - plain).abs().max().item() <= 1e-5
    with torch.inference_mode():  # classify_tokens keeps the row: the head's output for zeros, as classify gives
        logits = ours.classify_tokens(*(torch.cat([a[:1], e, a[1:]]) for a, e in
                                        zip((input_ids, attention_mask, token_type_ids), empty)))
        assert torch.allclose(logits, ours.classify(with_empty), atol=1e-6)


def test_classify_tokens_needs_a_head():
    config = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=16)
    ours = EncoderModel.from_config_and_state_dict(config, transformers.BertModel(config).state_dict())
    with pytest.raises(RuntimeError, match="no sequence-classification head"):
        ours.classify_tokens(torch.tensor([[5, 6]]), torch.ones(1, 2, dtype=torch.long))


def test_runs_of_equal_length_rows_equal_transformers_and_each_row_alone(pair, right_padded):
    """Consecutive rows of one length share one attention call (encoder._runs), as in the engine's length-sorted
    batches: they must give what transformers gives, and what each row gives alone (first_only path included)."""
    reference, ours = pair
    lengths = (9, 9, 9, 4, 4, 20, 20, 1, 1)
    inputs = right_padded(reference.config, lengths)
    input_ids, attention_mask, token_type_ids = inputs
    with torch.inference_mode():
        expected = reference(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                             output_hidden_states=True)
        hidden = ours.hidden_states(*inputs)
        first = ours.classify_tokens(*inputs)
        real = attention_mask.bool()
        assert (hidden - expected.hidden_states[-1])[real].abs().max().item() <= 1e-5
        assert (first - expected.logits).abs().max().item() <= 1e-5
        for i, n in enumerate(lengths):
            row = (input_ids[i:i + 1, :n], attention_mask[i:i + 1, :n], token_type_ids[i:i + 1, :n])
            assert (hidden[i, :n] - ours.hidden_states(*row)[0]).abs().max().item() <= 1e-5
            assert (first[i] - ours.classify_tokens(*row)[0]).abs().max().item() <= 1e-6
