"""The handlers of /v1/embeddings (OpenAI), /v2/embed (Cohere), /classify and /pooling (SPEC §12)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from fastapi import Request

from scorekit.errors import ValidationError
from scorekit.scoring.chat import ChatInput
from scorekit.scoring.truncation import TruncationParams
from scorekit.server import encoding
from scorekit.server.deps import base_request_id
from scorekit.server.media_inputs import check_mm_processor_kwargs, resolve_sides, takes_images
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
    PoolingRequest,
    Usage,
    now,
)
from scorekit.server.responses import ORJSONBody
from scorekit.server.state import ServerState


def inputs_of(value: Any) -> list:
    """vLLM's `input`: a text, texts, one token id list, or token id lists — as a list of inputs."""
    if isinstance(value, str):
        return [value]
    if not value:
        raise ValidationError("input must not be empty", param="input")
    if all(isinstance(v, int) for v in value):
        return [list(value)]  # one prompt given as token ids
    return list(value)


def request_inputs(state: ServerState, req, route: str) -> list:
    """The inputs of /v1/embeddings, /classify or /pooling: `input` as texts or token-id lists, or `messages`
    as one conversation (a ChatInput the Scorer renders with the tokenizer's chat template: the one chat path
    of the three routes). A per-request `chat_template` is refused; so are image parts on /classify and
    /pooling of a multimodal model (/v1/embeddings embeds those its own way, before calling this)."""
    _no_request_template(req)
    if route != "/v1/embeddings":
        _no_mm_processor_kwargs(req, f"{route} takes text inputs only (no image is processed)")
    if req.messages is None:
        inputs = inputs_of(req.input)
        state.check_inputs(len(inputs), "input")
        return inputs
    if takes_images(state) and _has_media_parts(req.messages):
        raise ValidationError(f"messages with images are not supported on {route}: send text parts, or embed "
                              "them on /v1/embeddings", param="messages")
    return [ChatInput(req.messages, req.special_tokens,
                      {"add_generation_prompt": req.add_generation_prompt,
                       "continue_final_message": req.continue_final_message,
                       "chat_template_kwargs": req.chat_template_kwargs})]


def _no_mm_processor_kwargs(req, why: str) -> None:
    """vLLM's per-request image-processor field, on a route that does not declare it: refused, not ignored."""
    if (req.model_extra or {}).get("mm_processor_kwargs"):
        raise ValidationError(f"mm_processor_kwargs: {why}", param="mm_processor_kwargs")


def _no_request_template(req) -> None:
    if "chat_template" in (req.model_extra or {}):
        raise ValidationError("A per-request `chat_template` is not accepted: the model's own chat template is used.",
                              param="chat_template")


def _truncation(k: int | None, side: str | None = None) -> TruncationParams:
    return TruncationParams(truncate_prompt_tokens=k, truncation_side=side)


def _normalize(req) -> bool | None:
    """`normalize` (vLLM's name) or `use_activation`; None: the model's default."""
    return req.normalize if req.normalize is not None else req.use_activation


async def do_embeddings(state: ServerState, req: EmbeddingRequest, request: Request):
    """OpenAI's /v1/embeddings with vLLM's extras: token-id inputs, chat `messages`, every encoding format."""
    state.check_model(req.model)
    _no_request_template(req)
    check_mm_processor_kwargs(state, req.mm_processor_kwargs)  # the flag and the keys, before anything runs
    truncation = TruncationParams(truncate_prompt_tokens=req.truncate_prompt_tokens, truncation_side=req.truncation_side)
    options = dict(normalize=_normalize(req), priority=state.priority(req.priority), dimensions=req.dimensions)
    scorer = state.scorer()
    # A text-only model takes the chat path, which refuses a non-text part by its type, before any fetch.
    image_messages = req.messages is not None and takes_images(state) and _has_media_parts(req.messages)
    if image_messages:
        # vLLM's embeddings chat form with images: all parts of the messages, in order, are one input.
        if (req.add_generation_prompt or req.continue_final_message or req.chat_template_kwargs
                or req.add_special_tokens is not None):
            raise ValidationError("messages with images are embedded as one input without a chat template, its "
                                  "texts tokenised as the model's processor does: add_generation_prompt, "
                                  "continue_final_message, chat_template_kwargs and add_special_tokens do not apply",
                                  param="messages")
        parts = [p for m in req.messages for p in (m.get("content") if isinstance(m.get("content"), list)
                                                    else [{"type": "text", "text": m.get("content") or ""}])]
        (item,) = await resolve_sides(state, [("messages", {"content": parts})], req.mm_processor_kwargs)
        job = scorer.embed([item], truncation, **options)
    else:
        job = scorer.embed(request_inputs(state, req, "/v1/embeddings"), truncation,
                           add_special_tokens=req.special_tokens, **options)
    done = await state.run(job, request)
    state.count_tokens("embeddings", done.prompt_tokens)
    return _vectors_response(state, req, done, f"embd-{base_request_id(request, req.request_id)}",
                             "embedding", "embedding")


def _vectors_response(state: ServerState, req, done, response_id: str, item_object: str, item_key: str):
    """The answer of /v1/embeddings and /pooling: JSON items in `req.encoding_format` (server/encoding.py),
    or the binary body of `bytes` / `bytes_only`."""
    tokens = done.prompt_tokens
    usage = Usage(prompt_tokens=tokens, total_tokens=tokens).model_dump()
    created = now()
    if req.encoding_format in ("bytes", "bytes_only"):
        return encoding.bytes_response(done.outputs, req.encoding_format, req.embed_dtype, req.endianness,
                                       {"id": response_id, "created": created, "model": state.model_name,
                                        "usage": usage})
    data = [{"index": i, "object": item_object,
             item_key: encoding.encode(v, req.encoding_format, req.embed_dtype, req.endianness)}
            for i, v in enumerate(done.outputs)]
    return ORJSONBody({"id": response_id, "object": "list", "created": created, "model": state.model_name,
                       "data": data, "usage": usage})


def _cohere_types(vectors: list[list[float]], types: list[str]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for kind in types:
        if kind == "float":
            out["float"] = vectors
        elif kind == "base64":  # float32 little-endian, what Cohere's SDK decodes
            out["base64"] = [encoding.encode(torch.tensor(v), "base64", "float32", "little") for v in vectors]
        elif kind in ("binary", "ubinary"):
            packed = [np.packbits(np.asarray(v) > 0).astype(np.int16) for v in vectors]
            out[kind] = [(p - 128 if kind == "binary" else p).tolist() for p in packed]
        else:
            raise ValidationError(f"embedding_types {kind!r} is not supported; use float, base64, binary or ubinary.",
                                  param="embedding_types")
    return out


async def do_cohere_embed(state: ServerState, req: CohereEmbedRequest, request: Request) -> CohereEmbedResponse:
    state.check_model(req.model)
    # Cohere's API has no such field; the image settings are the server's (--mm-processor-kwargs)
    _no_mm_processor_kwargs(req, "/v2/embed takes none; set --mm-processor-kwargs on the server")
    given = [name for name in ("texts", "images", "inputs") if getattr(req, name)]
    if len(given) != 1:
        raise ValidationError("Exactly one of texts, images or inputs must be given and non-empty.")
    if given[0] != "texts":
        if not takes_images(state):  # before anything is fetched
            raise ValidationError(f"`{given[0]}` is not supported: this model embeds text only; use `texts`.",
                                  param=given[0])
        return await _cohere_embed_images(state, req, request, given[0])
    limit = req.max_tokens if req.max_tokens else (None if req.truncate == "NONE" else -1)
    side = {"START": "left", "END": "right"}.get(req.truncate or "END") if limit is not None else None
    state.check_inputs(len(req.texts), "texts")
    done = await state.run(state.scorer().embed(list(req.texts), _truncation(limit, side),
                                                dimensions=req.output_dimension), request)
    vectors, tokens = torch.stack(done.outputs).numpy(), done.prompt_tokens
    state.count_tokens("embed", tokens)
    return CohereEmbedResponse(
        id=f"embed-{base_request_id(request)}",
        embeddings=_cohere_types(vectors.tolist(), list(req.embedding_types or ["float"])),
        texts=list(req.texts),
        meta=CohereMeta(api_version=CohereApiVersion(version="2"), billed_units=CohereBilledUnits(input_tokens=tokens)),
    )


def _has_media_parts(messages: list[dict]) -> bool:
    return any(isinstance(m.get("content"), list) and any(isinstance(p, dict) and p.get("type", "text") != "text"
                                                          for p in m["content"]) for m in messages)


async def _cohere_embed_images(state: ServerState, req: CohereEmbedRequest, request: Request, field: str):
    """Cohere's `images` (image URLs, data: URIs as Cohere sends them) or `inputs` ({"content": [parts]})."""
    values = list(getattr(req, field))
    state.check_inputs(len(values), field)
    # An image model's text tower cuts texts as its processor does (END, at its fixed length): other truncation
    # settings would be ignored, so they are refused (the text path of `texts` honours them).
    if req.max_tokens or (req.truncate or "END") != "END":
        raise ValidationError(f"max_tokens and truncate={req.truncate!r} do not apply to `{field}`: the model's "
                              "processor cuts texts at its own length (truncate END)",
                              param="max_tokens" if req.max_tokens else "truncate")
    items = ([{"content": [{"type": "image_url", "image_url": {"url": u}}]} for u in values] if field == "images"
             else values)
    (resolved,) = await resolve_sides(state, [(field, items)])
    done = await state.run(state.scorer().embed(resolved, dimensions=req.output_dimension), request)
    vectors, tokens = torch.stack(done.outputs).numpy(), done.prompt_tokens
    state.count_tokens("embed", tokens)
    images = [{"width": p.image.width, "height": p.image.height, "bit_depth": 8}  # as decoded: 8-bit RGB
              for c in resolved for p in c.images]
    return CohereEmbedResponse(
        id=f"embed-{base_request_id(request)}",
        embeddings=_cohere_types(vectors.tolist(), list(req.embedding_types or ["float"])),
        texts=[c.text for c in resolved] if field == "inputs" else [],
        images=images,
        meta=CohereMeta(api_version=CohereApiVersion(version="2"), billed_units=CohereBilledUnits(input_tokens=tokens)),
    )


async def do_classify(state: ServerState, req: ClassificationRequest, request: Request) -> ClassificationResponse:
    state.check_model(req.model)
    texts = request_inputs(state, req, "/classify")
    done = await state.run(state.scorer().classify(texts, _truncation(req.truncate_prompt_tokens, req.truncation_side),
                                                   req.use_activation, priority=state.priority(req.priority),
                                                   add_special_tokens=req.special_tokens), request)
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
    return {"embed": ["embed", "token_embed"], "classify": ["classify"], "token_embed": ["token_embed"],
            "token_classify": ["token_classify"]}.get(task, [])


def _pooling_job(state: ServerState, task: str, inputs: list, req: PoolingRequest):
    scorer = state.scorer()
    truncation = TruncationParams(truncate_prompt_tokens=req.truncate_prompt_tokens, truncation_side=req.truncation_side)
    options = dict(priority=state.priority(req.priority), add_special_tokens=req.special_tokens)
    if req.dimensions is not None and task != "embed":
        raise ValidationError(f"dimensions apply to task embed, not {task!r}", param="dimensions")
    if task == "embed":
        return scorer.embed(inputs, truncation, normalize=req.use_activation, dimensions=req.dimensions, **options)
    if task == "token_embed":
        return scorer.token_embed(inputs, truncation, normalize=req.use_activation, **options)
    if task == "token_classify":  # per token: [tokens, num_labels] probabilities (logits without activation)
        return scorer.token_classify(inputs, truncation, req.use_activation, **options)
    return scorer.classify(inputs, truncation, req.use_activation, **options)


async def do_pooling(state: ServerState, req: PoolingRequest, request: Request):
    state.check_model(req.model)
    if "normalize" in (req.model_extra or {}):
        raise ValidationError("Parameter `normalize` was removed; use `use_activation` instead.", param="normalize")
    supported = supported_pooling_tasks(state.info.task)
    task = req.task or (supported[0] if supported else state.info.task)
    if task == "score":
        raise ValidationError("`score` task was removed; use `classify` instead.", param="task")
    if task == "plugin":
        raise ValidationError("Unsupported task: 'plugin'. No IOProcessor plugin installed.", param="task")
    if task == "token_classify" and "classify" in supported:
        raise ValidationError("Try switching the model's pooling_task via --task (or --pooler-config's task) and "
                              "a model that has it: this model classifies whole sequences (task 'classify'); "
                              "'token_classify' (a label per token) needs a *ForTokenClassification model.",
                              param="task")
    if task not in supported:
        raise ValidationError(f"Unsupported task: {task!r} Supported tasks: {supported}", param="task")
    inputs = request_inputs(state, req, "/pooling")
    done = await state.run(_pooling_job(state, task, inputs, req), request)
    state.count_tokens("pooling", done.prompt_tokens)
    return _vectors_response(state, req, done, f"pool-{base_request_id(request, req.request_id)}",
                             "pooling", "data")
