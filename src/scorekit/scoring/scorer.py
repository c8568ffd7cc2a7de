"""The scoring layer: requests in plain Python values → plans of engine steps → scores and usage.

Both the offline `LLM` and the HTTP server call this, so every rule of SPEC §4–§5 lives in one place. Each
public method checks what it can check at once (pairing rules, parameters: a bad request fails fast, without
queueing) and returns a Job: its plan tokenises on the engine's model thread, runs its steps, and computes
the scores there. The caller submits it through the engine's one door and waits for, or awaits, its future.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from scorekit.engine.job import Job, Plan, Step, no_step
from scorekit.engine.prompt import Prompt
from scorekit.engine.task import Task, TaskKind
from scorekit.errors import UnsupportedTask, ValidationError
from scorekit.models.loader import LoadedModel
from scorekit.scoring import maths
from scorekit.scoring.chat import ChatInput
from scorekit.scoring.chunking import EDGE_SLACK_TOKENS, ChunkParams, aggregate, token_windows
from scorekit.scoring.pairing import as_list, is_multimodal, pair_inputs, refuse_multimodal
from scorekit.scoring.prompts import PromptBuilder
from scorekit.scoring.truncation import TruncationParams

MAX_LABELS = 128
# Late interaction holds every document token's embedding until MaxSim: this many tokens per engine step.
LATE_INTERACTION_CHUNK_TOKENS = 65_536


@dataclass
class ScoreParams:
    truncation: TruncationParams = field(default_factory=TruncationParams)
    use_activation: bool | None = None  # None = model default (on)
    template_kwargs: dict[str, Any] | None = None  # chat_template_kwargs, with `instruction` folded in
    priority: int = 0  # lower runs first, as in vLLM
    chunking: ChunkParams = field(default_factory=ChunkParams)  # long documents (scoring/chunking.py)


@dataclass
class ScoreResult:
    scores: list[float]
    prompt_token_ids: list[list[int]]  # per pair: packed prompt, or query ids + [pad] + doc ids
    prompt_tokens: int  # usage: tokens of the engine inputs actually run
    # With chunking: per pair, the windows scored, the character span of the deciding one, and whether
    # max_chunks_per_doc left windows of the document unscored.
    chunks: list[int] | None = None
    best_chunk: list[tuple[int, int]] | None = None
    chunks_truncated: list[bool] | None = None
    # Per pair, vLLM's num_cached_tokens: prompt tokens the engine did not compute for this pair (engine/runner.py
    # says when). A cross-encoder pair: its packed prompt's; bi-encoder and late interaction: its query's plus its
    # document's, as vLLM adds both sides (a 1:N query's count goes into every pair); with chunking: the sum over
    # the document's windows.
    cached_tokens: list[int] = field(default_factory=list)


@dataclass
class Encoded:
    """Per-input model outputs (vectors, matrices or probabilities) and the prompts they came from."""

    outputs: list[torch.Tensor]
    prompts: list[Prompt]
    cached_tokens: list[int] = field(default_factory=list)  # per input: tokens the engine did not compute for it

    @property
    def prompt_tokens(self) -> int:
        return sum(p.num_tokens for p in self.prompts)  # an image counts the vision tokens it runs


@dataclass
class GenerativeResult:
    scores: list[float]
    prompt_tokens: int
    prompt_token_ids: list[list[int]] = field(default_factory=list)  # per item: the prompt that ran
    cached_tokens: list[int] = field(default_factory=list)  # per item: vLLM's num_cached_tokens (engine/runner.py)


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
    def __init__(self, loaded: LoadedModel, template: str | None = None):
        self.loaded = loaded
        self.info = loaded.info
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

    def activated(self, use_activation: bool | None) -> bool:
        """A request's use_activation, or the model's default (on, unless --pooler-config says otherwise)."""
        return self.info.default_use_activation if use_activation is None else use_activation

    def _calibrated(self, logits: torch.Tensor) -> torch.Tensor:
        """--pooler-config's logit_mean/logit_sigma, before any activation (as vLLM's classifier pooler)."""
        if self.info.logit_mean == 0.0 and self.info.logit_sigma == 1.0:
            return logits
        return (logits - self.info.logit_mean) / self.info.logit_sigma

    @property
    def embedding_size(self) -> int:
        if self.loaded.media_inputs is not None:
            return self.loaded.media_inputs.embedding_size
        projection = self.loaded.model.projection
        return projection.out_features if projection is not None else self.loaded.config.hidden_size

    def check_score_api(self) -> str:
        if self.info.task == "generate":
            raise UnsupportedTask("The model does not support Score API")
        if self.info.task == "classify" and self.info.num_labels != 1:
            raise UnsupportedTask("Scoring API is only enabled for num_labels == 1.")
        if self.info.score_type is None:
            raise UnsupportedTask("This model does not support the Scoring API.")
        return self.info.score_type

    # -- score / rerank --------------------------------------------------------------------------------
    def score(self, side1, side2, params: ScoreParams | None = None, **job_options) -> Job:
        """A job whose result is a ScoreResult, one score per pair in pair order."""
        params = params or ScoreParams()
        score_type = self.check_score_api()
        pairs = pair_inputs(side1, side2, self.info.architecture, multimodal_model=self.info.multimodal)
        params.truncation.validate(self.max_model_len)
        params.chunking.validate()
        one_query = len(as_list(side1)) == 1
        if params.chunking.enabled and any(is_multimodal(d) for _, d in pairs):
            raise ValidationError("max_chunks_per_doc splits text documents into token windows: multimodal "
                                  "documents cannot be chunked", param="max_chunks_per_doc")
        if params.chunking.enabled:
            if params.truncation.max_tokens_per_doc:
                raise ValidationError("max_tokens_per_doc cuts documents and max_chunks_per_doc splits them: "
                                      "give one of them", param="max_chunks_per_doc")
            plan = self._chunked(pairs, params, score_type, one_query)
        else:
            plan = self._pairs_plan(pairs, params, score_type, one_query)
        return Job(plan, priority=params.priority, size=len(pairs), **job_options)

    def _pairs_plan(self, pairs, params: ScoreParams, score_type: str, one_query: bool) -> Plan:
        if score_type == "cross-encoder":
            return self._cross(pairs, params)
        if score_type == "bi-encoder":
            return self._bi_encoder(pairs, params, one_query)
        return self._late_interaction(pairs, params, one_query)

    def _chunked(self, pairs, params: ScoreParams, score_type: str, one_query: bool) -> Plan:
        """Every document split into the windows its query leaves room for, every (query, window) scored as
        an ordinary pair, each document's windows aggregated (scoring/chunking.py)."""
        chunking = params.chunking
        budgets = {q: self._document_budget(q, params, score_type) for q in dict.fromkeys(q for q, _ in pairs)}
        expanded, owner, windows = [], [], []
        for i, (query, doc) in enumerate(pairs):
            offsets = self.builder.tokenize(doc, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
            found = token_windows(offsets, len(doc), budgets[query], chunking.chunk_overlap_tokens,
                                  chunking.max_chunks_per_doc)
            windows.append(found)
            for start, end in found.spans:
                expanded.append((query, doc[start:end]))
                owner.append(i)
        inner = yield from self._pairs_plan(expanded, params, score_type, one_query)
        by_pair: list[list[int]] = [[] for _ in pairs]
        for row, i in enumerate(owner):
            by_pair[i].append(row)
        scores, token_ids, best_spans, cached = [], [], [], []
        for i, rows in enumerate(by_pair):
            value, best = aggregate([inner.scores[r] for r in rows], chunking.chunk_aggregation)
            scores.append(value)
            token_ids.append(inner.prompt_token_ids[rows[best]])
            best_spans.append(windows[i].spans[best])
            cached.append(sum(inner.cached_tokens[r] for r in rows))
        return ScoreResult(scores, token_ids, inner.prompt_tokens, [len(rows) for rows in by_pair], best_spans,
                           [w.total > len(w.spans) for w in windows], cached)

    def _document_budget(self, query: str, params: ScoreParams, score_type: str) -> int:
        """Document tokens one window may hold: the model's limit less what the query, template and special
        tokens take (measured by building the prompt with an empty document), less a little slack."""
        limits = TruncationParams(max_tokens_per_query=params.truncation.max_tokens_per_query)
        if score_type == "cross-encoder":
            used = len(self.builder.pairs([(query, "")], limits, params.template_kwargs)[0])
        else:
            used = len(self.builder.singles([""], limits, is_query=False)[0])
        budget = self.max_model_len - used - EDGE_SLACK_TOKENS
        if budget <= params.chunking.chunk_overlap_tokens:
            raise ValidationError(f"The query and template take {used} of the model's {self.max_model_len} tokens: "
                                  f"too few are left to chunk documents with an overlap of "
                                  f"{params.chunking.chunk_overlap_tokens}", param="max_chunks_per_doc")
        return budget

    def _cross(self, pairs, params: ScoreParams) -> Plan:
        prompts = self._pair_prompts(pairs, params)
        outputs = yield Step(Task(TaskKind.CLASSIFY), prompts)
        logits = [self._calibrated(l) for l in outputs]
        activated = self.activated(params.use_activation)
        scores = [float(maths.activate(l, self.info.activation)[0] if activated else l[0]) for l in logits]
        return ScoreResult(scores, [list(p.input_ids) for p in prompts], sum(len(p) for p in prompts),
                           cached_tokens=list(outputs.cached_tokens))

    def _pair_prompts(self, pairs, params: ScoreParams) -> list[Prompt]:
        """Text-only pairs through the text path; on a Qwen-VL model, pairs with images through QwenVLPrompts
        (scoring/multimodal_prompts.py). Each pair's prompt depends on that pair only: batches stay invariant."""
        with_media = [i for i, (q, d) in enumerate(pairs) if is_multimodal(q) or is_multimodal(d)]
        if not with_media:
            return self.builder.pairs(pairs, params.truncation, params.template_kwargs)
        from scorekit.scoring.vl_inputs import refuse_truncation

        refuse_truncation(params.truncation, self.info.architecture)
        vl = self.loaded.media_inputs.prompts_for(self.template, self.builder.special_tokens)
        prompts: list = [None] * len(pairs)
        for i, p in zip(with_media, vl.pairs([pairs[i] for i in with_media], params.template_kwargs)):
            prompts[i] = p
        text = [i for i in range(len(pairs)) if prompts[i] is None]
        if text:
            for i, p in zip(text, self.builder.pairs([pairs[i] for i in text], params.truncation,
                                                     params.template_kwargs)):
                prompts[i] = p
        return prompts

    def _sides(self, pairs, params: ScoreParams, one_query: bool) -> tuple[list[Prompt], list[Prompt]]:
        """Bi-encoder and late interaction: each side is its own prompt; a 1:N query is encoded once."""
        queries = [q for q, _ in pairs]
        query_prompts = self._single_prompts(queries[:1] if one_query else queries, params.truncation, is_query=True)
        doc_prompts = self._single_prompts([d for _, d in pairs], params.truncation, is_query=False)
        return query_prompts, doc_prompts

    def _single_prompts(self, items: Sequence, truncation: TruncationParams, is_query: bool,
                        add_special_tokens: bool = True) -> list[Prompt]:
        """One prompt per input: texts through the tokenizer; on a multimodal model, texts and resolved
        `Content` (images) through its input builder, which prepares them as its processor would."""
        media_inputs = self.loaded.media_inputs
        if media_inputs is not None:
            return media_inputs.prompts(items, self.builder, truncation, is_query)
        refuse_multimodal(items, self.info.architecture, self.info.multimodal)
        return self.builder.singles(items, truncation, is_query=is_query, add_special_tokens=add_special_tokens)

    def _separate_result(self, scores: list[float], query_prompts: list[Prompt], doc_prompts: list[Prompt],
                         one_query: bool, query_cached: list[int], doc_cached: list[int]) -> ScoreResult:
        if one_query:
            query_prompts = query_prompts * len(doc_prompts)
            query_cached = query_cached * len(doc_prompts)
        pad = self.builder.pad_id
        token_ids = [list(q.input_ids) + [pad] + list(d.input_ids) for q, d in zip(query_prompts, doc_prompts)]
        # Usage as vLLM reports it (measured: 39 tokens for a 1 × 2 request we once counted as 28): every pair's
        # query + separator + document, though a 1:N query runs once. An image counts its vision tokens.
        usage = sum(q.num_tokens + 1 + d.num_tokens for q, d in zip(query_prompts, doc_prompts))
        return ScoreResult(scores, token_ids, usage, cached_tokens=[q + d for q, d in zip(query_cached, doc_cached)])

    def _bi_encoder(self, pairs, params: ScoreParams, one_query: bool) -> Plan:
        query_prompts, doc_prompts = self._sides(pairs, params, one_query)
        outputs = yield Step(Task(TaskKind.EMBED), query_prompts + doc_prompts)
        query_out, doc_out = outputs[: len(query_prompts)], outputs[len(query_prompts):]
        query_out = query_out * len(pairs) if one_query else query_out
        scores = [maths.cosine(q, d) for q, d in zip(query_out, doc_out)]
        cached = outputs.cached_tokens
        return self._separate_result(scores, query_prompts, doc_prompts, one_query, cached[: len(query_prompts)],
                                     cached[len(query_prompts):])

    def _late_interaction(self, pairs, params: ScoreParams, one_query: bool) -> Plan:
        """MaxSim scores, with the documents run in steps that are reduced to scores at once: the token
        embeddings of a whole 1 × 2,000 × 512-token request would otherwise be held together (1.5 GB on MiniLM)."""
        query_prompts, doc_prompts = self._sides(pairs, params, one_query)
        task = Task(TaskKind.TOKEN_EMBED)
        # Token vectors are unit length unless --pooler-config turned the model's activation off (a request's
        # use_activation concerns cross-encoders only).
        unit = maths.normalize if self.info.default_use_activation else (lambda m: m)
        scores: list[float] = []
        queries: list[torch.Tensor] = []
        query_cached: list[int] = []
        doc_cached: list[int] = []
        for start, end in _chunks([len(p) for p in doc_prompts], LATE_INTERACTION_CHUNK_TOKENS):
            # The chunk's own queries run in the same step (1:N: the one query, with the first chunk).
            chunk_queries = (query_prompts if start == 0 else []) if one_query else query_prompts[start:end]
            outputs = yield Step(task, chunk_queries + doc_prompts[start:end])
            queries = [unit(q) for q in outputs[: len(chunk_queries)]] or queries
            query_cached += outputs.cached_tokens[: len(chunk_queries)]
            doc_cached += outputs.cached_tokens[len(chunk_queries):]
            for row, doc in enumerate(outputs[len(chunk_queries):]):
                scores.append(maths.maxsim(queries[0] if one_query else queries[row], unit(doc)))
        return self._separate_result(scores, query_prompts, doc_prompts, one_query, query_cached, doc_cached)

    # -- embeddings and classification -----------------------------------------------------------------
    def _singles(self, texts: Sequence, truncation: TruncationParams | None) -> tuple[list, TruncationParams]:
        truncation = truncation or TruncationParams()
        truncation.validate(self.max_model_len)
        return list(texts), truncation

    def embed(self, inputs: Sequence[str] | Sequence[Sequence[int]], truncation: TruncationParams | None = None,
              normalize: bool | None = None, priority: int = 0, add_special_tokens: bool = True,
              dimensions: int | None = None, **job_options) -> Job:
        """A job whose result is Encoded: one pooled vector per input (unit length when `normalize`). Inputs
        are texts, or token id lists (all one kind). `dimensions` keeps the first dimensions of a Matryoshka
        model's vectors (normalised after the cut, as vLLM does). A multimodal model also takes resolved
        `Content` inputs (images), mixed with texts in any order. A ChatInput is a conversation (`_encode`)."""
        inputs, truncation = self._singles(inputs, truncation)
        refuse_multimodal(inputs, self.info.architecture, self.info.multimodal)
        return self._embed_job(lambda: inputs, len(inputs), truncation, normalize, priority, add_special_tokens,
                               dimensions, job_options)

    def _embed_job(self, build, size: int, truncation: TruncationParams, normalize: bool | None, priority: int,
                   add_special_tokens: bool, dimensions: int | None, job_options: dict) -> Job:
        if self.info.task not in ("embed", "token_embed"):
            raise UnsupportedTask("The model does not support the Embeddings API")
        if self.info.task == "token_embed" and self.loaded.media_inputs is not None:
            # ColPali/ColQwen2: no pooled vector was trained; a pooled one would be made up
            raise UnsupportedTask(f"{self.info.architecture} embeds per token (late interaction) and has no pooled "
                                  "embedding: use encode(pooling_task='token_embed') or score")
        normalize = self.activated(normalize)
        if dimensions is not None:
            self.check_dimensions(dimensions)
        if dimensions is not None and dimensions != self.embedding_size:
            post = (lambda v: maths.normalize(v[:dimensions])) if normalize else (lambda v: v[:dimensions])
            task = Task(TaskKind.EMBED, normalize=False)
        else:
            post, task = None, Task(TaskKind.EMBED, normalize=normalize)
        plan = self._encode(task, build, truncation, post=post, add_special_tokens=add_special_tokens)
        return Job(plan, priority=priority, size=size, **job_options)

    def check_dimensions(self, dimensions: int) -> None:
        """vLLM's rule: only a Matryoshka model (config `is_matryoshka` or `matryoshka_dimensions`) may be cut,
        and only to a size it declares (any size from 1 when it declares none)."""
        config = self.loaded.config
        declared = getattr(config, "matryoshka_dimensions", None)
        name = self.info.architecture
        if dimensions == self.embedding_size and not declared:
            return  # the model's own size: nothing to cut (OpenAI clients may send it)
        if not (getattr(config, "is_matryoshka", False) or declared):
            raise ValidationError(f'Model "{name}" does not support matryoshka representation, changing output '
                                  "dimensions will lead to poor results.", param="dimensions")
        if dimensions < 1:
            raise ValidationError("Dimensions must be greater than 0", param="dimensions")
        if declared and dimensions not in declared:
            raise ValidationError(f'Model "{name}" only supports {declared} matryoshka dimensions, use other '
                                  "output dimensions will lead to poor results.", param="dimensions")

    def token_embed(self, texts: Sequence[str], truncation: TruncationParams | None = None,
                    normalize: bool | None = None,
                    priority: int = 0, add_special_tokens: bool = True, **job_options) -> Job:
        """A job whose result is Encoded: one [tokens, dim] matrix per text (rows unit length when `normalize`)."""
        if self.info.task not in ("embed", "token_embed"):
            raise UnsupportedTask(f"The model does not support token embeddings: it serves {self.info.task!r}")
        texts, truncation = self._singles(texts, truncation)
        plan = self._encode(Task(TaskKind.TOKEN_EMBED), lambda: texts, truncation,
                            post=maths.normalize if self.activated(normalize) else None, add_special_tokens=add_special_tokens)
        return Job(plan, priority=priority, size=len(texts), **job_options)

    def classify(self, texts: Sequence[str], truncation: TruncationParams | None = None,
                 use_activation: bool | None = None, priority: int = 0, add_special_tokens: bool = True,
                 **job_options) -> Job:
        """A job whose result is Encoded: class probabilities per text (raw logits with use_activation=False)."""
        if self.info.task != "classify":
            raise UnsupportedTask("The model does not support the Classification API")
        texts, truncation = self._singles(texts, truncation)
        activation = self.info.activation
        if self.activated(use_activation):
            post = lambda logits: maths.activate(self._calibrated(logits), activation)  # noqa: E731
        else:
            post = self._calibrated
        return Job(self._encode(Task(TaskKind.CLASSIFY), lambda: texts, truncation, post=post,
                                add_special_tokens=add_special_tokens),
                   priority=priority, size=len(texts), **job_options)

    def token_classify(self, texts: Sequence, truncation: TruncationParams | None = None,
                       use_activation: bool | None = None, priority: int = 0, add_special_tokens: bool = True,
                       **job_options) -> Job:
        """A job whose result is Encoded: per text a [tokens, num_labels] matrix, vLLM's token_classify — the
        *ForTokenClassification head on every prompt token (special tokens included), then the head's
        activation per token (softmax over the labels; raw logits with use_activation=False)."""
        if self.info.task != "token_classify":
            raise UnsupportedTask("The model does not support token classification (pooling task "
                                  "'token_classify'): it needs a *ForTokenClassification model")
        texts, truncation = self._singles(texts, truncation)
        model, activation, activated = self.loaded.model, self.info.activation, self.activated(use_activation)

        def post(hidden: torch.Tensor) -> torch.Tensor:
            logits = self._calibrated(model.token_logits(hidden))
            return maths.activate(logits, activation) if activated else logits

        # The engine computes the final token states (TOKEN_EMBED), the head runs here on each prompt's.
        plan = self._encode(Task(TaskKind.TOKEN_EMBED), lambda: texts, truncation, post=post,
                            add_special_tokens=add_special_tokens)
        return Job(plan, priority=priority, size=len(texts), **job_options)

    def _encode(self, task: Task, build, truncation: TruncationParams, post=None,
                add_special_tokens: bool = True) -> Plan:
        """`build()` gives the inputs, on the model thread: texts (tokenised here), token id lists, or chat
        conversations (ChatInput, rendered here with the tokenizer's chat template into token ids)."""
        inputs = build()
        if any(isinstance(i, ChatInput) for i in inputs):
            with self.builder.lock:  # the tokenizer is shared by every model thread
                inputs = [i.token_ids(self.tokenizer) if isinstance(i, ChatInput) else i for i in inputs]
        if all(isinstance(i, str) or is_multimodal(i) for i in inputs):
            prompts = self._single_prompts(inputs, truncation, is_query=False, add_special_tokens=add_special_tokens)
        else:
            prompts = self.builder.from_ids([self._token_list(i, "input") for i in inputs], truncation)
        outputs = yield Step(task, prompts)
        return Encoded([post(o) for o in outputs] if post is not None else list(outputs), prompts,
                       list(outputs.cached_tokens))

    # -- tokenizer ---------------------------------------------------------------------------------------
    def tokenize(self, text: str, add_special_tokens: bool = True, priority: int = 0) -> Job:
        """A job whose result is the token ids of `text` (run on a model thread, like all tokenising)."""
        def ids() -> list[int]:
            return list(self.builder.tokenize(text, add_special_tokens=add_special_tokens)["input_ids"])

        return Job(no_step(ids), priority=priority)

    # -- generative scoring (SPEC §5.5) ----------------------------------------------------------------
    def _token_list(self, ids, field_name: str) -> list[int]:
        vocab = self.loaded.model.vocab_size
        if not all(isinstance(t, int) and not isinstance(t, bool) and 0 <= t < vocab for t in ids):
            raise ValidationError(f"{field_name} token ids must be integers in [0, {vocab})", param=field_name)
        return list(ids)

    def generative(self, query, items, label_token_ids, apply_softmax: bool = True, item_first: bool = False,
                   add_special_tokens: bool = True, priority: int = 0, **job_options) -> Job:
        """A job whose result is a GenerativeResult: P(label_token_ids[0]) after each query+item prompt."""
        if self.info.task != "generate":
            raise UnsupportedTask("The model does not support Generative Scoring API")
        vocab = self.loaded.model.vocab_size
        if label_token_ids is None:
            raise ValidationError("label_token_ids is required", param="label_token_ids")
        for token in label_token_ids:
            if not isinstance(token, int) or isinstance(token, bool) or not 0 <= token < vocab:
                raise ValidationError(
                    f"label_token_id {token} is out of vocabulary range [0, {vocab}). Please provide valid token IDs.")
        if not label_token_ids:
            raise ValidationError("label_token_ids must contain at least one token ID.")
        if not items:
            raise ValidationError("items must contain at least one item.")
        labels = tuple(dict.fromkeys(label_token_ids))  # duplicates collapse, first label stays first
        if len(labels) > MAX_LABELS:
            raise ValidationError(f"At most {MAX_LABELS} label_token_ids are supported, got {len(labels)}.")
        if is_multimodal(query) or any(is_multimodal(i) for i in items):
            refuse_multimodal([query, *items], self.info.architecture, self.info.multimodal)
            task = Task(TaskKind.NEXT_TOKEN, labels, full_vocab_log_softmax=not apply_softmax)
            return Job(self._generative_media(task, query, list(items), apply_softmax, item_first, add_special_tokens),
                       priority=priority, size=len(items), **job_options)
        strings = [isinstance(i, str) for i in items]
        if any(strings) and not all(strings):
            raise ValidationError("items must be all strings or all token id lists, not a mix.", param="items")
        q_ids = None if isinstance(query, str) else self._token_list(query, "query")
        item_ids = None if all(strings) else [self._token_list(i, "items") for i in items]
        task = Task(TaskKind.NEXT_TOKEN, labels, full_vocab_log_softmax=not apply_softmax)
        plan = self._generative(task, query, q_ids, list(items), item_ids, apply_softmax, item_first, add_special_tokens)
        return Job(plan, priority=priority, size=len(items), **job_options)

    def _generative(self, task: Task, query, q_ids, items, item_ids, apply_softmax: bool, item_first: bool,
                    add_special_tokens: bool) -> Plan:
        whole = TruncationParams()  # prompts keep their first tokens: texts are bounded from the start
        if q_ids is None:
            query = self.builder.bounded([query], whole)[0]
            q_ids = self.builder.tokenize(query, add_special_tokens=add_special_tokens)["input_ids"]
        if item_ids is None:
            item_ids = self.builder.tokenize(self.builder.bounded(items, whole), add_special_tokens=False)["input_ids"]
        keep = self.max_model_len - 1  # room for the one generated token; longer prompts keep their start
        prompts = [Prompt(tuple(((i + q_ids) if item_first else (q_ids + i))[:keep])) for i in item_ids]
        if any(len(p) == 0 for p in prompts):
            raise ValidationError("A generative scoring prompt is empty: give a query or non-empty items.")
        return (yield from self._generative_run(task, prompts, apply_softmax))

    def _generative_media(self, task: Task, query, items, apply_softmax: bool, item_first: bool,
                          add_special_tokens: bool) -> Plan:
        """Prompts with images built in the plan, so the image processor runs on a model thread (as tokenising
        does for text), never on the caller's thread: the server calls `generative` on its event loop."""
        vl = self.loaded.media_inputs.prompts_for(self.template, self.builder.special_tokens)
        prompts = vl.generative(query, items, item_first, add_special_tokens)
        return (yield from self._generative_run(task, prompts, apply_softmax))

    def _generative_run(self, task: Task, prompts: list[Prompt], apply_softmax: bool) -> Plan:
        values = yield Step(task, prompts)
        scores = [float(maths.label_probabilities(v, apply_softmax)[0]) for v in values]
        return GenerativeResult(scores, sum(len(p) for p in prompts), [list(p.input_ids) for p in prompts],
                                list(values.cached_tokens))
