"""/score, /v1/score, /rerank, /v1/rerank, /v2/rerank and /generative_scoring (SPEC §1–§4)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import JSONResponse

from scorekit.errors import ValidationError
from scorekit.scoring.scorer import ScoreParams, rank
from scorekit.scoring.truncation import TruncationParams
from scorekit.server import examples
from scorekit.server.deps import base_request_id
from scorekit.server.protocol import (
    CohereApiVersion,
    CohereBilledUnits,
    CohereDocument,
    CohereMeta,
    GenerativeScoringRequest,
    MultiModalInput,
    RerankDocument,
    RerankRequest,
    RerankResponse,
    RerankResult,
    RerankUsage,
    ScoreCommon,
    ScoreData,
    ScoreRequest,
    ScoreResponse,
    Usage,
)
from scorekit.scoring.templates import check_template_kwargs
from scorekit.server.state import ServerState, check_cache_salt, get_state

log = logging.getLogger("scorekit.server")


def _plain(item: Any) -> Any:
    """Request models → the plain values the Scorer takes (str, or {"content": [...]})."""
    if isinstance(item, CohereDocument):
        return item.text
    if isinstance(item, MultiModalInput):
        return item.model_dump()
    if isinstance(item, list):
        return [_plain(i) for i in item]
    return item


def score_params(req: ScoreCommon) -> ScoreParams:
    if req.mm_processor_kwargs is not None:
        raise ValidationError("Per-request mm_processor_kwargs are disabled by default. Start the server with "
                              "--trust-request-mm-kwargs to allow them.", param="mm_processor_kwargs")
    check_cache_salt(req.cache_salt)
    check_template_kwargs(req.chat_template_kwargs)
    kwargs = dict(req.chat_template_kwargs or {})
    if req.instruction is not None:
        kwargs.setdefault("instruction", req.instruction)
    truncation = TruncationParams(req.truncate_prompt_tokens, req.truncation_side, req.padding,
                                  req.max_tokens_per_query, req.max_tokens_per_doc)
    return ScoreParams(truncation, req.use_activation, kwargs or None, priority=req.priority)


async def do_score(state: ServerState, req: ScoreRequest, request: Request) -> ScoreResponse:
    state.check_model(req.model)
    side1, side2 = req.sides()
    params = score_params(req)
    result = await state.run(state.scorer().score, _plain(side1), _plain(side2), params, request=request)
    state.count_tokens("score", result.prompt_tokens)
    return ScoreResponse(
        id=f"score-{base_request_id(request, req.request_id)}",
        model=state.model_name,
        data=[ScoreData(index=i, score=s) for i, s in enumerate(result.scores)],
        usage=Usage(prompt_tokens=result.prompt_tokens, total_tokens=result.prompt_tokens),
    )


def _echo(document: Any) -> RerankDocument:
    if isinstance(document, MultiModalInput):
        return RerankDocument(text=None, multi_modal=document.content)
    if isinstance(document, CohereDocument):
        return RerankDocument(text=document.text)
    return RerankDocument(text=document)


async def do_rerank(state: ServerState, req: RerankRequest, request: Request, api_version: str = "1") -> RerankResponse:
    state.check_model(req.model)
    documents = req.documents if isinstance(req.documents, list) else [req.documents]
    params = score_params(req)
    result = await state.run(state.scorer().score, _plain(req.query), _plain(documents), params, request=request)
    state.count_tokens("rerank", result.prompt_tokens)
    ranked = rank(documents, result.scores, req.top_n)
    return RerankResponse(
        id=f"score-{base_request_id(request, req.request_id)}",
        model=state.model_name,
        usage=RerankUsage(prompt_tokens=result.prompt_tokens, total_tokens=result.prompt_tokens),
        results=[RerankResult(index=r.index, relevance_score=r.relevance_score,
                              document=_echo(r.document) if req.return_documents else None) for r in ranked],
        meta=CohereMeta(api_version=CohereApiVersion(version=api_version),
                        billed_units=CohereBilledUnits(search_units=1)),
    )


async def do_generative(state: ServerState, req: GenerativeScoringRequest, request: Request) -> ScoreResponse:
    state.check_model(req.model, with_aliases=True)
    check_cache_salt(req.cache_salt)
    scores, prompt_tokens = await state.run(
        state.scorer().generative, req.query, list(req.items), list(req.label_token_ids),
        apply_softmax=req.apply_softmax, item_first=req.item_first, add_special_tokens=req.add_special_tokens,
        priority=req.priority, request=request)
    state.count_tokens("generative_scoring", prompt_tokens)
    completion = len(scores)
    return ScoreResponse(
        id=f"generative-scoring-{base_request_id(request, req.request_id)}",
        model=state.model_name,
        data=[ScoreData(index=i, score=s) for i, s in enumerate(scores)],
        usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=completion, total_tokens=prompt_tokens + completion),
    )


ScoreBody = Annotated[ScoreRequest, Body(openapi_examples=examples.SCORE)]
RerankBody = Annotated[RerankRequest, Body(openapi_examples=examples.RERANK)]
GenerativeBody = Annotated[GenerativeScoringRequest, Body(openapi_examples=examples.GENERATIVE)]


def score_router() -> APIRouter:
    router = APIRouter(tags=["scoring"])

    @router.post("/score", response_model=ScoreResponse, summary="Score query/document pairs",
                 description="One score per pair, in pair order. Accepts queries/documents, queries/items, "
                             "data_1/data_2 or text_1/text_2; pairs 1:1, 1:N or N:N.")
    async def score(body: ScoreBody, request: Request, state: ServerState = Depends(get_state)):
        return await do_score(state, body, request)

    @router.post("/v1/score", response_model=ScoreResponse, summary="Score query/document pairs (deprecated path)",
                 description="Same as /score.")
    async def score_v1(body: ScoreBody, request: Request, state: ServerState = Depends(get_state)):
        log.warning("/v1/score has moved to /score; this path will be removed in a future release.")
        return await do_score(state, body, request)

    rerank_doc = ("Documents sorted by relevance_score (descending), cut to top_n (0 = all). Jina/vLLM body plus "
                  "Cohere's `meta`; `return_documents: false` leaves out `document`.")

    @router.post("/rerank", response_model=RerankResponse,
                 summary="Rerank documents for a query", description=rerank_doc)
    async def rerank(body: RerankBody, request: Request, state: ServerState = Depends(get_state)):
        return _rerank_json(await do_rerank(state, body, request))

    @router.post("/v1/rerank", response_model=RerankResponse, summary="Rerank (Jina / Cohere v1 path)",
                 description=rerank_doc)
    async def rerank_v1(body: RerankBody, request: Request, state: ServerState = Depends(get_state)):
        log.warning("/v1/rerank is located at /rerank; /v1/rerank conforms to the JinaAI rerank API.")
        return _rerank_json(await do_rerank(state, body, request))

    @router.post("/v2/rerank", response_model=RerankResponse, summary="Rerank (Cohere v2 path)",
                 description=rerank_doc)
    async def rerank_v2(body: RerankBody, request: Request, state: ServerState = Depends(get_state)):
        return _rerank_json(await do_rerank(state, body, request, api_version="2"))

    return router


def _rerank_json(response: RerankResponse):
    """`document` is omitted (not null) when not returned: strict Cohere clients choke on null documents."""
    data = response.model_dump()
    data["meta"] = response.meta.model_dump(exclude_none=True)
    for result in data["results"]:
        if result["document"] is None:
            del result["document"]
    return JSONResponse(data)


def generative_router() -> APIRouter:
    router = APIRouter(tags=["scoring"])

    @router.post("/generative_scoring", response_model=ScoreResponse, summary="Score items by next-token label probability",
                 description="For each item, P(label_token_ids[0]) as the next token after query+item (or item+query "
                             "with item_first), renormalised over the labels when apply_softmax.")
    async def generative_scoring(body: GenerativeBody, request: Request, state: ServerState = Depends(get_state)):
        return await do_generative(state, body, request)

    return router
