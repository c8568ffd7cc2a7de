"""Truncation and length limits (SPEC §5.1, §7): what a request may ask for, and how it is applied."""

from __future__ import annotations

import re
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


# No tokenizer we serve puts more than a few characters in a token of real text (BPE and WordPiece pieces of
# English prose average ~4), so (max_model_len + 1) × this many characters hold more tokens than any prompt
# may have. A text longer than that is cut to it (at a word boundary) before it is tokenised: a 5 MB string
# then costs a millisecond of tokenising, not seconds of it and a gigabyte of offsets (measured on MiniLM:
# 20 MB took 120 s and 6.6 GB tokenised whole). See `bound_text` for why the result is unchanged.
CHARS_PER_TOKEN_BOUND = 32
# A cut text must keep this many tokens more than the model's limit: the last word before the cut may be
# tokenised differently without its tail, and these tokens lie past everything a prompt keeps.
SAFETY_TOKENS = 16
_WHITESPACE = re.compile(r"\s")


def char_budget(max_model_len: int) -> int:
    return (max_model_len + 1 + SAFETY_TOKENS) * CHARS_PER_TOKEN_BOUND


def bound_text(text: str, budget: int, keep_end: bool) -> str:
    """`text` cut to about `budget` characters at a whitespace boundary (from the start, or with `keep_end`
    from the end, for left truncation, which keeps a text's last tokens).

    Tokenizers split text into words at whitespace before they split words into tokens, so the words before
    the cut are tokenised exactly as in the whole text: the cut text's tokens are the whole text's first tokens.
    The caller checks that the cut text still has more tokens than any prompt keeps (`PromptBuilder`); if not
    (tokens of hundreds of characters), it tokenises the whole text instead."""
    if len(text) <= budget:
        return text
    if keep_end:
        start = len(text) - budget
        found = _WHITESPACE.search(text, start, min(len(text), start + 256))
        return text[found.start():] if found else text[start:]
    window = text[max(0, budget - 256):budget]
    spaces = [m.start() for m in _WHITESPACE.finditer(window)]
    return text[: max(0, budget - 256) + spaces[-1]] if spaces else text[:budget]


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
