"""`build_app(llm, config)`: the FastAPI app around an already-loaded LLM.

Which routes exist depends on the model, as in vLLM (server/route_table.py): score/rerank when it has a score
type, generative scoring for a causal LM, embeddings for embedding models, classify for classifiers. Every
POST route has the same guards (API key, JSON body) and goes to the engine through `ServerState.run`.
"""

from __future__ import annotations

import inspect
import uuid
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, Request
from fastapi.routing import APIRoute
from pydantic import ValidationError as PydanticValidationError

import scorekit
from scorekit.config import ServerConfig
from scorekit.errors import ValidationError
from scorekit.server import docs, errors, examples
from scorekit.server.auth import ApiKeyAuth
from scorekit.server.body_limit import BodyLimit
from scorekit.server.deps import require_json
from scorekit.server.direct import DirectDispatch
from scorekit.server.metrics import Metrics
from scorekit.server.route_table import Route, invocation_routes, served_routes
from scorekit.server.routes_misc import health_router, info_router
from scorekit.server.state import ServerState

DESCRIPTION = ("Scoring, reranking and embeddings, compatible with vLLM, Cohere, Jina and OpenAI clients. "
               "With --api-key every route except /health, /ping and /metrics needs `Authorization: Bearer <key>`.")


def build_app(llm, config: ServerConfig | None = None) -> FastAPI:
    config = config or ServerConfig()
    state = ServerState(llm, config)
    state.metrics = Metrics(lambda: state.in_flight, runner=llm.engine)

    app = FastAPI(title="scorekit", version=scorekit.__version__, description=DESCRIPTION,
                  docs_url=None, redoc_url=None)
    app.state.scorekit = state
    errors.install(app)

    auth = ApiKeyAuth(config.api_keys)
    guard = [Depends(auth)]
    post_guard = guard + [Depends(require_json)]
    routes = served_routes(llm.info)
    for route in routes:
        app.add_api_route(route.path, _endpoint(route), methods=["POST"], response_model=route.response_model,
                          summary=route.summary, description=route.description, tags=[route.tag],
                          dependencies=post_guard)
    dispatch = invocation_routes(llm.info)
    app.add_api_route("/invocations", _invocations(dispatch), methods=["POST"], tags=["server"],
                      summary="SageMaker entry point: dispatches to the matching route",
                      description="Tries, in order: " + ", ".join(r.body.__name__ for r in dispatch) + ".",
                      dependencies=post_guard)
    app.include_router(info_router(), dependencies=guard)
    app.include_router(health_router())
    app.include_router(state.metrics.router())
    docs.install(app, "scorekit")

    api_routes = {r.path: r for r in app.router.routes if isinstance(r, APIRoute)}
    app.add_middleware(DirectDispatch, state=state, auth=auth, routes=routes, api_routes=api_routes)  # innermost
    app.add_middleware(BodyLimit, max_bytes=config.max_request_bytes)  # before any body is read
    app.add_middleware(state.metrics.middleware)  # outside the limit, so its 413s are counted too
    if config.enable_request_id_headers:
        app.add_middleware(request_id_header)
    return app


def _endpoint(route: Route):
    """A FastAPI endpoint for a table route: its body model (with its examples) in the signature, so FastAPI
    validates the body and documents it."""

    async def endpoint(body, request: Request):
        return await route(request.app.state.scorekit, body, request)

    body_type = Annotated[route.body, Body(openapi_examples=route.examples)] if route.examples else route.body
    endpoint.__signature__ = inspect.Signature([
        inspect.Parameter("body", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=body_type),
        inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request),
    ])
    endpoint.__name__ = route.path.strip("/").replace("/", "_") or "root"
    return endpoint


def _invocations(routes: list[Route]):
    """SageMaker: the body goes to the first route whose request schema validates it."""
    names = ", ".join(route.body.__name__ for route in routes)

    async def invocations(body: Annotated[dict[str, Any], Body(openapi_examples=examples.INVOCATIONS)],
                          request: Request):
        for route in routes:
            try:
                parsed = route.body.model_validate(body)
            except PydanticValidationError:
                continue
            return await route(request.app.state.scorekit, parsed, request)
        raise ValidationError(f"Cannot find suitable handler for request. Expected one of: {names}")

    return invocations


def request_id_header(app):
    """ASGI middleware: every response carries `X-Request-Id` (the client's own, else a new one)."""

    async def with_request_id(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)
        given = next((v for k, v in scope["headers"] if k == b"x-request-id"), None)
        value = given or uuid.uuid4().hex.encode()
        scope[errors.REQUEST_ID_SCOPE_KEY] = value.decode("latin-1")  # error bodies name the same id

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                message = {**message, "headers": headers + [(b"x-request-id", value)]}
            await send(message)

        await app(scope, receive, send_with_id)

    return with_request_id
