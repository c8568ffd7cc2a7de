"""Truncation and length limits (SPEC §5.1, §7): what a request may ask for, and how it is applied."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from scorekit.errors import ValidationError


@dataclass(frozen=True)
class TruncationParams:
    truncate_prompt_tokens: int | None = None  # None: no truncation (too long → 400); -1: max_model_len; k: keep k
    truncation_side: Literal["left", "right"] | None = None  # None: the tokenizer's own side
    padding: Literal["max_length", "do_not_pad"] | None = None
    max_tokens_per_query: int = 0  # 0 = off; content tokens of the query text, cut before packing
    max_tokens_per_doc: int = 0

    def validate(self, max_model_len: int) -> None:
        k = self.truncate_prompt_tokens
        if k is not None and k < -1:
            raise ValidationError("truncate_prompt_tokens must be -1 or a positive integer", param="truncate_prompt_tokens")
        if k is not None and k > max_model_len:
            raise ValidationError(
                "truncate_prompt_tokens value is greater than max_model_len. Please request a smaller truncation size."
            )
        if self.truncation_side not in (None, "left", "right"):
            raise ValidationError("truncation_side must be 'left' or 'right'", param="truncation_side")
        for name in ("max_tokens_per_query", "max_tokens_per_doc"):
            value = getattr(self, name)
            if value < 0:
                raise ValidationError(f"{name} must be a non-negative integer")
            if value and value >= max_model_len:
                raise ValidationError(f"{name} ({value}) must be less than max_model_len ({max_model_len}).")

    def limit(self, max_model_len: int) -> int | None:
        """The token count a prompt is cut to, or None when the request asked for no truncation."""
        k = self.truncate_prompt_tokens
        if k is None:
            return None
        return max_model_len if k == -1 else k

    def tokenizer_kwargs(self, max_model_len: int) -> dict:
        """Arguments for the HF tokenizer call. With an explicit side we cut afterwards (see `finish`)."""
        limit = self.limit(max_model_len)
        if limit is None:
            # M + 1 lets the length check still see that the prompt was too long.
            return {"truncation": True, "max_length": max_model_len + 1}
        if self.truncation_side is not None:
            return {"truncation": False}
        return {"truncation": True, "max_length": limit}


def cut_text_to_tokens(tokenize, text: str, limit: int) -> str:
    """Cut `text` at a character boundary so its content tokens (no special tokens) number ≤ limit.

    `tokenize` is a tokenizer, or anything called like one (PromptBuilder.tokenize, which holds its lock)."""
    if limit <= 0:
        return ""
    while True:
        enc = tokenize(text, add_special_tokens=False, return_offsets_mapping=True)
        offsets = enc["offset_mapping"]
        if len(offsets) <= limit:
            return text
        cut = min(offsets[limit - 1][1], offsets[limit][0])
        cut = min(cut, len(text) - 1)  # never keep the full text once it was too long
        text = text[:cut]


def too_long_error(length: int, max_model_len: int) -> ValidationError:
    at_least = "at least " if length == max_model_len + 1 else ""
    return ValidationError(
        f"This model's maximum context length is {max_model_len} tokens. However, your prompt contains "
        f"{at_least}{length} input tokens, which exceeds this limit even without any output tokens. "
        "Please reduce the length of the input prompt.",
        parameter="input_tokens",
        value=length,
        param="input_tokens",
    )


def finish(
    input_ids: list[int],
    token_type_ids: list[int] | None,
    params: TruncationParams,
    max_model_len: int,
    pad_id: int,
) -> tuple[list[int], list[int] | None]:
    """Post-tokenisation steps in vLLM's order: truncate → pad → length check.

    token_type_ids are cut with the very same slice, so a left truncation keeps them aligned with the tokens.
    """
    limit = params.limit(max_model_len)
    if limit is not None and params.truncation_side is not None and len(input_ids) > limit:
        keep = slice(len(input_ids) - limit, None) if params.truncation_side == "left" else slice(0, limit)
        input_ids = input_ids[keep]
        token_type_ids = token_type_ids[keep] if token_type_ids is not None else None
    if params.padding == "max_length":
        target = limit if limit is not None else max_model_len
        missing = target - len(input_ids)
        if missing > 0:
            input_ids = input_ids + [pad_id] * missing
            token_type_ids = token_type_ids + [0] * missing if token_type_ids is not None else None
    if len(input_ids) > max_model_len:
        raise too_long_error(len(input_ids), max_model_len)
    return input_ids, token_type_ids
