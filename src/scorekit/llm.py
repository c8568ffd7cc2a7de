"""The offline API, mirroring `vllm.LLM` for scoring: score, rerank, embed, classify, generative_score.

    from scorekit import LLM
    llm = LLM()                                   # the embedded all-MiniLM-L6-v2 bi-encoder
    [o.outputs.score for o in llm.score("capital of France?", ["Paris is...", "Bananas..."])]

Every method builds a job (scoring/scorer.py), submits it through the engine's one door and waits for it: the
same path the HTTP server takes, which awaits the job instead. Constructing an LLM changes no process-wide
setting (allocator, thread counts, matmul backend): `scorekit.runtime` applies those when asked.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from typing import Any, Callable, Sequence

from tqdm.auto import tqdm

from scorekit.config import EngineConfig, ModelConfig, split_kwargs
from scorekit.engine.job import Job
from scorekit.engine.runner import Runner
from scorekit.media.content import Content, with_options
from scorekit.media.policy import MediaConfig, limit_mm_per_prompt
from scorekit.media.resolve import resolve_inputs
from scorekit.models.loader import load_model
from scorekit.outputs import (
    ClassificationOutput,
    EmbeddingOutput,
    PoolingOutput,
    PoolingParams,
    RequestOutput,
    RerankOutput,
    ScoringOutput,
)
from scorekit.errors import UnsupportedTask
from scorekit.scoring.chunking import DEFAULT_OVERLAP_TOKENS, ChunkParams
from scorekit.scoring.prompts import pad_token_id
from scorekit.scoring.scorer import ScoreParams, Scorer, rank
from scorekit.scoring.templates import load_template
from scorekit.scoring.truncation import TruncationParams
from scorekit.scoring.vl_inputs import processor_options

log = logging.getLogger(__name__)

# vLLM engine options that change no score here (GPU memory, CUDA graphs, logging): accepted for drop-in code,
# and said so in the log. Any other unknown keyword is a TypeError, never silently ignored.
_NO_EFFECT_OPTIONS = {"gpu_memory_utilization", "enforce_eager", "swap_space", "disable_log_stats", "seed",
                      "max_seq_len_to_capture", "disable_custom_all_reduce"}

_TOKENIZATION_KEYS = {"truncate_prompt_tokens", "truncation_side", "max_length", "truncation", "padding", "add_special_tokens"}


def _truncation(tokenization_kwargs: dict | None, pooling: PoolingParams, truncate_prompt_tokens: int | None) -> TruncationParams:
    kwargs = dict(tokenization_kwargs or {})
    unknown = set(kwargs) - _TOKENIZATION_KEYS
    if unknown:
        raise ValueError(f"Unsupported tokenization_kwargs: {sorted(unknown)}")
    if kwargs.get("add_special_tokens") is False:
        raise ValueError("tokenization_kwargs add_special_tokens=False is not supported for scoring")
    k = kwargs.get("truncate_prompt_tokens", truncate_prompt_tokens)
    if k is None:
        k = pooling.truncate_prompt_tokens
    if k is None and kwargs.get("truncation") and kwargs.get("max_length"):
        k = int(kwargs["max_length"])
    extra = pooling.extra_kwargs or {}
    return TruncationParams(
        truncate_prompt_tokens=k,
        truncation_side=kwargs.get("truncation_side"),
        padding=kwargs.get("padding"),
        max_tokens_per_query=int(extra.get("max_tokens_per_query", 0) or 0),
        max_tokens_per_doc=int(extra.get("max_tokens_per_doc", 0) or 0),
    )


class LLM:
    """`LLM(model, **options)`: options are the fields of ModelConfig and EngineConfig (scorekit/config.py),
    named as vLLM names them (`max_num_batched_tokens`, `hf_overrides`, ...)."""

    def __init__(self, model: str | None = None, **options: Any):
        if "limit_mm_per_prompt" in options:  # vLLM's spelling of the per-input image limit
            options["max_images_per_prompt"] = limit_mm_per_prompt(options.pop("limit_mm_per_prompt"))
        (model_options, engine_options, media_options), rest = split_kwargs(options, ModelConfig, EngineConfig,
                                                                            MediaConfig)
        no_effect = sorted(set(rest) & _NO_EFFECT_OPTIONS)
        unknown = sorted(set(rest) - _NO_EFFECT_OPTIONS)
        if unknown:
            raise TypeError(f"LLM() got options scorekit does not know: {', '.join(unknown)}")
        if no_effect:
            log.info("LLM(): vLLM options that change nothing in scorekit: %s", ", ".join(no_effect))
        self._setup(ModelConfig(model=model, **model_options), EngineConfig(**engine_options),
                    MediaConfig(**media_options))

    @classmethod
    def from_configs(cls, model: ModelConfig, engine: EngineConfig | None = None,
                     media: MediaConfig | None = None) -> "LLM":
        llm = cls.__new__(cls)
        llm._setup(model, engine or EngineConfig(), media)
        return llm

    def _setup(self, model: ModelConfig, engine: EngineConfig, media: MediaConfig | None = None) -> None:
        self.model_config = model
        # Where images may come from and how large they may be (media/policy.py): the server's flags or LLM's
        # keywords of the same names, for offline calls and the HTTP server alike.
        self.media_config = media or MediaConfig()
        self.loaded = load_model(model.model, runner=model.runner, task=model.task, hf_overrides=model.hf_overrides,
                                 max_model_len=model.max_model_len, dtype=model.dtype, device=model.device,
                                 quantization=model.quantization, convert=model.convert,
                                 pooler_config=model.pooler_config, trust_remote_code=model.trust_remote_code,
                                 revision=model.revision, download_dir=model.download_dir)
        self.template = load_template(model.chat_template) if model.chat_template else None
        self.engine = Runner(self.loaded.model, pad_token_id(self.loaded.tokenizer), engine)
        self._scorers: dict[str | None, Scorer] = {}
        self._ids = itertools.count()
        # The model's own mm_processor_kwargs, checked against its processor now: a bad key fails the load.
        processor_options(self.loaded.media_inputs, self.info.architecture, self.media_config.mm_processor_kwargs)
        if getattr(self.loaded.config, "is_original_qwen3_reranker", False) and self.template is None:
            log.warning("This is an original Qwen3 reranker served without a score template: rankings will be close "
                        "to random. Pass chat_template='qwen3_reranker' (server: --chat-template qwen3_reranker).")

    # -- helpers -------------------------------------------------------------------------------------------
    def scorer(self, chat_template: str | None = None) -> Scorer:
        """The Scorer for a template (the per-call `chat_template` overrides the constructor's)."""
        key = chat_template
        if key not in self._scorers:
            template = load_template(chat_template) if chat_template else self.template
            self._scorers[key] = Scorer(self.loaded, template)
        return self._scorers[key]

    def run(self, build: Callable[..., Job], use_tqdm: bool = False, desc: str = "scorekit") -> Any:
        """Build a job (a Scorer method with its arguments bound), submit it through the engine's door and wait
        for its result; with `use_tqdm`, a progress bar counts the prompts as they finish."""
        with tqdm(desc=desc, unit="seq", disable=not use_tqdm) as progress:
            job = build(on_progress=progress.update if use_tqdm else None)
            return self.engine.submit(job).result()

    def _resolved(self, side, mm_processor_kwargs: dict | None = None):
        """A side (one input or a list) with its `{"content": [...]}` inputs resolved to `Content` (images
        fetched and decoded under `media_config`: media/resolve.py), on a multimodal model only: a text-only
        model refuses them with vLLM's message, before any image is fetched (scoring/pairing.py). Every image
        carries the model's mm_processor_kwargs with the call's over them (checked first: a bad key raises)."""
        options = processor_options(self.loaded.media_inputs, self.info.architecture,
                                    self.media_config.mm_processor_kwargs, mm_processor_kwargs)
        if not self.info.multimodal:
            return side
        if isinstance(side, (dict, Content)):
            return with_options(resolve_inputs([side], self.media_config, offline=True), options)[0]
        if isinstance(side, (list, tuple)):
            return with_options(resolve_inputs(list(side), self.media_config, offline=True), options)
        return side

    def _request_id(self) -> str:
        return str(next(self._ids))

    def get_tokenizer(self):
        return self.loaded.tokenizer

    @property
    def info(self):
        return self.loaded.info

    # -- scoring -------------------------------------------------------------------------------------------
    def score(self, data_1, data_2, /, *, use_tqdm: bool = True, pooling_params: PoolingParams | None = None,
              tokenization_kwargs: dict | None = None, chat_template: str | None = None,
              truncate_prompt_tokens: int | None = None, lora_request: Any = None,
              max_chunks_per_doc: int = 1, chunk_overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
              chunk_aggregation: str = "max", mm_processor_kwargs: dict | None = None) -> list[RequestOutput]:
        """vLLM's `score`. scorekit's own: `max_chunks_per_doc` > 1 scores a long document as windows of what
        the model leaves after the query, aggregated by `chunk_aggregation` (scoring/chunking.py).
        `mm_processor_kwargs` (as in a vLLM prompt's): the image processor settings of this call's images."""
        return [output for output, _ in self._score(data_1, data_2, use_tqdm, pooling_params, tokenization_kwargs,
                                                     chat_template, truncate_prompt_tokens, lora_request,
                                                     ChunkParams(max_chunks_per_doc, chunk_overlap_tokens,
                                                                 chunk_aggregation), mm_processor_kwargs)]

    def _score(self, data_1, data_2, use_tqdm, pooling_params, tokenization_kwargs, chat_template,
               truncate_prompt_tokens, lora_request, chunking: ChunkParams, mm_processor_kwargs: dict | None = None):
        if self.info.task == "generate":
            raise ValueError("LLM.score() is only supported for pooling models. Try passing `--runner pooling` "
                             "(runner='pooling') to use the model as a pooling model.")
        if lora_request is not None:
            raise ValueError("lora_request: scorekit serves no LoRA adapters")
        pooling = pooling_params or PoolingParams()
        if pooling.task not in (None, self.info.task):
            raise ValueError(f"You cannot overwrite pooling_params.task={pooling.task!r}: this model's task is "
                             f"{self.info.task!r}.")
        template_kwargs = dict((pooling.extra_kwargs or {}).get("chat_template_kwargs") or {})
        params = ScoreParams(_truncation(tokenization_kwargs, pooling, truncate_prompt_tokens),
                             pooling.use_activation, template_kwargs, chunking=chunking)
        scorer = self.scorer(chat_template)
        data_1, data_2 = self._resolved(data_1, mm_processor_kwargs), self._resolved(data_2, mm_processor_kwargs)
        result = self.run(lambda **o: scorer.score(data_1, data_2, params, **o), use_tqdm, "scorekit score")
        chunks = result.chunks or [None] * len(result.scores)
        spans = result.best_chunk or [None] * len(result.scores)
        return [(RequestOutput(self._request_id(), ScoringOutput(s), ids, cached), (n, span))
                for s, ids, cached, n, span in zip(result.scores, result.prompt_token_ids, result.cached_tokens,
                                                   chunks, spans)]

    def rerank(self, query, documents: Sequence[Any], *, top_n: int = 0, use_tqdm: bool = True,
               pooling_params: PoolingParams | None = None, tokenization_kwargs: dict | None = None,
               chat_template: str | None = None, instruction: str | None = None, max_chunks_per_doc: int = 1,
               chunk_overlap_tokens: int = DEFAULT_OVERLAP_TOKENS, chunk_aggregation: str = "max",
               mm_processor_kwargs: dict | None = None) -> list[RerankOutput]:
        """Documents sorted by relevance (best first), each with its index in `documents`."""
        if isinstance(query, list):
            raise ValueError("rerank takes one query")
        pooling = pooling_params or PoolingParams()
        if instruction is not None:
            kwargs = dict(pooling.extra_kwargs or {})
            kwargs["chat_template_kwargs"] = {"instruction": instruction, **(kwargs.get("chat_template_kwargs") or {})}
            pooling = dataclasses.replace(pooling, extra_kwargs=kwargs)
        docs = list(documents) if not isinstance(documents, (str, dict, Content)) else [documents]
        chunking = ChunkParams(max_chunks_per_doc, chunk_overlap_tokens, chunk_aggregation)
        scored = self._score(query, docs, use_tqdm, pooling, tokenization_kwargs, chat_template, None, None, chunking,
                             mm_processor_kwargs)
        ranked = rank(docs, [o.outputs.score for o, _ in scored], top_n)
        return [RerankOutput(r.index, r.document, r.relevance_score, *scored[r.index][1],
                             num_cached_tokens=scored[r.index][0].num_cached_tokens) for r in ranked]

    def embed(self, prompts, *, use_tqdm: bool = True, pooling_params: PoolingParams | None = None,
              truncate_prompt_tokens: int | None = None, tokenization_kwargs: dict | None = None,
              mm_processor_kwargs: dict | None = None) -> list[RequestOutput]:
        pooling = pooling_params or PoolingParams()
        texts = [prompts] if isinstance(prompts, (str, dict, Content)) else list(prompts)
        texts = self._resolved(texts, mm_processor_kwargs)  # a multimodal model embeds images too
        truncation = _truncation(tokenization_kwargs, pooling, truncate_prompt_tokens)
        normalize = pooling.use_activation
        scorer = self.scorer()
        done = self.run(lambda **o: scorer.embed(texts, truncation, normalize=normalize, **o), use_tqdm, "scorekit embed")
        return [RequestOutput(self._request_id(), EmbeddingOutput(v.tolist()), list(p.input_ids), n)
                for v, p, n in zip(done.outputs, done.prompts, done.cached_tokens)]

    def classify(self, prompts, *, use_tqdm: bool = True, pooling_params: PoolingParams | None = None,
                 truncate_prompt_tokens: int | None = None, tokenization_kwargs: dict | None = None) -> list[RequestOutput]:
        pooling = pooling_params or PoolingParams()
        texts = [prompts] if isinstance(prompts, str) else list(prompts)
        truncation = _truncation(tokenization_kwargs, pooling, truncate_prompt_tokens)
        scorer = self.scorer()
        done = self.run(lambda **o: scorer.classify(texts, truncation, pooling.use_activation, **o), use_tqdm,
                        "scorekit classify")
        return [RequestOutput(self._request_id(), ClassificationOutput(p.tolist()), list(u.input_ids), n)
                for p, u, n in zip(done.outputs, done.prompts, done.cached_tokens)]

    def encode(self, prompts, pooling_params: PoolingParams | None = None, *, use_tqdm: bool = True,
               pooling_task: str | None = None, truncate_prompt_tokens: int | None = None,
               tokenization_kwargs: dict | None = None, lora_request: Any = None,
               mm_processor_kwargs: dict | None = None) -> list[RequestOutput]:
        """Raw pooling outputs, as vLLM's `encode`: `.outputs.data` is a tensor — a vector (`embed`), a vector per
        token (`token_embed`), class probabilities (`classify`) or per-token class probabilities [tokens,
        num_labels] (`token_classify`, *ForTokenClassification models). The default task is the model's own.
        On a multimodal model `{"content": [...]}` prompts hold images (ColPali/ColQwen2: token_embed of a page)."""
        if lora_request is not None:
            raise ValueError("lora_request: scorekit serves no LoRA adapters")
        pooling_task = pooling_task or self.info.task
        if pooling_task == "embed" and self.info.task == "token_embed":
            raise ValueError("Embedding API is not supported by this model. Try pooling_task='token_embed'.")
        if pooling_task not in ("embed", "token_embed", "classify", "token_classify"):
            raise UnsupportedTask(f"pooling_task {pooling_task!r} is not supported by this model; it serves "
                                  f"{self.info.task!r}")
        pooling = pooling_params or PoolingParams()
        texts = [prompts] if isinstance(prompts, (str, dict, Content)) else list(prompts)
        texts = self._resolved(texts, mm_processor_kwargs)
        truncation = _truncation(tokenization_kwargs, pooling, truncate_prompt_tokens)
        normalize = pooling.use_activation
        scorer = self.scorer()
        build = {
            "embed": lambda **o: scorer.embed(texts, truncation, normalize=normalize, **o),
            "token_embed": lambda **o: scorer.token_embed(texts, truncation, normalize=normalize, **o),
            "classify": lambda **o: scorer.classify(texts, truncation, pooling.use_activation, **o),
            "token_classify": lambda **o: scorer.token_classify(texts, truncation, pooling.use_activation, **o),
        }[pooling_task]
        done = self.run(build, use_tqdm, f"scorekit {pooling_task}")
        return [RequestOutput(self._request_id(), PoolingOutput(out), list(p.input_ids), n)
                for out, p, n in zip(done.outputs, done.prompts, done.cached_tokens)]

    def reward(self, prompts, pooling_params: PoolingParams | None = None, *, use_tqdm: bool = True,
               **kwargs: Any) -> list[RequestOutput]:
        """vLLM's `reward`: per-token scores of a reward model (pooling task `token_classify`)."""
        return self.encode(prompts, pooling_params, use_tqdm=use_tqdm, pooling_task="token_classify", **kwargs)

    def generative_score(self, query, items, label_token_ids: Sequence[int], *, apply_softmax: bool = True,
                         item_first: bool = False, add_special_tokens: bool = True,
                         use_tqdm: bool = True, mm_processor_kwargs: dict | None = None) -> list[RequestOutput]:
        """P(label_token_ids[0]) as the next token after query+item (SPEC §5.5), one output per item."""
        if isinstance(items, str):
            items = [items]
        # {"content": [...]} query/items resolved to Content on a multimodal model (Qwen-VL), as in score()
        query, items = self._resolved(query, mm_processor_kwargs), self._resolved(list(items), mm_processor_kwargs)
        scorer = self.scorer()
        done = self.run(lambda **o: scorer.generative(query, list(items), list(label_token_ids),
                                                      apply_softmax=apply_softmax, item_first=item_first,
                                                      add_special_tokens=add_special_tokens, **o),
                        use_tqdm, "scorekit generative")
        return [RequestOutput(self._request_id(), ScoringOutput(s), ids, n)
                for s, ids, n in zip(done.scores, done.prompt_token_ids, done.cached_tokens)]
