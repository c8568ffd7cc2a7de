"""The handlers of /v1/embeddings (OpenAI), /v2/embed (Cohere), /classify and /pooling (SPEC §12)."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import torch
from fastapi import Request

from scorekit.errors import ValidationError
from scorekit.scoring.truncation import TruncationParams
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
from scorekit.server.state import ServerState


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
                 normalize: bool, field_name: str = "input") -> tuple[np.ndarray, int]:
    """Vectors [n, dim] float32 and the prompt tokens. The engine tokenises the texts on its model thread and
    normalises each batch at once; the rows go to orjson as numpy."""
    state.check_inputs(len(texts), field_name)
    done = await state.run(state.scorer().embed(texts, truncation, normalize=normalize), request)
    return torch.stack(done.outputs).numpy(), done.prompt_tokens


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
    vectors, tokens = await _embed(state, request, list(req.texts), _truncation(limit, side), True, "texts")
    _check_dimensions(req.output_dimension, vectors.shape[1], req.model or state.model_name)
    state.count_tokens("embed", tokens)
    return CohereEmbedResponse(
        id=f"embed-{base_request_id(request)}",
        embeddings=_cohere_types(vectors.tolist(), list(req.embedding_types or ["float"])),
        texts=list(req.texts),
        meta=CohereMeta(api_version=CohereApiVersion(version="2"), billed_units=CohereBilledUnits(input_tokens=tokens)),
    )


async def do_classify(state: ServerState, req: ClassificationRequest, request: Request) -> ClassificationResponse:
    state.check_model(req.model)
    texts = texts_of(req.input)
    state.check_inputs(len(texts), "input")
    done = await state.run(state.scorer().classify(texts, _truncation(req.truncate_prompt_tokens),
                                                   req.use_activation), request)
    probs, tokens = [p.float().tolist() for p in done.outputs], done.prompt_tokens
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


def _pooling_job(state: ServerState, task: str, texts: list[str], truncation: TruncationParams, use_activation):
    scorer = state.scorer()
    if task == "embed":
        return scorer.embed(texts, truncation, normalize=use_activation is not False)
    if task == "token_embed":
        return scorer.token_embed(texts, truncation, normalize=use_activation is not False)
    return scorer.classify(texts, truncation, use_activation)


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
    state.check_inputs(len(texts), "input")
    done = await state.run(_pooling_job(state, task, texts, _truncation(req.truncate_prompt_tokens),
                                        req.use_activation), request)
    outputs, tokens = [o.float().tolist() for o in done.outputs], done.prompt_tokens
    state.count_tokens("pooling", tokens)
    return PoolingResponse(
        id=f"pooling-{base_request_id(request, req.request_id)}",
        model=state.model_name,
        data=[PoolingData(index=i, data=b64(o) if req.encoding_format == "base64" else o)
              for i, o in enumerate(outputs)],
        usage=Usage(prompt_tokens=tokens, total_tokens=tokens),
    )
