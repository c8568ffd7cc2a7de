"""The one table of the POST API: path → request model → handler, and which models serve it.

server/app.py registers these routes (with their guards: API key and JSON body), /invocations dispatches to
them in the order vLLM's SageMaker entry point tries its schemas, and `scorekit run-batch` accepts the URLs
marked `batch`. A route is added here once and appears in all three.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from typing import Any, Awaitable, Callable

from fastapi import Request
from pydantic import BaseModel

from scorekit.models.model_info import ModelInfo
from scorekit.server import examples
from scorekit.server.protocol import (
    ClassificationRequest,
    ClassificationResponse,
    CohereEmbedRequest,
    CohereEmbedResponse,
    DetokenizeRequest,
    DetokenizeResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    GenerativeScoringRequest,
    PoolingRequest,
    PoolingResponse,
    RerankRequest,
    RerankResponse,
    ScoreRequest,
    ScoreResponse,
    TEIEmbedRequest,
    TokenizeRequest,
    TokenizeResponse,
)
from scorekit.server.routes_embed import do_classify, do_cohere_embed, do_embeddings, do_pooling
from scorekit.server.routes_misc import do_detokenize, do_tokenize
from scorekit.server.routes_score import _rerank_json, do_generative, do_rerank, do_score
from scorekit.server.routes_tei import do_tei_embed, do_tei_rerank

log = logging.getLogger("scorekit.server")

Handler = Callable[[Any, Any, Request], Awaitable[Any]]  # (ServerState, validated body, request) -> response


def always(_: ModelInfo) -> bool:
    return True


def scores(info: ModelInfo) -> bool:
    return info.score_type is not None


def generates(info: ModelInfo) -> bool:
    return info.task == "generate"


def pools(info: ModelInfo) -> bool:
    return info.task != "generate"


def embeds(info: ModelInfo) -> bool:
    return info.task == "embed"


def classifies(info: ModelInfo) -> bool:
    return info.task == "classify"


@dataclass(frozen=True)
class Route:
    path: str
    body: type[BaseModel]
    handler: Handler
    response_model: type[BaseModel] | None
    summary: str
    description: str = ""
    examples: dict | None = None
    tag: str = "scoring"
    serves: Callable[[ModelInfo], bool] = always  # registered only for models that serve it (as in vLLM)
    invocation_order: int | None = None  # /invocations tries routes in this order (None: never)
    batch: bool = False  # `scorekit run-batch` accepts this URL
    warning: str | None = None  # logged on every call (deprecated paths)

    async def __call__(self, state, body, request: Request):
        if self.warning:
            log.warning(self.warning)
        return await self.handler(state, body, request)


async def _rerank(state, req, request, api_version: str = "1"):
    if req.texts is not None:  # Hugging Face TEI's body, answered in TEI's shape
        state.check_model(req.model)
        return await do_tei_rerank(state, req, request)
    return _rerank_json(await do_rerank(state, req, request, api_version=api_version))


_RERANK_DOC = ("Documents sorted by relevance_score (descending), cut to top_n (0 = all). Jina/vLLM body plus "
               "Cohere's `meta`; `return_documents: false` leaves out `document`. A TEI body (`texts`, `raw_scores`, "
               "`return_text`, `truncate`) is answered in TEI's shape: a list of {index, score, text}.")
_SCORE_DOC = ("One score per pair, in pair order. Accepts queries/documents, queries/items, data_1/data_2 or "
              "text_1/text_2; pairs 1:1, 1:N or N:N.")

ROUTES: tuple[Route, ...] = (
    Route("/score", ScoreRequest, do_score, ScoreResponse, "Score query/document pairs", _SCORE_DOC,
          examples.SCORE, serves=scores, invocation_order=5, batch=True),
    Route("/v1/score", ScoreRequest, do_score, ScoreResponse, "Score query/document pairs (deprecated path)",
          "Same as /score.", examples.SCORE, serves=scores, batch=True,
          warning="/v1/score has moved to /score; this path will be removed in a future release."),
    Route("/rerank", RerankRequest, _rerank, RerankResponse, "Rerank documents for a query", _RERANK_DOC,
          examples.RERANK, serves=scores, invocation_order=4, batch=True),
    Route("/v1/rerank", RerankRequest, _rerank, RerankResponse, "Rerank (Jina / Cohere v1 path)", _RERANK_DOC,
          examples.RERANK, serves=scores, batch=True,
          warning="/v1/rerank is located at /rerank; /v1/rerank conforms to the JinaAI rerank API."),
    Route("/v2/rerank", RerankRequest, partial(_rerank, api_version="2"), RerankResponse, "Rerank (Cohere v2 path)",
          _RERANK_DOC, examples.RERANK, serves=scores, batch=True),
    Route("/generative_scoring", GenerativeScoringRequest, do_generative, ScoreResponse,
          "Score items by next-token label probability",
          "For each item, P(label_token_ids[0]) as the next token after query+item (or item+query with item_first), "
          "renormalised over the labels when apply_softmax.", examples.GENERATIVE, serves=generates,
          invocation_order=1, batch=True),
    Route("/v1/embeddings", EmbeddingRequest, do_embeddings, EmbeddingResponse, "Embed texts (OpenAI API)",
          "OpenAI embeddings: `encoding_format` float or base64 (float32 little-endian). `dimensions` other than "
          "the model's size is rejected.", examples.EMBEDDINGS, tag="embeddings", serves=embeds,
          invocation_order=2, batch=True),
    Route("/v2/embed", CohereEmbedRequest, do_cohere_embed, CohereEmbedResponse, "Embed texts (Cohere v2 API)",
          "Cohere embed: `texts`, `embedding_types` float/base64/binary/ubinary, `truncate` NONE/START/END.",
          examples.COHERE_EMBED, tag="embeddings", serves=embeds),
    Route("/embed", TEIEmbedRequest, do_tei_embed, None, "Embed texts (Hugging Face TEI API)",
          "TEI's /embed: `inputs` (text, texts or token ids), `normalize`, `truncate`, `truncation_direction`; "
          "answers a list of vectors.", examples.TEI_EMBED, tag="embeddings", serves=embeds),
    Route("/classify", ClassificationRequest, do_classify, ClassificationResponse, "Classify texts",
          "Class probabilities per text, with the label of the most likely class.", examples.CLASSIFY,
          tag="classification", serves=classifies, invocation_order=3),
    Route("/pooling", PoolingRequest, do_pooling, PoolingResponse, "Raw pooling output",
          "`task` embed (vector), token_embed (vector per token), classify (probabilities) or token_classify "
          "(probabilities per token); defaults to the model's task.", examples.POOLING, tag="embeddings", serves=pools, invocation_order=6),
    Route("/tokenize", TokenizeRequest, do_tokenize, TokenizeResponse, "Tokenise a prompt or chat messages",
          "`prompt` (with `add_special_tokens`, default true) or `messages` (chat template).", examples.TOKENIZE,
          tag="tokenizer"),
    Route("/detokenize", DetokenizeRequest, do_detokenize, DetokenizeResponse, "Turn token ids back into text",
          examples=examples.DETOKENIZE, tag="tokenizer"),
)


def served_routes(info: ModelInfo) -> list[Route]:
    return [route for route in ROUTES if route.serves(info)]


def invocation_routes(info: ModelInfo) -> list[Route]:
    chosen = [route for route in served_routes(info) if route.invocation_order is not None]
    return sorted(chosen, key=lambda route: route.invocation_order)


def batch_urls() -> tuple[str, ...]:
    return tuple(route.path for route in ROUTES if route.batch)
