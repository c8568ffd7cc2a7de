"""Turning request text into token sequences (SPEC §5.1, §5.3): cross-encoder packing and single prompts.

Cross-encoder pairs become one prompt each, by the first of: a score template (rendered, then tokenised),
HF pair encoding `[CLS] q [SEP] d [SEP]` with token_type_ids (`use_sep_token`), or plain `q + d`.
Bi-encoder and late-interaction sides are tokenised on their own, with the same truncation rules.
Tokenisation is always one batched call to the Rust tokenizer, never a Python loop over texts.
"""

from __future__ import annotations

import threading
from typing import Any, Sequence

from scorekit.engine.prompt import Prompt
from scorekit.scoring.templates import check_template_kwargs, render_score_prompt
from scorekit.scoring.truncation import (
    SAFETY_TOKENS,
    TruncationParams,
    bound_text,
    char_budget,
    cut_text_to_tokens,
    finish,
)


def pad_token_id(tokenizer) -> int:
    """The id that fills padding; decoders without a pad token use EOS (padding is masked anyway)."""
    if tokenizer.pad_token_id is not None:
        return tokenizer.pad_token_id
    return tokenizer.eos_token_id or 0


class PromptBuilder:
    def __init__(
        self,
        tokenizer,
        max_model_len: int,
        use_sep_token: bool = True,
        template: str | None = None,
        uses_token_types: bool = False,
    ):
        self.tokenizer = tokenizer
        self.max_model_len = max_model_len
        self.use_sep_token = use_sep_token
        self.template = template
        self.uses_token_types = uses_token_types
        self.pad_id = pad_token_id(tokenizer)
        # HF fast tokenizers set truncation state on the shared Rust object at every call: two threads with
        # different truncation settings could swap them. Every call goes through this lock.
        self.lock = threading.Lock()
        self.special_tokens = {
            name: getattr(tokenizer, name, None)
            for name in ("bos_token", "eos_token", "pad_token", "unk_token", "sep_token", "cls_token")
        }

    def tokenize(self, *args, **kwargs):
        with self.lock:
            return self.tokenizer(*args, **kwargs)

    # -- text limits applied before packing -------------------------------------------------------------
    def bounded(self, texts: Sequence[str], params: TruncationParams) -> list[str]:
        """Texts longer than the model's character budget cut to it before tokenising (truncation.bound_text);
        the result is what tokenising the whole text gives, which `_still_exact` checks for every cut text."""
        budget = char_budget(self.max_model_len)
        if all(len(t) <= budget for t in texts):
            return list(texts)
        side = params.truncation_side or getattr(self.tokenizer, "truncation_side", "right")
        keep_end = side == "left" and params.truncate_prompt_tokens is not None
        out = []
        for text in texts:
            cut = bound_text(text, budget, keep_end)
            out.append(cut if cut is text or self._still_exact(cut) else text)
        return out

    def _still_exact(self, cut: str) -> bool:
        """A cut text keeps more tokens than any prompt may hold (plus a margin for its last, cut word)."""
        tokens = self.tokenize(cut, add_special_tokens=False)["input_ids"]
        return len(tokens) > self.max_model_len + SAFETY_TOKENS

    def _cap(self, texts: Sequence[str], limit: int) -> list[str]:
        if not limit:
            return list(texts)
        cut: dict[str, str] = {}  # 1:N repeats the query N times: cut it once
        for text in texts:
            if text not in cut:
                cut[text] = cut_text_to_tokens(self.tokenize, text, limit)
        return [cut[text] for text in texts]

    def _finish_all(self, encoded, params: TruncationParams) -> list[Prompt]:
        ids_list = encoded["input_ids"]
        types_list = encoded.get("token_type_ids") if self.uses_token_types else None
        prompts = []
        for i, ids in enumerate(ids_list):
            types = types_list[i] if types_list is not None else None
            ids, types = finish(ids, types, params, self.max_model_len, self.pad_id)
            prompts.append(Prompt(tuple(ids), tuple(types) if types is not None else None))
        return prompts

    # -- cross-encoder ------------------------------------------------------------------------------------
    def pairs(
        self,
        pairs: Sequence[tuple[str, str]],
        params: TruncationParams,
        template_kwargs: dict[str, Any] | None = None,
    ) -> list[Prompt]:
        queries = self._cap(self.bounded([q for q, _ in pairs], params), params.max_tokens_per_query)
        docs = self._cap(self.bounded([d for _, d in pairs], params), params.max_tokens_per_doc)
        kwargs = params.tokenizer_kwargs(self.max_model_len)
        if self.template is not None:
            check_template_kwargs(template_kwargs)
            texts = [render_score_prompt(self.template, q, d, self.special_tokens, template_kwargs) for q, d in zip(queries, docs)]
            return self._finish_all(self.tokenize(texts, add_special_tokens=True, **kwargs), params)
        if not self.use_sep_token:
            texts = [q + d for q, d in zip(queries, docs)]
            return self._finish_all(self.tokenize(texts, add_special_tokens=True, **kwargs), params)
        if params.max_tokens_per_doc:
            return self._pairs_with_doc_limit(queries, docs, params, kwargs)
        return self._finish_all(self._encode_pairs(queries, docs, kwargs), params)

    def _encode_pairs(self, queries, docs, kwargs):
        return self.tokenize(queries, docs, add_special_tokens=True, return_token_type_ids=self.uses_token_types, **kwargs)

    def _pairs_with_doc_limit(self, queries, docs, params, kwargs) -> list[Prompt]:
        """vLLM's sep-token rule: a doc limit also truncates `only_second` so the query is never eaten."""
        special = self.tokenizer.num_special_tokens_to_add(pair=True)
        prompts: list[Prompt | None] = [None] * len(queries)
        by_query: dict[str, list[int]] = {}
        for i, q in enumerate(queries):
            by_query.setdefault(q, []).append(i)
        for q, idx in by_query.items():
            q_len = len(self.tokenize(q, add_special_tokens=False)["input_ids"])
            max_length = q_len + params.max_tokens_per_doc + special
            if kwargs.get("max_length"):
                max_length = min(max_length, kwargs["max_length"])
            group_kwargs = dict(kwargs)
            if max_length > q_len + special:
                group_kwargs.update(truncation="only_second", max_length=max_length)
            encoded = self._encode_pairs([q] * len(idx), [docs[i] for i in idx], group_kwargs)
            for i, prompt in zip(idx, self._finish_all(encoded, params)):
                prompts[i] = prompt
        return prompts  # type: ignore[return-value]

    # -- bi-encoder / late interaction / generative -----------------------------------------------------
    def singles(self, texts: Sequence[str], params: TruncationParams, is_query: bool,
                add_special_tokens: bool = True) -> list[Prompt]:
        limit = params.max_tokens_per_query if is_query else params.max_tokens_per_doc
        texts = self._cap(self.bounded(texts, params), limit)
        kwargs = params.tokenizer_kwargs(self.max_model_len)
        encoded = self.tokenize(list(texts), add_special_tokens=add_special_tokens,
                                return_token_type_ids=self.uses_token_types, **kwargs)
        return self._finish_all(encoded, params)

    def padded_singles(self, texts: Sequence[str], length: int) -> list[Prompt]:
        """Texts tokenised, cut and padded to exactly `length` tokens, as a processor called with
        padding="max_length", truncation=True, max_length=length gives them: for text towers that pool the last
        position (SigLIP), where the pads are part of the input (models/vision/clip.py)."""
        texts = self.bounded(texts, TruncationParams())
        encoded = self.tokenize(list(texts), padding="max_length", truncation=True, max_length=length)
        return [Prompt(tuple(ids)) for ids in encoded["input_ids"]]

    def from_ids(self, ids_list: Sequence[Sequence[int]], params: TruncationParams) -> list[Prompt]:
        """Prompts given as token ids (vLLM's token inputs): cut as a tokenizer would cut text — from the
        requested side, else the tokenizer's own — then checked against the length limit."""
        limit = params.limit(self.max_model_len)
        side = params.truncation_side or getattr(self.tokenizer, "truncation_side", "right")
        prompts = []
        for ids in ids_list:
            ids = list(ids)
            if limit is not None and len(ids) > limit:
                ids = ids[len(ids) - limit:] if side == "left" else ids[:limit]
            ids, _ = finish(ids, None, params, self.max_model_len, self.pad_id)
            prompts.append(Prompt(tuple(ids)))
        return prompts
