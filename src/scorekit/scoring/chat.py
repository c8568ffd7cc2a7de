"""Chat-style inputs (`messages`) for the embedding, classification, pooling and tokenizer routes: rendered with
the tokenizer's own chat template into token ids, as vLLM's chat forms do. A `ChatInput` is one conversation
given to a Scorer method in place of a text; the plan renders it on the model thread (scorer.py `_encode`).

Text-only models take text content only: a message's content is a string, or a list of `{"type": "text"}`
parts, joined with newlines (vLLM's "string" content format); any other part type is refused by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scorekit.errors import ValidationError


@dataclass(frozen=True, eq=False)
class ChatInput:
    """One conversation, an input of `Scorer.embed` / `classify` / `token_embed`: rendered by `chat_token_ids`
    with these options (`add_generation_prompt`, `continue_final_message`, `chat_template_kwargs`)."""

    messages: list[dict[str, Any]]
    add_special_tokens: bool = False
    options: dict[str, Any] = field(default_factory=dict)

    def token_ids(self, tokenizer) -> list[int]:
        return chat_token_ids(tokenizer, self.messages, add_special_tokens=self.add_special_tokens,
                              **{k: v for k, v in self.options.items() if v is not None})


def _flat(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise ValidationError(f"{where}.content must be a string or a list of content parts", param="messages")
    texts = []
    for k, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind != "text" or not isinstance(part.get("text"), str):
            raise ValidationError(f"{where}.content[{k}]: content part type {kind!r} is not supported by this "
                                  "text-only model; send `text` parts", param="messages")
        texts.append(part["text"])
    return "\n".join(texts)


def chat_token_ids(tokenizer, messages: list[dict[str, Any]], add_generation_prompt: bool = False,
                   continue_final_message: bool = False, add_special_tokens: bool = False,
                   chat_template_kwargs: dict[str, Any] | None = None) -> list[int]:
    if not getattr(tokenizer, "chat_template", None):
        raise ValidationError("This model's tokenizer has no chat template: send `input` instead of `messages`.",
                              param="messages")
    if not messages:
        raise ValidationError("messages must not be empty", param="messages")
    flat = []
    for i, message in enumerate(messages):
        if not isinstance(message.get("role"), str):
            raise ValidationError(f"messages[{i}] needs a string `role`", param="messages")
        flat.append({**message, "content": _flat(message.get("content", ""), f"messages[{i}]")})
    text = tokenizer.apply_chat_template(flat, tokenize=False, add_generation_prompt=add_generation_prompt,
                                         continue_final_message=continue_final_message,
                                         **(chat_template_kwargs or {}))
    return list(tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])
