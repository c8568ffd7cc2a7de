"""The /tokenize and /detokenize handlers; the GET routes /v1/models, /version (guarded) and /health, /ping (open)."""

from __future__ import annotations


from fastapi import APIRouter, Depends, Request, Response

import scorekit
from scorekit.errors import ValidationError
from scorekit.engine.job import Job, no_step
from scorekit.scoring.chat import chat_token_ids
from scorekit.server.protocol import (
    DetokenizeRequest,
    DetokenizeResponse,
    ModelCard,
    ModelList,
    TokenizeRequest,
    TokenizeResponse,
)
from scorekit.server.state import ServerState, get_state


def _tokenize(state: ServerState, req: TokenizeRequest) -> tuple[list[int], list[str] | None]:
    tok = state.tokenizer
    if req.messages is not None:
        if not getattr(tok, "chat_template", None):
            raise ValidationError("This model's tokenizer has no chat template: send `prompt` instead of `messages`.",
                                  param="messages")
        kwargs = dict(req.chat_template_kwargs or {})
        if req.tools is not None:
            kwargs["tools"] = req.tools  # apply_chat_template's own `tools` argument
        with state.scorer().builder.lock:  # the tokenizer is shared by every model thread
            ids = chat_token_ids(tok, req.messages, add_generation_prompt=req.add_generation_prompt,
                                 continue_final_message=req.continue_final_message,
                                 add_special_tokens=bool(req.add_special_tokens), chat_template_kwargs=kwargs)
    else:
        add = True if req.add_special_tokens is None else req.add_special_tokens
        ids = list(state.scorer().builder.tokenize(req.prompt, add_special_tokens=add)["input_ids"])
    return ids, (tok.convert_ids_to_tokens(ids) if req.return_token_strs else None)


def _detokenize(state: ServerState, tokens: list[int]) -> str:
    vocab = len(state.tokenizer)
    bad = [t for t in tokens if t >= vocab]
    if bad:
        raise ValidationError(f"token id {bad[0]} is out of vocabulary range [0, {vocab}).", param="tokens")
    return state.tokenizer.decode(tokens)


async def do_tokenize(state: ServerState, req: TokenizeRequest, request: Request) -> TokenizeResponse:
    """Tokenising takes a model thread's turn like any other work (a long prompt never blocks the event loop)."""
    state.check_model(req.model)
    ids, strs = await state.run(Job(no_step(_tokenize, state, req)), request)
    return TokenizeResponse(count=len(ids), max_model_len=state.info.max_model_len, tokens=ids, token_strs=strs)


async def do_detokenize(state: ServerState, req: DetokenizeRequest, request: Request) -> DetokenizeResponse:
    state.check_model(req.model)
    return DetokenizeResponse(prompt=await state.run(Job(no_step(_detokenize, state, req.tokens)), request))


def info_router() -> APIRouter:
    router = APIRouter(tags=["server"])

    @router.get("/v1/models", response_model=ModelList, summary="List the served model names",
                responses={200: {"content": {"application/json": {"example": {"object": "list", "data": [
                    {"id": "sentence-transformers/all-MiniLM-L6-v2", "object": "model", "max_model_len": 256}]}}}}})
    async def models(state: ServerState = Depends(get_state)):
        # `root` names the model as it was asked for (hub id, or the folder or file name): no server path.
        root = state.model_name
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
