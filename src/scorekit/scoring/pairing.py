"""Pairing rules of SPEC §4: how the two sides of a score request become (query, document) pairs."""

from __future__ import annotations

from typing import Any, Sequence

from scorekit.errors import ValidationError

from scorekit.media.content import Content

ScoreInput = Any  # a str, a multimodal object {"content": [part, ...]}, or its resolved form, a media Content


def is_multimodal(item: ScoreInput) -> bool:
    return isinstance(item, Content) or (isinstance(item, dict) and "content" in item)


def refuse_multimodal(items: Sequence[ScoreInput], architecture: str, multimodal_model: bool) -> None:
    """SPEC §4 rule 1, the one place it is written: any multimodal input on a text-only model is a 400."""
    if not multimodal_model and any(is_multimodal(item) for item in items):
        raise ValidationError(f"MultiModalParam is not supported for {architecture}")


def as_list(side: ScoreInput | Sequence[ScoreInput]) -> list[ScoreInput]:
    """A bare string or multimodal object counts as a one-element list."""
    if isinstance(side, (str, dict, Content)):
        return [side]
    return list(side)


def pair_inputs(
    side1: ScoreInput | Sequence[ScoreInput],
    side2: ScoreInput | Sequence[ScoreInput],
    architecture: str,
    multimodal_model: bool = False,
) -> list[tuple[ScoreInput, ScoreInput]]:
    """Apply vLLM's checks in its order and return the pairs (1:N broadcasts the single query)."""
    left, right = as_list(side1), as_list(side2)
    refuse_multimodal((*left, *right), architecture, multimodal_model)
    if len(left) > 1 and len(left) != len(right):
        raise ValidationError("Input lengths must be either 1:1, 1:N or N:N")
    if len(left) == 0:
        raise ValidationError("At least one text element must be given")
    if len(right) == 0:
        raise ValidationError("At least one text_pair element must be given")
    if len(left) == 1:
        return [(left[0], doc) for doc in right]
    return list(zip(left, right))
