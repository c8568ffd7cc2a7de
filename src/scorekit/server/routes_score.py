"""The handlers of /score, /v1/score, /rerank, /v1/rerank, /v2/rerank and /generative_scoring (SPEC §1–§4).

Each checks the request, builds the job (scoring/scorer.py), awaits it through `state.run`, and shapes the answer;
server/route_table.py says which path runs which handler."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from scorekit.errors import ValidationError
from scorekit.scoring.chunking import ChunkParams
from scorekit.scoring.scorer import ScoreParams, rank
from scorekit.scoring.truncation import TruncationParams
from scorekit.server.deps import base_request_id
from scorekit.server.media_inputs import check_mm_processor_kwargs, resolve_sides
from scorekit.server.rank_fields import ranked_text
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
    SCORE_SPELLINGS,
    ScoreCommon,
    ScoreData,
    ScoreRequest,
    ScoreResponse,
    Usage,
)
from scorekit.scoring.templates import check_template_kwargs
from scorekit.server.state import ServerState, check_cache_salt

log = logging.getLogger("scorekit.server")


def _plain(item: Any) -> Any:
    """Request models → the plain values the Scorer takes (str, or {"content": [...]})."""
    if isinstance(item, MultiModalInput):
        return item.model_dump()
    if isinstance(item, list):
        return [_plain(i) for i in item]
    return item


def _document(document: Any, rank_fields: list[str] | None, index: int) -> Any:
    """A rerank document → what the Scorer takes: an object is scored as the text of its ranked fields."""
    if isinstance(document, CohereDocument):
        return ranked_text(document.model_dump(exclude_unset=True), rank_fields, index)
    return _plain(document)


def _count(side: Any) -> int:
    return len(side) if isinstance(side, list) else 1


def score_params(state: ServerState, req: ScoreCommon) -> ScoreParams:
    check_mm_processor_kwargs(state, req.mm_processor_kwargs)  # {} and null change nothing, as in vLLM
    check_cache_salt(req.cache_salt)
    check_template_kwargs(req.chat_template_kwargs)
    kwargs = dict(req.chat_template_kwargs or {})
    if req.instruction is not None:
        kwargs.setdefault("instruction", req.instruction)
    truncation = TruncationParams(req.truncate_prompt_tokens, req.truncation_side, req.padding,
                                  req.max_tokens_per_query, req.max_tokens_per_doc)
    chunks = req.max_chunks_per_doc or state.config.max_chunks_per_doc
    return ScoreParams(truncation, req.use_activation, kwargs or None, priority=state.priority(req.priority),
                       chunking=ChunkParams(chunks, req.chunk_overlap_tokens, req.chunk_aggregation))


async def do_score(state: ServerState, req: ScoreRequest, request: Request) -> ScoreResponse:
    state.check_model(req.model)
    side1, side2 = req.sides()
    params = score_params(state, req)
    state.check_inputs(_count(side1), "queries")
    state.check_inputs(_count(side2), "documents")
    # Images fetched and decoded (off the event loop) before the job exists: the engine sees decoded images only.
    names = next(pair for pair in SCORE_SPELLINGS if getattr(req, pair[0]) is side1 and getattr(req, pair[1]) is side2)
    side1, side2 = await resolve_sides(state, [(names[0], _plain(side1)), (names[1], _plain(side2))],
                                       req.mm_processor_kwargs)
    result = await state.run(state.scorer().score(side1, side2, params), request)
    state.count_tokens("score", result.prompt_tokens)
    return ScoreResponse(
        id=f"score-{base_request_id(request, req.request_id)}",
        model=state.model_name,
        data=[ScoreData(index=i, score=s) for i, s in enumerate(result.scores)],
        usage=Usage(prompt_tokens=result.prompt_tokens, total_tokens=result.prompt_tokens),
    )


def _chunk_fields(result, index: int) -> dict[str, Any]:
    """With chunking: how many windows of the document were scored, the character span of the deciding one,
    and (only when true) that max_chunks_per_doc left part of the document unscored."""
    if result.chunks is None:
        return {}
    start, end = result.best_chunk[index]
    fields = {"chunks": result.chunks[index], "best_chunk": {"start": start, "end": end}}
    if result.chunks_truncated[index]:
        fields["chunks_truncated"] = True
    return fields


def _echo(document: Any) -> RerankDocument:
    """vLLM's {text, multi_modal}; a Cohere document object comes back with exactly the fields it was sent with
    (plus vLLM's `multi_modal: null`). `_rerank_json` writes the fields set here and no others."""
    if isinstance(document, MultiModalInput):
        return RerankDocument(text=None, multi_modal=document.content)
    if isinstance(document, CohereDocument):  # unvalidated: the fields are the client's, any JSON they sent
        return RerankDocument.model_construct(**{"multi_modal": None, **document.model_dump(exclude_unset=True)})
    return RerankDocument(text=document, multi_modal=None)


async def do_rerank(state: ServerState, req: RerankRequest, request: Request, api_version: str = "1") -> RerankResponse:
    state.check_model(req.model)
    documents = req.documents if isinstance(req.documents, list) else [req.documents]
    params = score_params(state, req)
    state.check_inputs(len(documents), "documents")
    texts = [_document(d, req.rank_fields, i) for i, d in enumerate(documents)]
    query, texts = await resolve_sides(state, [("query", _plain(req.query)), ("documents", texts)],
                                       req.mm_processor_kwargs)
    result = await state.run(state.scorer().score(query, texts, params), request)
    state.count_tokens("rerank", result.prompt_tokens)
    ranked = rank(documents, result.scores, req.top_n)
    return RerankResponse(
        id=f"score-{base_request_id(request, req.request_id)}",  # vLLM's rerank ids share the score- prefix
        model=state.model_name,
        usage=RerankUsage(prompt_tokens=result.prompt_tokens, total_tokens=result.prompt_tokens),
        results=[RerankResult(index=r.index, relevance_score=r.relevance_score,
                              document=_echo(r.document) if req.return_documents else None,
                              **_chunk_fields(result, r.index)) for r in ranked],
        meta=CohereMeta(api_version=CohereApiVersion(version=api_version),
                        billed_units=CohereBilledUnits(search_units=1)),
    )


async def do_generative(state: ServerState, req: GenerativeScoringRequest, request: Request) -> ScoreResponse:
    state.check_model(req.model, with_aliases=True)
    check_cache_salt(req.cache_salt)
    state.check_inputs(len(req.items), "items")
    check_mm_processor_kwargs(state, req.mm_processor_kwargs)
    query, items = await resolve_sides(state, [("query", _plain(req.query)), ("items", _plain(list(req.items)))],
                                       req.mm_processor_kwargs)
    job = state.scorer().generative(query, items, list(req.label_token_ids),
                                    apply_softmax=req.apply_softmax, item_first=req.item_first,
                                    add_special_tokens=req.add_special_tokens, priority=state.priority(req.priority))
    result = await state.run(job, request)
    scores, prompt_tokens = result.scores, result.prompt_tokens
    state.count_tokens("generative_scoring", prompt_tokens)
    completion = len(scores)
    return ScoreResponse(
        id=f"generative-scoring-{base_request_id(request, req.request_id)}",
        model=state.model_name,
        data=[ScoreData(index=i, score=s) for i, s in enumerate(scores)],
        usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=completion, total_tokens=prompt_tokens + completion),
    )


def _rerank_json(response: RerankResponse):
    """`document` is omitted (not null) when not returned: strict Cohere clients choke on null documents."""
    data = response.model_dump()
    data["meta"] = response.meta.model_dump(exclude_none=True)
    for result, model in zip(data["results"], response.results):
        if model.document is None:
            del result["document"]
        else:
            result["document"] = model.document.model_dump(exclude_unset=True)
    return JSONResponse(data)
