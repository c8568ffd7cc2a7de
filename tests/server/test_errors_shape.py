"""One error shape for every failure, no library's words in it (docs/errors.md).

Body-parse failures on every POST route, strict token ids, lone surrogates, and the generic 500 — all at the
HTTP level against real servers, so the tests hold whatever the routes do inside.
"""

from __future__ import annotations

import json
import logging

import pytest
from fastapi import FastAPI
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from scorekit.errors import ValidationError
from scorekit.server import errors, protocol

API_KEY = "sk-test-123"  # conftest.smol_server's key
SHAPE = {"message", "type", "param", "code"}


def assert_error(response, status: int, param: str | None = "absent", *fragments: str) -> dict:
    assert response.status_code == status, response.text[:500]
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == SHAPE, body
    error = body["error"]
    assert error["code"] == status
    if param != "absent":
        assert error["param"] == param, error
    for fragment in fragments:
        assert fragment in error["message"], error
    return error


def post_raw(http, path: str, body: bytes):
    return http.post(path, content=body, headers={"Content-Type": "application/json"})


@pytest.fixture(scope="module")
def post_paths(server):
    with server.client() as c:
        schema = c.get("/openapi.json").json()
    paths = sorted(p for p, ops in schema["paths"].items() if "post" in ops and p != "/ping")
    assert "/v1/embeddings" in paths and "/rerank" in paths and "/detokenize" in paths, paths
    return paths


UNPARSABLE = {
    "not UTF-8": (b'{"input": "caf\xe9"}', "byte 14 is not utf-8"),
    "truncated UTF-16": (json.dumps({"input": "x"}).encode("utf-16")[:-1], "not utf-16"),
    "deep nesting": (b'{"input": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "too deeply"),
}


@pytest.mark.parametrize("case", list(UNPARSABLE))
def test_unparsable_bodies_get_our_shape_on_every_post_route(http, post_paths, case):
    body, fragment = UNPARSABLE[case]
    for path in post_paths:
        error = assert_error(post_raw(http, path, body), 400, "body", fragment)
        assert error["type"] == "Bad Request"
        assert "There was an error parsing the body" not in error["message"]


def test_truncated_json_is_a_validation_error_in_our_shape(http, post_paths):
    for path in post_paths:
        error = assert_error(post_raw(http, path, b'{"input": '), 400)
        assert "JSON decode error" in error["message"] and error["param"].startswith("body")


def test_valid_utf16_json_is_read_like_utf8(http):
    """Python's JSON parser (RFC 4627's detection) reads UTF-16 and UTF-32 too; we honour it, as vLLM does."""
    utf8 = http.post("/v1/embeddings", json={"input": "héllo"})
    utf16 = post_raw(http, "/v1/embeddings", json.dumps({"input": "héllo"}).encode("utf-16"))
    assert utf8.status_code == utf16.status_code == 200, utf16.text[:300]
    assert utf16.json()["data"][0]["embedding"] == utf8.json()["data"][0]["embedding"]


def test_unknown_route_and_wrong_method_keep_fastapis_detail(http):
    assert http.post("/nope", json={}).json() == {"detail": "Not Found"}
    r = http.get("/v1/embeddings")
    assert (r.status_code, r.json()) == (405, {"detail": "Method Not Allowed"})


# -- strict token ids --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [True, 1.0], ids=["bool", "float"])
@pytest.mark.parametrize("path,make", [
    ("/detokenize", lambda t: {"tokens": [101, t]}),
    ("/v1/embeddings", lambda t: {"input": [t]}),
    ("/v1/embeddings", lambda t: {"input": [[101, t]]}),
    ("/pooling", lambda t: {"input": [t]}),
], ids=["detokenize", "embeddings", "embeddings-nested", "pooling"])
def test_token_ids_must_be_integers(http, path, make, bad):
    error = assert_error(http.post(path, json=make(bad)), 400)
    assert error["param"].startswith("body.") and "valid integer" in error["message"], error


@pytest.mark.parametrize("model,body", [
    (protocol.ClassificationRequest, lambda t: {"input": [t]}),
    (protocol.ClassificationRequest, lambda t: {"input": [[1, t]]}),
    (protocol.PoolingRequest, lambda t: {"input": [[t]]}),
    (protocol.EmbeddingRequest, lambda t: {"input": [t, 2]}),
    (protocol.DetokenizeRequest, lambda t: {"tokens": [t]}),
    (protocol.GenerativeScoringRequest, lambda t: {"query": "q", "items": ["a"], "label_token_ids": [1, t]}),
    (protocol.GenerativeScoringRequest, lambda t: {"query": [t], "items": ["a"], "label_token_ids": [1]}),
    (protocol.GenerativeScoringRequest, lambda t: {"query": "q", "items": [[t]], "label_token_ids": [1]}),
])
def test_every_token_id_field_is_strict(model, body):
    """Also the routes MiniLM does not serve (/classify, /generative_scoring): the rule is in the schema."""
    for bad in (True, False, 1.0, 2.5):
        with pytest.raises(PydanticValidationError, match="valid integer"):
            model.model_validate(body(bad))
    model.model_validate(body(1))


def test_detokenize_integer_ids_still_work(http):
    r = http.post("/detokenize", json={"tokens": [101, 7592, 102]})
    assert r.status_code == 200 and "hello" in r.json()["prompt"]


@pytest.mark.parametrize("body,param", [
    ({"query": "q", "items": ["a"], "label_token_ids": [True]}, "body.label_token_ids.0"),
    ({"query": "q", "items": ["a"], "label_token_ids": [1.0]}, "body.label_token_ids.0"),
    ({"query": [1, 2.0], "items": ["a"], "label_token_ids": [1]}, None),
    ({"query": "q", "items": [[1, True]], "label_token_ids": [1]}, None),
], ids=["label-bool", "label-float", "query-float", "item-bool"])
def test_generative_token_ids_must_be_integers(smol_server, body, param):
    with smol_server.client(headers={"Authorization": f"Bearer {API_KEY}"}) as c:
        error = assert_error(c.post("/generative_scoring", json=body), 400)
    assert "valid integer" in error["message"]
    assert error["param"] == param if param else error["param"].startswith("body.")


# -- lone surrogates -------------------------------------------------------------------------------------------
SURROGATES = [
    ("/v1/embeddings", b'{"input": "\\ud800"}', "body.input", None),
    ("/v1/embeddings", b'{"input": ["ok", "x\\udc00"]}', "body.input", "[1]"),
    ("/rerank", b'{"query": "\\ud800", "documents": ["a"]}', "body.query", None),
    ("/rerank", b'{"query": "q", "documents": ["a", {"text": "\\ud800"}]}', "body.documents", "[1].text"),
    ("/score", b'{"queries": "q", "documents": "d", "instruction": "\\ud800"}', "body.instruction", None),
    ("/score", b'{"queries": "q", "documents": "d", "chat_template_kwargs": {"a": ["\\udfff"]}}',
     "body.chat_template_kwargs", "a[0]"),
    ("/tokenize", b'{"prompt": "\\ud800"}', "body.prompt", None),
    ("/tokenize", b'{"messages": [{"role": "user", "content": "\\ud800"}]}', "body.messages.0", "content"),
    ("/v1/embeddings", b'{"input": "x", "model": "\\ud800"}', "body.model", None),
]


@pytest.mark.parametrize("path,body,param,where", SURROGATES)
def test_lone_surrogates_are_refused_naming_the_field(http, path, body, param, where):
    error = assert_error(post_raw(http, path, body), 400, param, "lone UTF-16 surrogate")
    if where:
        assert f"`{where}`" in error["message"], error
    assert "TextEncodeInput" not in error["message"]


def test_paired_surrogates_are_one_character(http):
    r = post_raw(http, "/tokenize", b'{"prompt": "\\ud83d\\ude00 ok"}')
    assert r.status_code == 200, r.text


# -- 500s and library errors -----------------------------------------------------------------------------------
class Secret(Exception):
    pass


class Echo(BaseModel):
    text: str


@pytest.fixture(scope="module")
def failing_app():
    app = FastAPI()
    errors.install(app)

    @app.post("/boom")
    async def boom():
        raise Secret("/home/model/weights.bin at 0x7f00deadbeef: secret internals")

    @app.post("/type")
    async def type_error():
        raise TypeError("TextEncodeInput must be Union[TextInputSequence, Tuple[InputSequence, InputSequence]]")

    @app.post("/value")
    async def value_error():
        raise ValueError("Cannot use chat template functions because tokenizer.chat_template is not set")

    @app.post("/not-implemented")
    async def not_implemented():
        raise NotImplementedError("Could not run 'aten::foo' with arguments from the 'Meta' backend")

    @app.post("/inner-validation")
    async def inner_validation():
        Echo.model_validate({"text": 3})

    @app.post("/ours")
    async def ours():
        raise ValidationError("token id 99999 is out of vocabulary range [0, 30522).", param="tokens")

    @app.post("/unicode")
    async def unicode_error():
        "\ud800".encode("utf-8")

    @app.post("/gone")
    async def gone():
        raise errors.ClientDisconnected()

    return app


@pytest.fixture()
def failing(failing_app):
    from starlette.testclient import TestClient

    with TestClient(failing_app, raise_server_exceptions=False) as client:
        yield client


def test_500_is_generic_with_the_request_id_and_details_only_in_the_log(failing, caplog):
    with caplog.at_level(logging.ERROR, logger="scorekit.server"):
        r = failing.post("/boom", headers={"X-Request-Id": "req-42"})
    error = assert_error(r, 500, None, "request id req-42")
    assert error["type"] == "InternalServerError"
    assert "secret" not in r.text and "Secret" not in r.text and "/home" not in r.text
    assert r.headers["x-request-id"] == "req-42"
    logged = [rec for rec in caplog.records if "req-42" in rec.getMessage()]
    assert logged and logged[0].exc_info and "secret internals" in str(logged[0].exc_info[1])


def test_500_without_a_request_id_gets_a_fresh_one(failing):
    first, second = (assert_error(failing.post("/boom"), 500)["message"] for _ in range(2))
    assert "request id " in first and first != second


@pytest.mark.parametrize("path,status,secret", [
    ("/type", 400, "TextEncodeInput"), ("/value", 400, "chat_template"), ("/not-implemented", 501, "aten"),
])
def test_library_errors_keep_vllms_status_without_their_text(failing, caplog, path, status, secret):
    with caplog.at_level(logging.WARNING, logger="scorekit.server"):
        r = failing.post(path, headers={"X-Request-Id": "lib-7"})
    error = assert_error(r, status, None, "request id lib-7")
    assert secret not in r.text
    assert error["type"] == ("BadRequestError" if status == 400 else "NotImplementedError")
    assert any(secret in str(rec.exc_info[1]) for rec in caplog.records if rec.exc_info)


def test_our_own_errors_keep_their_words(failing):
    assert_error(failing.post("/ours"), 400, "tokens", "out of vocabulary range")


def test_validation_inside_a_route_reads_like_a_schema_error(failing):
    error = assert_error(failing.post("/inner-validation"), 400, "text", "1 validation error", "string_type")
    assert error["type"] == "Bad Request"


def test_unicode_errors_are_400(failing):
    assert_error(failing.post("/unicode"), 400, None, "not valid Unicode")


def test_client_disconnected_is_499_without_a_traceback(failing, caplog):
    with caplog.at_level(logging.INFO, logger="scorekit.server"):
        r = failing.post("/gone")
    assert_error(r, 499, None)
    assert r.json()["error"]["type"] == "ClientDisconnected"
    assert all(rec.exc_info is None for rec in caplog.records)
