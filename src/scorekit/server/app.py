"""`build_app(llm, ...)`: the FastAPI app around an already-loaded LLM.

Which routes exist depends on the model, as in vLLM: score/rerank when it has a score type, generative scoring
for a causal LM, embeddings for embedding models, classify for classifiers. Everything else is always there.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from typing import Sequence

from fastapi import Depends, FastAPI

import scorekit
from scorekit.server import docs, errors
from scorekit.server.auth import ApiKeyAuth
from scorekit.server.deps import require_json
from scorekit.server.fast_lane import FastLane
from scorekit.server.metrics import Metrics
from scorekit.server.protocol import (
    ClassificationRequest,
    EmbeddingRequest,
    GenerativeScoringRequest,
    PoolingRequest,
    RerankRequest,
    ScoreRequest,
)
from scorekit.server.routes_embed import (
    classify_router,
    do_classify,
    do_embeddings,
    do_pooling,
    embed_router,
    pooling_router,
)
from scorekit.server.routes_misc import health_router, info_router, invocations_router, tokenizer_router
from scorekit.server.routes_score import _rerank_json, do_generative, do_rerank, do_score, generative_router, score_router
from scorekit.server.state import ServerState

log = logging.getLogger("scorekit.server")

DESCRIPTION = ("Scoring, reranking and embeddings, compatible with vLLM, Cohere, Jina and OpenAI clients. "
               "With --api-key every route except /health, /ping and /metrics needs `Authorization: Bearer <key>`.")


async def _rerank_handler(state, req, request):
    return _rerank_json(await do_rerank(state, req, request))


def build_app(llm, served_model_names: Sequence[str] | None = None, api_keys: Sequence[str] | None = None,
              enable_request_id_headers: bool = False) -> FastAPI:
    names = list(served_model_names or []) or [llm.loaded.location.name]
    state = ServerState(llm, names)
    state.metrics = Metrics(lambda: state.worker.pending, runner=llm.engine)
    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        state.worker.shutdown()

    app = FastAPI(title="scorekit", version=scorekit.__version__, description=DESCRIPTION,
                  docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.scorekit = state
    errors.install(app)

    auth = ApiKeyAuth(api_keys)
    guard = [Depends(auth)]
    post_guard = guard + [Depends(require_json)]
    task = llm.info.task
    handlers = []
    if task == "embed":
        app.include_router(embed_router(), dependencies=post_guard)
        handlers.append((EmbeddingRequest, do_embeddings))
    if task == "classify":
        app.include_router(classify_router(), dependencies=post_guard)
        handlers.append((ClassificationRequest, do_classify))
    if llm.info.score_type is not None:
        app.include_router(score_router(), dependencies=post_guard)
        handlers += [(RerankRequest, _rerank_handler), (ScoreRequest, do_score)]
    if task == "generate":
        app.include_router(generative_router(), dependencies=post_guard)
    if task != "generate":
        app.include_router(pooling_router(), dependencies=post_guard)
        handlers.append((PoolingRequest, do_pooling))
    if task == "generate":
        handlers.append((GenerativeScoringRequest, do_generative))
    app.include_router(tokenizer_router(), dependencies=post_guard)
    app.include_router(invocations_router(handlers), dependencies=post_guard)
    app.include_router(info_router(), dependencies=guard)
    app.include_router(health_router())
    app.include_router(state.metrics.router())
    docs.install(app, "scorekit")

    if task == "embed":  # innermost of ours: metrics and request ids see its requests too
        app.add_middleware(FastLane, state=state, auth=auth, routes={"/v1/embeddings": (EmbeddingRequest, do_embeddings)})
    app.add_middleware(state.metrics.middleware)
    if enable_request_id_headers:
        app.add_middleware(request_id_header)
    return app


def request_id_header(app):
    """ASGI middleware: every response carries `X-Request-Id` (the client's own, else a new one)."""

    async def with_request_id(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)
        given = next((v for k, v in scope["headers"] if k == b"x-request-id"), None)
        value = given or uuid.uuid4().hex.encode()

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                message = {**message, "headers": headers + [(b"x-request-id", value)]}
            await send(message)

        await app(scope, receive, send_with_id)

    return with_request_id
