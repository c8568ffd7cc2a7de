"""The engine's media plumbing, with no model: prompts with media are told apart by their key, deduplicated and
cached by it, priced by the encoder positions they cost, passed through collate row by row, and kept out of
prefix-sharing groups."""

from __future__ import annotations

import torch

from scorekit.engine.cache import OutputCache
from scorekit.engine.media import Media, concat_tensors
from scorekit.engine.prompt import Prompt
from scorekit.engine.runner import collate, prefix_groups
from scorekit.engine.task import Task, TaskKind


def image_media(digest: str, value: float = 0.0, tokens: int = 50) -> Media:
    return Media(("image", digest, "proc-v1"), {"pixel_values": torch.full((1, 3, 4, 4), value)}, tokens)


def test_media_equality_is_its_key_alone():
    a, same_bytes, other = image_media("aa", 1.0), image_media("aa", 2.0), image_media("bb", 1.0)
    assert Prompt((), media=a) == Prompt((), media=same_bytes)
    assert hash(Prompt((), media=a)) == hash(Prompt((), media=same_bytes))
    assert Prompt((), media=a) != Prompt((), media=other)
    assert Prompt((1, 2), media=a) != Prompt((1, 2))  # same tokens, one with an image


def test_num_tokens_counts_the_media():
    assert Prompt((), media=image_media("aa", tokens=50)).num_tokens == 50
    assert len(Prompt((), media=image_media("aa"))) == 0
    assert Prompt((5, 6, 7), media=image_media("aa", tokens=0)).num_tokens == 3
    assert Prompt((5, 6)).num_tokens == 2


def test_collate_passes_each_rows_media_in_order():
    media = image_media("aa", 3.0)
    batch = collate([Prompt((4, 5, 6)), Prompt((), media=media), Prompt((7,))], pad_id=0, device=torch.device("cpu"))
    assert batch.media == (None, media, None)
    assert batch.lengths.tolist() == [3, 0, 1]
    assert batch.attention_mask[1].sum() == 0
    assert collate([Prompt((1,))], 0, torch.device("cpu")).media is None


def test_concat_tensors_stacks_rows_and_refuses_mismatched_ones():
    both = concat_tensors([image_media("aa", 1.0), image_media("bb", 2.0)])
    assert both["pixel_values"].shape == (2, 3, 4, 4)
    assert both["pixel_values"][1].max() == 2.0
    odd = Media(("image", "cc"), {"pixel_values": torch.zeros(1, 3, 4, 4), "spatial_shapes": torch.zeros(1, 2)})
    try:
        concat_tensors([image_media("aa"), odd])
    except ValueError as exc:
        assert "different tensors" in str(exc)
    else:
        raise AssertionError("mismatched media were concatenated")


def test_prompts_with_media_never_share_a_prefix():
    ids = tuple(range(40))
    prompts = [Prompt(ids + (100,)), Prompt(ids + (101,)), Prompt(ids + (102,), media=image_media("aa")),
               Prompt(ids + (103,), media=image_media("bb"))]
    groups, rest = prefix_groups(prompts, min_prefix=8)
    assert [sorted(g.members) for g in groups] == [[0, 1]]
    assert rest == [2, 3]


def test_output_cache_finds_an_image_again_without_holding_its_pixels():
    cache = OutputCache(1 << 20)
    task = Task(TaskKind.EMBED, normalize=True)
    sent = Prompt((), media=image_media("aa", 1.0))
    cache.put(task, [sent.light()], [torch.ones(4)])
    again = Prompt((), media=image_media("aa", 9.0))  # the same bytes, decoded again by a later request
    assert cache.get(task, [again])[0].tolist() == [1.0] * 4
    assert cache.get(task, [Prompt((), media=image_media("bb"))]) == [None]
    (stored_task, stored_prompt), = cache._entries
    assert stored_prompt.media.tensors == {}
