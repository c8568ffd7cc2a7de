"""/tokenize, /detokenize, /v1/models, /version, /invocations (guarded) and /health, /ping (open)."""

from __future__ import annotations

from typing import Annotated, Any, Awaitable, Callable, Sequence

from fastapi import APIRouter, Body, Depends, Request, Response
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

import scorekit
from scorekit.errors import ValidationError
from scorekit.server import examples
from scorekit.server.protocol import (
    DetokenizeRequest,
    DetokenizeResponse,
    ModelCard,
    ModelList,
    TokenizeRequest,
    TokenizeResponse,
)
from scorekit.server.state import ServerState, get_state

Handler = Callable[[ServerState, Any, Request], Awaitable[Any]]


def _tokenize(state: ServerState, req: TokenizeRequest) -> list[int]:
    tok = state.tokenizer
    if req.messages is not None:
        ids = tok.apply_chat_template(req.messages, tokenize=True, add_generation_prompt=req.add_generation_prompt)
        return list(ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids)
    add = True if req.add_special_tokens is None else req.add_special_tokens
    return list(state.scorer().builder.tokenize(req.prompt, add_special_tokens=add)["input_ids"])


def _detokenize(state: ServerState, tokens: list[int]) -> str:
    vocab = len(state.tokenizer)
    bad = [t for t in tokens if t >= vocab]
    if bad:
        raise ValidationError(f"token id {bad[0]} is out of vocabulary range [0, {vocab}).", param="tokens")
    return state.tokenizer.decode(tokens)


def tokenizer_router() -> APIRouter:
    router = APIRouter(tags=["tokenizer"])

    @router.post("/tokenize", response_model=TokenizeResponse, summary="Tokenise a prompt or chat messages",
                 description="`prompt` (with `add_special_tokens`, default true) or `messages` (chat template).")
    async def tokenize(body: Annotated[TokenizeRequest, Body(openapi_examples=examples.TOKENIZE)],
                       state: ServerState = Depends(get_state)):
        state.check_model(body.model)
        ids = await state.run(_tokenize, state, body)
        strs = await state.run(state.tokenizer.convert_ids_to_tokens, ids) if body.return_token_strs else None
        return TokenizeResponse(count=len(ids), max_model_len=state.info.max_model_len, tokens=ids, token_strs=strs)

    @router.post("/detokenize", response_model=DetokenizeResponse, summary="Turn token ids back into text")
    async def detokenize(body: Annotated[DetokenizeRequest, Body(openapi_examples=examples.DETOKENIZE)],
                         state: ServerState = Depends(get_state)):
        state.check_model(body.model)
        return DetokenizeResponse(prompt=await state.run(_detokenize, state, body.tokens))

    return router


def info_router() -> APIRouter:
    router = APIRouter(tags=["server"])

    @router.get("/v1/models", response_model=ModelList, summary="List the served model names",
                responses={200: {"content": {"application/json": {"example": {"object": "list", "data": [
                    {"id": "sentence-transformers/all-MiniLM-L6-v2", "object": "model", "max_model_len": 256}]}}}}})
    async def models(state: ServerState = Depends(get_state)):
        location = state.llm.loaded.location
        root = str(location.gguf_file or location.folder)
        return ModelList(data=[
            ModelCard(id=name, root=root, max_model_len=state.info.max_model_len,
                      permission=[{"id": f"modelperm-{name}", "object": "model_permission", "allow_sampling": False,
                                   "allow_logprobs": True, "allow_view": True, "organization": "*",
                                   "is_blocking": False}])
            for name in state.served_model_names])

    @router.get("/version", summary="scorekit version",
                responses={200: {"content": {"application/json": {"example": {"version": "0.1.0"}}}}})
    async def version():
        return {"version": scorekit.__version__}

    return router


def health_router() -> APIRouter:
    """Open even with --api-key (load balancers and SageMaker probe them)."""
    router = APIRouter(tags=["server"])

    @router.get("/health", summary="Liveness: 200 with an empty body when the model is loaded",
                response_class=Response, responses={200: {"content": {"text/plain": {"example": ""}}}})
    async def health():
        return Response(status_code=200)

    ping_doc = {"summary": "SageMaker health check (same as /health)", "response_class": Response,
                "responses": {200: {"content": {"text/plain": {"example": ""}}}}}

    @router.get("/ping", **ping_doc)
    async def ping():
        return Response(status_code=200)

    @router.post("/ping", **ping_doc)
    async def ping_post():
        return Response(status_code=200)

    return router


def invocations_router(handlers: Sequence[tuple[type[BaseModel], Handler]]) -> APIRouter:
    """SageMaker: the body goes to the first route whose request schema validates it."""
    router = APIRouter(tags=["server"])
    names = ", ".join(model.__name__ for model, _ in handlers)

    @router.post("/invocations", summary="SageMaker entry point: dispatches to the matching route",
                 description=f"Tries, in order: {names}.")
    async def invocations(body: Annotated[dict[str, Any], Body(openapi_examples=examples.INVOCATIONS)],
                          request: Request, state: ServerState = Depends(get_state)):
        for model, handler in handlers:
            try:
                parsed = model.model_validate(body)
            except PydanticValidationError:
                continue
            return await handler(state, parsed, request)
        raise ValidationError(f"Cannot find suitable handler for request. Expected one of: {names}")

    return router
