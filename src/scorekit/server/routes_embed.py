"""/v1/embeddings (OpenAI), /v2/embed (Cohere), /classify and /pooling (SPEC §12)."""

from __future__ import annotations

import base64
from typing import Annotated, Any

import numpy as np
import torch
from fastapi import APIRouter, Body, Depends, Request

from scorekit.errors import ValidationError
from scorekit.scoring.truncation import TruncationParams
from scorekit.server import examples
from scorekit.server.deps import base_request_id
from scorekit.server.protocol import (
    ClassificationData,
    ClassificationRequest,
    ClassificationResponse,
    CohereApiVersion,
    CohereBilledUnits,
    CohereEmbedRequest,
    CohereEmbedResponse,
    CohereMeta,
    EmbeddingRequest,
    EmbeddingResponse,
    PoolingData,
    PoolingRequest,
    PoolingResponse,
    Usage,
    now,
)
from scorekit.server.responses import ORJSONBody
from scorekit.server.state import ServerState, get_state


def texts_of(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if value and all(isinstance(v, str) for v in value):
        return list(value)
    if not value:
        raise ValidationError("input must not be empty", param="input")
    raise ValidationError("Token id inputs are not supported by scorekit yet; send text.", param="input")


def b64(vector: list[float] | list[list[float]]) -> str:
    """Little-endian float32 bytes, base64 — what the OpenAI SDK decodes with numpy."""
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()


def _check_dimensions(requested: int | None, actual: int, model: str) -> None:
    if requested is not None and requested != actual:
        raise ValidationError(f'Model "{model}" does not support matryoshka representation, changing output '
                              f"dimensions will lead to poor results.", param="dimensions")


def _truncation(k: int | None, side: str | None = None) -> TruncationParams:
    return TruncationParams(truncate_prompt_tokens=k, truncation_side=side)


async def _embed(state: ServerState, request: Request, texts: list[str], truncation: TruncationParams,
                 normalize: bool) -> tuple[np.ndarray, int]:
    """Vectors [n, dim] float32 and the prompt tokens. The texts go straight to the engine, which tokenises
    them on its model thread and normalises each batch at once: no worker-thread round trip per request. With
    the weight layout of models/encoder.py, this took bench/serve_load.py at concurrency 8 from 168 to 203-217
    req/s (server CPU per request 8.9 -> 6.9-7.3 ms) on a quiet machine."""
    item = state.scorer().submit_embed(texts, truncation, normalize=normalize)
    vectors = await state.wait(item, request)
    return torch.stack(vectors).numpy(), sum(len(p) for p in item.prompts)


async def do_embeddings(state: ServerState, req: EmbeddingRequest, request: Request) -> ORJSONBody:
    """An EmbeddingResponse, written as JSON directly: the hot route of embedding servers."""
    state.check_model(req.model)
    texts = texts_of(req.input)
    vectors, tokens = await _embed(state, request, texts, _truncation(req.truncate_prompt_tokens),
                                   req.use_activation is not False)
    _check_dimensions(req.dimensions, vectors.shape[1], req.model or state.model_name)
    state.count_tokens("embeddings", tokens)
    as_base64 = req.encoding_format == "base64"
    return ORJSONBody({
        "id": f"embd-{base_request_id(request, req.request_id)}",
        "object": "list",
        "created": now(),
        "model": state.model_name,
        # float32 rows go to orjson as they are (ORJSONBody serialises numpy arrays)
        "data": [{"index": i, "object": "embedding", "embedding": b64(v) if as_base64 else v}
                 for i, v in enumerate(vectors)],
        "usage": Usage(prompt_tokens=tokens, total_tokens=tokens).model_dump(),
    })


def _cohere_types(vectors: list[list[float]], types: list[str]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for kind in types:
        if kind == "float":
            out["float"] = vectors
        elif kind == "base64":
            out["base64"] = [b64(v) for v in vectors]
        elif kind in ("binary", "ubinary"):
            packed = [np.packbits(np.asarray(v) > 0).astype(np.int16) for v in vectors]
            out[kind] = [(p - 128 if kind == "binary" else p).tolist() for p in packed]
        else:
            raise ValidationError(f"embedding_types {kind!r} is not supported; use float, base64, binary or ubinary.",
                                  param="embedding_types")
    return out


async def do_cohere_embed(state: ServerState, req: CohereEmbedRequest, request: Request) -> CohereEmbedResponse:
    state.check_model(req.model)
    given = [name for name in ("texts", "images", "inputs") if getattr(req, name)]
    if len(given) != 1:
        raise ValidationError("Exactly one of texts, images or inputs must be given and non-empty.")
    if given[0] != "texts":
        raise ValidationError(f"`{given[0]}` is not supported: this model embeds text only; use `texts`.",
                              param=given[0])
    limit = req.max_tokens if req.max_tokens else (None if req.truncate == "NONE" else -1)
    side = {"START": "left", "END": "right"}.get(req.truncate or "END") if limit is not None else None
    vectors, tokens = await _embed(state, request, list(req.texts), _truncation(limit, side), True)
    _check_dimensions(req.output_dimension, vectors.shape[1], req.model or state.model_name)
    state.count_tokens("embed", tokens)
    return CohereEmbedResponse(
        id=f"embed-{base_request_id(request)}",
        embeddings=_cohere_types(vectors.tolist(), list(req.embedding_types or ["float"])),
        texts=list(req.texts),
        meta=CohereMeta(api_version=CohereApiVersion(version="2"), billed_units=CohereBilledUnits(input_tokens=tokens)),
    )


def _classify_lists(state: ServerState, texts: list[str], truncation: TruncationParams, use_activation):
    probs, prompts = state.scorer().classify(texts, truncation, use_activation)
    return [p.float().tolist() for p in probs], sum(len(p) for p in prompts)


async def do_classify(state: ServerState, req: ClassificationRequest, request: Request) -> ClassificationResponse:
    state.check_model(req.model)
    texts = texts_of(req.input)
    probs, tokens = await state.run(_classify_lists, state, texts, _truncation(req.truncate_prompt_tokens),
                                    req.use_activation, request=request)
    id2label = getattr(state.llm.loaded.config, "id2label", None) or {}
    state.count_tokens("classify", tokens)
    return ClassificationResponse(
        id=f"classify-{base_request_id(request, req.request_id)}",
        model=state.model_name,
        data=[ClassificationData(index=i, label=id2label.get(int(np.argmax(p))), probs=p, num_classes=len(p))
              for i, p in enumerate(probs)],
        usage=Usage(prompt_tokens=tokens, total_tokens=tokens),
    )


def supported_pooling_tasks(task: str) -> list[str]:
    return {"embed": ["embed", "token_embed"], "classify": ["classify"], "token_embed": ["token_embed"]}.get(task, [])


def _pool(state: ServerState, task: str, texts: list[str], truncation: TruncationParams, use_activation):
    scorer = state.scorer()
    if task == "embed":
        out, prompts = scorer.embed(texts, truncation, normalize=use_activation is not False)
    elif task == "token_embed":
        out, prompts = scorer.token_embed(texts, truncation, normalize=use_activation is not False)
    else:
        out, prompts = scorer.classify(texts, truncation, use_activation)
    return [o.float().tolist() for o in out], sum(len(p) for p in prompts)


async def do_pooling(state: ServerState, req: PoolingRequest, request: Request) -> PoolingResponse:
    state.check_model(req.model)
    if "normalize" in (req.model_extra or {}):
        raise ValidationError("Parameter `normalize` was removed; use `use_activation` instead.", param="normalize")
    supported = supported_pooling_tasks(state.info.task)
    task = req.task or (supported[0] if supported else state.info.task)
    if task == "score":
        raise ValidationError("`score` task was removed; use `classify` instead.", param="task")
    if task == "plugin":
        raise ValidationError("No IOProcessor plugin installed.", param="task")
    if task == "token_classify" and "classify" in supported:
        raise ValidationError("Unsupported task: 'token_classify'. Try switching the model's pooling_task via "
                              "--task token_classify.", param="task")
    if task not in supported:
        raise ValidationError(f"Unsupported task: {task!r} Supported tasks: {supported}", param="task")
    texts = texts_of(req.input)
    outputs, tokens = await state.run(_pool, state, task, texts, _truncation(req.truncate_prompt_tokens),
                                      req.use_activation, request=request)
    state.count_tokens("pooling", tokens)
    return PoolingResponse(
        id=f"pooling-{base_request_id(request, req.request_id)}",
        model=state.model_name,
        data=[PoolingData(index=i, data=b64(o) if req.encoding_format == "base64" else o)
              for i, o in enumerate(outputs)],
        usage=Usage(prompt_tokens=tokens, total_tokens=tokens),
    )


def embed_router() -> APIRouter:
    router = APIRouter(tags=["embeddings"])

    @router.post("/v1/embeddings", response_model=EmbeddingResponse, summary="Embed texts (OpenAI API)",
                 description="OpenAI embeddings: `encoding_format` float or base64 (float32 little-endian). "
                             "`dimensions` other than the model's size is rejected.")
    async def embeddings(body: Annotated[EmbeddingRequest, Body(openapi_examples=examples.EMBEDDINGS)],
                         request: Request, state: ServerState = Depends(get_state)):
        return await do_embeddings(state, body, request)

    @router.post("/v2/embed", response_model=CohereEmbedResponse, summary="Embed texts (Cohere v2 API)",
                 description="Cohere embed: `texts`, `embedding_types` float/base64/binary/ubinary, "
                             "`truncate` NONE/START/END.")
    async def cohere_embed(body: Annotated[CohereEmbedRequest, Body(openapi_examples=examples.COHERE_EMBED)],
                           request: Request, state: ServerState = Depends(get_state)):
        return await do_cohere_embed(state, body, request)

    return router


def classify_router() -> APIRouter:
    router = APIRouter(tags=["classification"])

    @router.post("/classify", response_model=ClassificationResponse, summary="Classify texts",
                 description="Class probabilities per text, with the label of the most likely class.")
    async def classify(body: Annotated[ClassificationRequest, Body(openapi_examples=examples.CLASSIFY)],
                       request: Request, state: ServerState = Depends(get_state)):
        return await do_classify(state, body, request)

    return router


def pooling_router() -> APIRouter:
    router = APIRouter(tags=["embeddings"])

    @router.post("/pooling", response_model=PoolingResponse, summary="Raw pooling output",
                 description="`task` embed (vector), token_embed (vector per token) or classify (probabilities); "
                             "defaults to the model's task.")
    async def pooling(body: Annotated[PoolingRequest, Body(openapi_examples=examples.POOLING)],
                      request: Request, state: ServerState = Depends(get_state)):
        return await do_pooling(state, body, request)

    return router
