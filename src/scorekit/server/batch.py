"""`scorekit run-batch`: one OpenAI-batch-style request per JSONL line, run through the server's own routes
(in process, over ASGI: the same guards, handlers and engine door as HTTP requests).

Input line:  {"custom_id": "...", "method": "POST", "url": "/v1/score", "body": {...}}
Output line: {"id": "batch-…", "custom_id": "...", "response": {"status_code", "request_id", "body"}, "error": null}
A request that fails keeps its line: `response.body` holds the error body, `error` its message.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path

import httpx
from tqdm import tqdm

from scorekit.server.route_table import batch_urls

BATCH_URLS = batch_urls()  # the route table marks which of its routes a batch file may name


def _error_line(custom_id, message: str) -> dict:
    return {"id": f"batch-{secrets.token_hex(8)}", "custom_id": custom_id, "response": None, "error": message}


async def run_line(client: httpx.AsyncClient, line: str) -> dict:
    try:
        request = json.loads(line)
    except json.JSONDecodeError as exc:
        return _error_line(None, f"invalid JSON line: {exc}")
    if not isinstance(request, dict):
        return _error_line(None, "each line must be a JSON object")
    custom_id = request.get("custom_id")
    url = request.get("url")
    if url not in BATCH_URLS:
        return _error_line(custom_id, f"url {url!r} is not supported; use one of {', '.join(BATCH_URLS)}")
    if str(request.get("method", "POST")).upper() != "POST":
        return _error_line(custom_id, "only POST requests are supported")
    request_id = f"batch-{secrets.token_hex(8)}"
    response = await client.post(url, json=request.get("body") or {}, headers={"X-Request-Id": request_id})
    body = response.json()
    error = None
    if response.status_code != 200:
        error = body.get("error", {}).get("message") if isinstance(body.get("error"), dict) else str(body)
    return {"id": request_id, "custom_id": custom_id,
            "response": {"status_code": response.status_code, "request_id": request_id, "body": body},
            "error": error}


async def run_batch_async(app, input_path: str, output_path: str, progress: bool = True) -> tuple[int, int]:
    """Returns (requests, failures). Lines are processed in order; blank lines are skipped."""
    lines = [l for l in Path(input_path).read_text().splitlines() if l.strip()]
    failures = 0
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://scorekit.batch") as client:
        with open(output_path, "w") as out:
            for line in tqdm(lines, desc="run-batch", unit="req", disable=not progress):
                result = await run_line(client, line)
                failures += result["error"] is not None
                out.write(json.dumps(result) + "\n")
    return len(lines), failures


def run_batch(app, input_path: str, output_path: str, progress: bool = True) -> tuple[int, int]:
    return asyncio.run(run_batch_async(app, input_path, output_path, progress))
