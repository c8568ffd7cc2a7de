"""The scoring layer: requests in plain Python values → prompts → engine → scores and usage.

Both the offline `LLM` and the HTTP server call this, so every rule of SPEC §4–§5 lives in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any, Sequence

import torch

from scorekit.engine.runner import Runner, Task
from scorekit.engine.scheduler import WorkItem
from scorekit.errors import UnsupportedTask, ValidationError
from scorekit.models.loader import LoadedModel
from scorekit.scoring import maths
from scorekit.scoring.pairing import as_list, pair_inputs
from scorekit.scoring.prompts import Prompt, PromptBuilder
from scorekit.scoring.truncation import TruncationParams

MAX_LABELS = 128
# Late interaction holds every document token's embedding until MaxSim: this many tokens per engine call.
LATE_INTERACTION_CHUNK_TOKENS = 65_536


@dataclass
class ScoreParams:
    truncation: TruncationParams = field(default_factory=TruncationParams)
    use_activation: bool | None = None  # None = model default (on)
    template_kwargs: dict[str, Any] | None = None  # chat_template_kwargs, with `instruction` folded in
    priority: int = 0  # lower runs first, as in vLLM


@dataclass
class ScoreResult:
    scores: list[float]
    prompt_token_ids: list[list[int]]  # per pair: packed prompt, or query ids + [pad] + doc ids
    prompt_tokens: int  # usage: tokens of the engine inputs actually run


@dataclass
class RankedDocument:
    index: int
    document: Any
    relevance_score: float


def _chunks(lengths: Sequence[int], max_tokens: int) -> list[tuple[int, int]]:
    """Consecutive [start, end) ranges of at most `max_tokens` tokens each (at least one item per range)."""
    ranges, start, total = [], 0, 0
    for i, n in enumerate(lengths):
        if i > start and total + n > max_tokens:
            ranges.append((start, i))
            start, total = i, 0
        total += n
    if start < len(lengths):
        ranges.append((start, len(lengths)))
    return ranges


def rank(documents: Sequence[Any], scores: Sequence[float], top_n: int = 0) -> list[RankedDocument]:
    """Sort by score, descending; ties keep request order (Python's sort is stable). top_n 0 = all."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    if 0 < top_n < len(order):
        order = order[:top_n]
    return [RankedDocument(i, documents[i], scores[i]) for i in order]


class Scorer:
    def __init__(self, loaded: LoadedModel, runner: Runner, template: str | None = None):
        self.loaded = loaded
        self.info = loaded.info
        self.runner = runner
        self.tokenizer = loaded.tokenizer
        self.template = template
        self.builder = PromptBuilder(
            loaded.tokenizer,
            self.info.max_model_len,
            use_sep_token=self.info.use_sep_token,
            template=template,
            uses_token_types=(getattr(loaded.config, "type_vocab_size", 0) or 0) > 1,
        )

    @property
    def max_model_len(self) -> int:
        return self.info.max_model_len

    def check_score_api(self) -> str:
        if self.info.task == "generate":
            raise UnsupportedTask("The model does not support Score API")
        if self.info.task == "classify" and self.info.num_labels != 1:
            raise UnsupportedTask("Scoring API is only enabled for num_labels == 1.")
        if self.info.score_type is None:
            raise UnsupportedTask("This model does not support the Scoring API.")
        return self.info.score_type

    # -- score / rerank --------------------------------------------------------------------------------
    def score(self, side1, side2, params: ScoreParams | None = None, use_tqdm: bool = False) -> ScoreResult:
        params = params or ScoreParams()
        score_type = self.check_score_api()
        pairs = pair_inputs(side1, side2, self.info.architecture)
        params.truncation.validate(self.max_model_len)
        if score_type == "cross-encoder":
            return self._cross(pairs, params, use_tqdm)
        return self._separate(pairs, params, score_type, len(as_list(side1)) == 1, use_tqdm)

    def _cross(self, pairs, params: ScoreParams, use_tqdm: bool) -> ScoreResult:
        prompts = self.builder.pairs(pairs, params.truncation, params.template_kwargs)
        logits = self.runner.run(Task("classify"), prompts, use_tqdm=use_tqdm, priority=params.priority)
        activated = params.use_activation is not False
        scores = [float(maths.activate(l, self.info.activation)[0] if activated else l[0]) for l in logits]
        return ScoreResult(scores, [list(p.input_ids) for p in prompts], sum(len(p) for p in prompts))

    def _separate(self, pairs, params: ScoreParams, score_type: str, one_query: bool, use_tqdm: bool) -> ScoreResult:
        """Bi-encoder and late interaction: each side is its own prompt; a 1:N query is encoded once."""
        queries = [q for q, _ in pairs]
        query_prompts = self.builder.singles(queries[:1] if one_query else queries, params.truncation, is_query=True)
        doc_prompts = self.builder.singles([d for _, d in pairs], params.truncation, is_query=False)
        if score_type == "bi-encoder":
            outputs = self.runner.run(Task("embed"), query_prompts + doc_prompts, use_tqdm=use_tqdm,
                                      priority=params.priority)
            query_out, doc_out = outputs[: len(query_prompts)], outputs[len(query_prompts):]
            query_out = query_out * len(pairs) if one_query else query_out
            scores = [maths.cosine(q, d) for q, d in zip(query_out, doc_out)]
        else:
            scores = self._late_interaction(query_prompts, doc_prompts, one_query, params.priority, use_tqdm)
        used_queries = query_prompts
        if one_query:
            query_prompts = query_prompts * len(pairs)
        pad = self.builder.pad_id
        token_ids = [list(q.input_ids) + [pad] + list(d.input_ids) for q, d in zip(query_prompts, doc_prompts)]
        usage = sum(len(p) for p in used_queries) + sum(len(p) for p in doc_prompts)
        return ScoreResult(scores, token_ids, usage)

    def _late_interaction(self, query_prompts: list[Prompt], doc_prompts: list[Prompt], one_query: bool,
                          priority: int, use_tqdm: bool) -> list[float]:
        """MaxSim scores, with the documents run in chunks that are reduced to scores at once: the token
        embeddings of a whole 1 × 2,000 × 512-token request would otherwise be held together (1.5 GB on MiniLM)."""
        task = Task("token_embed")
        scores: list[float] = []
        queries: list[torch.Tensor] = []
        for start, end in _chunks([len(p) for p in doc_prompts], LATE_INTERACTION_CHUNK_TOKENS):
            # The chunk's own queries run in the same engine call (1:N: the one query, with the first chunk).
            chunk_queries = (query_prompts if start == 0 else []) if one_query else query_prompts[start:end]
            outputs = self.runner.run(task, chunk_queries + doc_prompts[start:end], use_tqdm=use_tqdm,
                                      priority=priority)
            queries = [maths.normalize(q) for q in outputs[: len(chunk_queries)]] or queries
            for row, doc in enumerate(outputs[len(chunk_queries):]):
                scores.append(maths.maxsim(queries[0] if one_query else queries[row], maths.normalize(doc)))
        return scores

    # -- embeddings and classification -----------------------------------------------------------------
    def embed(self, texts: Sequence[str], truncation: TruncationParams | None = None, normalize: bool = True,
              use_tqdm: bool = False) -> tuple[list[torch.Tensor], list[Prompt]]:
        truncation = self._embed_truncation(truncation)
        prompts = self.builder.singles(texts, truncation, is_query=False)
        return self.runner.run(Task("embed", normalize=normalize), prompts, use_tqdm=use_tqdm), prompts

    def _embed_truncation(self, truncation: TruncationParams | None) -> TruncationParams:
        if self.info.task not in ("embed", "token_embed"):
            raise UnsupportedTask("The model does not support the Embeddings API")
        truncation = truncation or TruncationParams()
        truncation.validate(self.max_model_len)
        return truncation

    def submit_embed(self, texts: Sequence[str], truncation: TruncationParams | None = None,
                     normalize: bool = True, priority: int = 0) -> WorkItem:
        """`embed` without waiting, for the server: the texts are tokenised on the model thread when their turn
        comes (`item.prompts` then holds them) and `item.future` gets the vectors."""
        truncation = self._embed_truncation(truncation)
        texts = list(texts)
        return self.runner.submit(Task("embed", normalize=normalize), [], priority,
                                  prepare=partial(self.builder.singles, texts, truncation, is_query=False),
                                  count=len(texts))

    def token_embed(self, texts: Sequence[str], truncation: TruncationParams | None = None, normalize: bool = True,
                    use_tqdm: bool = False) -> tuple[list[torch.Tensor], list[Prompt]]:
        truncation = truncation or TruncationParams()
        truncation.validate(self.max_model_len)
        prompts = self.builder.singles(texts, truncation, is_query=False)
        matrices = self.runner.run(Task("token_embed"), prompts, use_tqdm=use_tqdm)
        return [maths.normalize(m) if normalize else m for m in matrices], prompts

    def classify(self, texts: Sequence[str], truncation: TruncationParams | None = None,
                 use_activation: bool | None = None, use_tqdm: bool = False) -> tuple[list[torch.Tensor], list[Prompt]]:
        if self.info.task != "classify":
            raise UnsupportedTask("The model does not support the Classification API")
        truncation = truncation or TruncationParams()
        truncation.validate(self.max_model_len)
        prompts = self.builder.singles(texts, truncation, is_query=False)
        logits = self.runner.run(Task("classify"), prompts, use_tqdm=use_tqdm)
        if use_activation is False:
            return logits, prompts
        return [maths.activate(l, self.info.activation) for l in logits], prompts

    # -- generative scoring (SPEC §5.5) ----------------------------------------------------------------
    def _token_list(self, ids, field_name: str) -> list[int]:
        vocab = self.loaded.model.backbone.vocab_size
        if not all(isinstance(t, int) and not isinstance(t, bool) and 0 <= t < vocab for t in ids):
            raise ValidationError(f"{field_name} token ids must be integers in [0, {vocab})", param=field_name)
        return list(ids)

    def generative(self, query, items, label_token_ids, apply_softmax: bool = True, item_first: bool = False,
                   add_special_tokens: bool = True, use_tqdm: bool = False, priority: int = 0) -> tuple[list[float], int]:
        if self.info.task != "generate":
            raise UnsupportedTask("The model does not support Generative Scoring API")
        vocab = self.loaded.model.backbone.vocab_size
        if label_token_ids is None:
            raise ValidationError("label_token_ids is required", param="label_token_ids")
        for token in label_token_ids:
            if not isinstance(token, int) or not 0 <= token < vocab:
                raise ValidationError(
                    f"label_token_id {token} is out of vocabulary range [0, {vocab}). Please provide valid token IDs.")
        if not label_token_ids:
            raise ValidationError("label_token_ids must contain at least one token ID.")
        if not items:
            raise ValidationError("items must contain at least one item.")
        labels = tuple(dict.fromkeys(label_token_ids))  # duplicates collapse, first label stays first
        if len(labels) > MAX_LABELS:
            raise ValidationError(f"At most {MAX_LABELS} label_token_ids are supported, got {len(labels)}.")
        strings = [isinstance(i, str) for i in items]
        if any(strings) and not all(strings):
            raise ValidationError("items must be all strings or all token id lists, not a mix.", param="items")
        if isinstance(query, str):
            q_ids = self.builder.tokenize(query, add_special_tokens=add_special_tokens)["input_ids"]
        else:
            q_ids = self._token_list(query, "query")
        if all(strings):
            item_ids = self.builder.tokenize(list(items), add_special_tokens=False)["input_ids"]
        else:
            item_ids = [self._token_list(i, "items") for i in items]
        keep = self.max_model_len - 1  # room for the one generated token; longer prompts keep their start
        prompts = [Prompt(tuple(((i + q_ids) if item_first else (q_ids + i))[:keep])) for i in item_ids]
        if any(len(p) == 0 for p in prompts):
            raise ValidationError("A generative scoring prompt is empty: give a query or non-empty items.")
        task = Task("next_token", labels, full_vocab_log_softmax=not apply_softmax)
        values = self.runner.run(task, prompts, use_tqdm=use_tqdm, priority=priority)
        scores = [float(maths.label_probabilities(v, apply_softmax)[0]) for v in values]
        return scores, sum(len(p) for p in prompts)
