"""The fast lane (server/fast_lane.py): valid POST /v1/embeddings requests skip FastAPI's machinery; everything
else reaches the FastAPI app exactly as it came, so its errors are FastAPI's own."""

from __future__ import annotations

import asyncio
import json
import re
import pytest
from pydantic import BaseModel

from scorekit.errors import ValidationError
from scorekit.server.auth import ApiKeyAuth
from scorekit.server.fast_lane import FastLane
from scorekit.server.responses import ORJSONBody

API_KEY = "sk-test-123"  # the key conftest.keyed_server uses


class _Body(BaseModel):
    input: str


class _Downstream:
    """The FastAPI app behind the lane: records what reached it, with the body it could read."""

    def __init__(self):
        self.calls = []

    async def __call__(self, scope, receive, send):
        message = await receive()
        self.calls.append((scope["path"], message.get("body")))
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def _lane(handler, keys=None):
    downstream = _Downstream()
    return FastLane(downstream, "STATE", ApiKeyAuth(keys), {"/x": (_Body, handler)}), downstream


def _call(lane, body: bytes, path="/x", method="POST", headers=None):
    headers = headers if headers is not None else [(b"content-type", b"application/json")]
    scope = {"type": "http", "method": method, "path": path, "headers": headers}
    sent = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600)  # the client stays connected

    async def send(message):
        sent.append(message)

    asyncio.run(lane(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    payload = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, payload, scope


def test_a_valid_request_is_answered_by_the_handler_alone():
    seen = []

    async def handler(state, body, request):
        seen.append((state, body.input, request.headers["content-type"]))
        return ORJSONBody({"echo": body.input})

    lane, downstream = _lane(handler)
    status, payload, scope = _call(lane, b'{"input": "hello"}')
    assert (status, json.loads(payload)) == (200, {"echo": "hello"})
    assert seen == [("STATE", "hello", "application/json")] and downstream.calls == []
    assert scope["route"].path == "/x"  # the metrics middleware labels the request with its route


@pytest.mark.parametrize("body, headers", [
    (b'{"input": 3}', None),  # fails validation: FastAPI words the 400
    (b'{"input": ', None),  # not JSON
    (b'{"input": "x"}', [(b"content-type", b"text/plain")]),  # wrong media type
])
def test_what_the_lane_does_not_take_reaches_the_app_with_its_body(body, headers):
    async def handler(state, body, request):
        raise AssertionError("the handler must not run")

    lane, downstream = _lane(handler)
    status, _, _ = _call(lane, body, headers=headers)
    assert status == 299 and downstream.calls == [("/x", body)]


def test_a_wrong_api_key_and_other_routes_reach_the_app():
    async def handler(state, body, request):
        return ORJSONBody({})

    lane, downstream = _lane(handler, keys=["k"])
    json_type = (b"content-type", b"application/json")
    assert _call(lane, b'{"input": "x"}', headers=[json_type, (b"authorization", b"Bearer wrong")])[0] == 299
    assert _call(lane, b'{"input": "x"}', headers=[json_type, (b"authorization", b"Bearer k")])[0] == 200
    assert _call(lane, b'{"input": "x"}', path="/other")[0] == 299
    assert _call(lane, b"", method="GET")[0] == 299
    assert len(downstream.calls) == 3


def test_an_error_raised_by_the_handler_gets_the_apps_error_shape():
    async def handler(state, body, request):
        raise ValidationError("input is too long", param="input")

    lane, downstream = _lane(handler)
    status, payload, _ = _call(lane, b'{"input": "x"}')
    assert status == 400 and downstream.calls == []
    assert json.loads(payload) == {"error": {"message": "input is too long", "type": "BadRequestError",
                                             "param": "input", "code": 400}}


# -- on a real server -------------------------------------------------------------------------------------------

def test_the_lane_serves_keyed_requests_with_request_ids_and_metrics(keyed_server, minilm):
    with keyed_server.client() as http:
        def count() -> float:
            text = http.get("/metrics").text
            found = re.search(r'scorekit_requests_total\{method="POST",route="/v1/embeddings",status="200"\} (\S+)',
                              text)
            return float(found.group(1)) if found else 0.0

        before = count()
        r = http.post("/v1/embeddings", json={"input": "a river"}, headers={"Authorization": f"Bearer {API_KEY}",
                                                                          "X-Request-Id": "lane-7"})
        assert r.status_code == 200 and r.headers["x-request-id"] == "lane-7" and r.json()["id"] == "embd-lane-7"
        want = minilm.embed(["a river"], use_tqdm=False)[0].outputs.embedding
        assert r.json()["data"][0]["embedding"] == pytest.approx(want, abs=1e-6)
        assert count() == before + 1  # counted once, though the lane sits in front of the FastAPI routes
        unauthorised = http.post("/v1/embeddings", json={"input": "a river"})
        assert unauthorised.status_code == 401 and unauthorised.headers["www-authenticate"] == "Bearer"


def test_validation_errors_are_fastapis_own(http):
    r = http.post("/v1/embeddings", json={"input": "x", "encoding_format": "nope"})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["param"] == "body.encoding_format" and error["message"].startswith("1 validation error:")
