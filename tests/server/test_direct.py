"""Direct dispatch (server/direct.py): well-formed requests to table routes skip FastAPI's machinery with the
same guards, model, handler and error handlers; everything else falls through to FastAPI unchanged."""

from __future__ import annotations

import json

import pytest

from scorekit.server.direct import DirectDispatch

API_KEY = "sk-test-123"
BODY = {"query": "capital of France", "documents": ["Paris is the capital", "bananas"]}


def test_direct_answers_equal_fastapis(http):
    direct = http.post("/rerank", json=BODY).json()
    through_fastapi = http.post("/invocations", json=BODY).json()  # /invocations is FastAPI's own route
    assert [r["relevance_score"] for r in direct["results"]] == [r["relevance_score"] for r in through_fastapi["results"]]
    assert direct.keys() == through_fastapi.keys()


def test_what_direct_dispatch_does_not_take_gets_fastapis_errors(keyed_server):
    with keyed_server.client() as c:
        assert c.post("/rerank", json=BODY).status_code == 401  # no key: the guard's own 401
        auth = {"Authorization": f"Bearer {API_KEY}"}
        r = c.post("/rerank", content=b'{"query": "q", "documents": ["d"]}', headers={**auth, "Content-Type": "text/plain"})
        assert r.status_code == 400 and "Unsupported Media Type" in r.json()["error"]["message"]
        r = c.post("/rerank", json={"documents": ["d"]}, headers=auth)  # invalid: FastAPI words it
        assert r.status_code == 400 and r.json()["error"]["param"] == "body.query"
        r = c.post("/rerank", json={**BODY, "model": "nope"}, headers=auth)  # raised inside the handler
        assert r.status_code == 404 and r.json()["error"]["type"] == "NotFoundError"
        ok = c.post("/rerank", json=BODY, headers={**auth, "X-Request-Id": "direct-1"})
        assert ok.status_code == 200 and ok.json()["id"] == "score-direct-1" and ok.headers["x-request-id"] == "direct-1"
        metrics = c.get("/metrics").text
        assert 'scorekit_requests_total{method="POST",route="/rerank",status="200"}' in metrics


def test_every_table_route_is_dispatched_directly(server):
    from scorekit.server.route_table import served_routes

    app = server.server.config.app
    [direct] = [m for m in app.user_middleware if m.cls is DirectDispatch]
    assert [r.path for r in direct.kwargs["routes"]] == [r.path for r in served_routes(app.state.scorekit.info)]


@pytest.mark.parametrize("path, body", [
    ("/score", {"queries": "q", "documents": ["d", "e"]}),
    ("/tokenize", {"prompt": "hello world"}),
    ("/pooling", {"input": "hello", "task": "embed"}),
])
def test_routes_that_return_models_are_serialised_as_fastapi_would(http, path, body):
    direct = http.post(path, json=body)
    # A UTF-16 body: pydantic's JSON parser takes UTF-8 only, so direct dispatch passes it to FastAPI, which
    # reads UTF-16 JSON too (server/errors.py) — the same request, answered by FastAPI's own serialisation.
    through_fastapi = http.post(path, content=json.dumps(body).encode("utf-16"),
                                headers={"Content-Type": "application/json"})
    assert direct.status_code == 200 and direct.headers["content-type"] == "application/json"
    assert through_fastapi.status_code == 200
    drop = {"id", "created"}
    assert {k: v for k, v in direct.json().items() if k not in drop} == \
           {k: v for k, v in through_fastapi.json().items() if k not in drop}
