"""--api-key guards every route except /health, /ping and /metrics — /score, /rerank and /generative_scoring too."""

from __future__ import annotations

import pytest

from scorekit.server.auth import ApiKeyAuth

API_KEY = "sk-test-123"  # the key conftest.keyed_server and smol_server use

GUARDED = [
    ("POST", "/score", {"queries": "q", "documents": "d"}),
    ("POST", "/v1/score", {"queries": "q", "documents": "d"}),
    ("POST", "/rerank", {"query": "q", "documents": ["d"]}),
    ("POST", "/v1/rerank", {"query": "q", "documents": ["d"]}),
    ("POST", "/v2/rerank", {"query": "q", "documents": ["d"]}),
    ("POST", "/v1/embeddings", {"input": "x"}),
    ("POST", "/v2/embed", {"texts": ["x"]}),
    ("POST", "/pooling", {"input": "x"}),
    ("POST", "/tokenize", {"prompt": "x"}),
    ("POST", "/detokenize", {"tokens": [101]}),
    ("POST", "/invocations", {"query": "q", "documents": ["d"]}),
    ("GET", "/v1/models", None),
    ("GET", "/version", None),
]


@pytest.mark.parametrize("method,path,body", GUARDED)
@pytest.mark.parametrize("auth", [None, "Bearer wrong", f"Basic {API_KEY}", f"Bearer {API_KEY}x"])
def test_guarded_routes_need_the_key(keyed_server, method, path, body, auth):
    headers = {"Authorization": auth} if auth else {}
    with keyed_server.client() as c:
        r = c.request(method, path, json=body, headers=headers)
        assert r.status_code == 401, (path, r.text)
        assert r.json()["error"]["code"] == 401
        ok = c.request(method, path, json=body, headers={"Authorization": f"Bearer {API_KEY}"})
        assert ok.status_code == 200, (path, ok.text)


def test_generative_scoring_is_guarded(smol_server):
    with smol_server.client() as c:
        body = {"query": "q", "items": ["a"], "label_token_ids": [1]}
        assert c.post("/generative_scoring", json=body).status_code == 401
        assert c.post("/generative_scoring", json=body, headers={"Authorization": "Bearer x"}).status_code == 401


@pytest.mark.parametrize("method,path", [("GET", "/health"), ("GET", "/ping"), ("POST", "/ping"), ("GET", "/metrics")])
def test_open_routes(keyed_server, method, path):
    with keyed_server.client() as c:
        assert c.request(method, path).status_code == 200


def test_key_checked_before_body(keyed_server):
    with keyed_server.client() as c:
        assert c.post("/rerank", json={"top_n": -1}).status_code == 401
        assert c.post("/score", content=b"x", headers={"Content-Type": "text/plain"}).status_code == 401


def test_request_id_header_echoed(keyed_server):
    with keyed_server.client(headers={"Authorization": f"Bearer {API_KEY}"}) as c:
        r = c.post("/rerank", json={"query": "q", "documents": ["d"]}, headers={"X-Request-Id": "abc-1"})
        assert r.headers["x-request-id"] == "abc-1" and r.json()["id"] == "score-abc-1"
        generated = c.get("/health").headers["x-request-id"]
        assert len(generated) == 32 and int(generated, 16) >= 0
        assert c.get("/health", headers={"X-Request-Id": "h"}).headers["x-request-id"] == "h"


def test_several_keys_and_no_key():
    auth = ApiKeyAuth(["a", "b"])
    assert auth.check("Bearer a") and auth.check("bearer b") and not auth.check("Bearer c") and not auth.check(None)
    assert ApiKeyAuth(None).check(None)


@pytest.mark.parametrize("keys", [[""], ["   "], ["sk-good", ""], ["\t\n"]])
def test_empty_or_blank_keys_are_refused_not_dropped(keys):
    """`--api-key ""` once left every route open while the log said "(API key required)"."""
    with pytest.raises(ValueError, match="empty or blank"):
        ApiKeyAuth(keys)


@pytest.mark.parametrize("key", [" sk-1", "sk-1 ", "clé", "sk\x00"])
def test_keys_no_client_could_send_are_refused(key):
    with pytest.raises(ValueError, match="printable ASCII"):
        ApiKeyAuth([key])


def test_no_keys_means_open():
    assert ApiKeyAuth([]).check(None) and ApiKeyAuth(()).check("Bearer anything")


def test_server_config_refuses_a_blank_key_too():
    from scorekit.config import ServerConfig

    with pytest.raises(ValueError, match="empty or blank"):
        ServerConfig(api_keys=("",))
