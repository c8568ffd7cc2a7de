"""Cohere v1 rerank over structured documents: the text a document object is scored as.

Cohere's v1 /rerank takes each document as a string or an object of string fields, and `rank_fields` names the
fields to rank on, "in the order of the fields passed in" (Cohere's API reference for `rank_fields`); without
`rank_fields` an object is ranked on its `text` field. Cohere does not publish the exact string its model reads;
its rerank guide recommends giving structured data to the model as YAML strings, one `key: value` line per field;
we build that form (values unquoted, as written):
`"title: Paris\\nbody: The capital of France."` for `rank_fields=["title", "body"]`.
A named field that a document lacks, or whose value is not a string (Cohere's documents are string maps), is a
400 that names the document and the field. Strings and multimodal inputs are scored as they are.
"""

from __future__ import annotations

from typing import Any

from scorekit.errors import ValidationError


def _field(document: dict[str, Any], name: str, index: int) -> str:
    if name not in document:
        raise ValidationError(f"documents[{index}] has no field {name!r} named in rank_fields "
                              f"(its fields: {', '.join(map(repr, document)) or 'none'})", param="rank_fields")
    value = document[name]
    if not isinstance(value, str):
        raise ValidationError(f"documents[{index}].{name} is a {type(value).__name__}: Cohere's document fields are "
                              "strings", param=f"documents[{index}].{name}")
    return value


def ranked_text(document: dict[str, Any], rank_fields: list[str] | None, index: int) -> str:
    """The text scored for document object number `index` (its fields as sent, in the order sent)."""
    if not rank_fields:
        text = document.get("text")
        if not isinstance(text, str):
            raise ValidationError(f"documents[{index}] is an object without a string `text` field: give it one, or "
                                  "name the fields to rank on in rank_fields", param=f"documents[{index}].text")
        return text
    if len(set(rank_fields)) != len(rank_fields):
        raise ValidationError("rank_fields names a field twice", param="rank_fields")
    return "\n".join(f"{name}: {_field(document, name, index)}" for name in rank_fields)
