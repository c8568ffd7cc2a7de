"""/docs and /redoc work offline: assets come from this server; every route has a summary and an example."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest

CHROMIUM = "/usr/bin/chromium"


def test_every_route_has_summary_and_example(http):
    spec = http.get("/openapi.json").json()
    assert {"/score", "/v1/score", "/rerank", "/v1/rerank", "/v2/rerank", "/v1/embeddings", "/v2/embed", "/pooling",
            "/tokenize", "/detokenize", "/v1/models", "/health", "/ping", "/version", "/metrics",
            "/invocations"} <= set(spec["paths"])
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            assert op.get("summary"), (method, path)
            if method == "post" and "requestBody" in op:
                content = op["requestBody"]["content"]["application/json"]
                assert content.get("examples"), (method, path)
            else:
                ok = op["responses"]["200"]["content"]
                assert any("example" in c or "examples" in c for c in ok.values()) or path == "/ping", (method, path)


@pytest.mark.parametrize("page,asset", [("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")])
def test_pages_reference_only_local_assets(http, page, asset):
    html = http.get(page).text
    urls = re.findall(r'(?:src|href|url)\s*[:=]\s*[\'"]([^\'"]+)[\'"]', html)
    assert urls and all(not re.match(r"^[a-z]+://|^//", u) for u in urls), urls
    assert "fonts.googleapis" not in html and "cdn" not in html.lower()
    js = http.get(f"/static-docs/{asset}")
    assert js.status_code == 200 and len(js.content) > 100_000


def page_requests(netlog: str, origin: str) -> list[str]:
    """URLs the page itself requested (initiator = our origin, or the top-level navigation), from Chromium's net log.

    Chromium's own background services (update checks, sign-in probes) have no origin; they are not the page's doing
    and --host-resolver-rules sends them nowhere anyway.
    """
    text = open(netlog).read().rstrip().rstrip(",")
    log = json.loads(text if text.endswith("}") else text + "]}")
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls = []
    for event in log["events"]:
        params = event.get("params") or {}
        if event["type"] == start_job and "url" in params:
            if params.get("initiator") in (origin, None) or params["url"].startswith(origin):
                urls.append(params["url"])
    return urls


def _dump_dom(url: str, profile: str, log_path: str) -> str:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
           "--disable-extensions", f"--user-data-dir={profile}", "--virtual-time-budget=15000",
           # every host except the loopback server resolves nowhere: a request leaving the machine would fail
           "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
           "--enable-logging=stderr", "--v=0", "--log-net-log=" + log_path, "--dump-dom", url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return out.stdout


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium not installed (apt-get install chromium)")
@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_render_in_headless_chromium_without_network(server, page):
    profile = tempfile.mkdtemp(prefix="scorekit-chromium-")
    try:
        netlog = os.path.join(profile, "netlog.json")
        dom = _dump_dom(server.url + page, profile, netlog)
        for route in ("/score", "/rerank", "/v2/rerank", "/v1/embeddings", "/tokenize"):
            assert route in dom, f"{route} not rendered by {page}"
        requested = page_requests(netlog, server.url)
        assert any(u.endswith(page) for u in requested) and any("/static-docs/" in u for u in requested)
        outside = [u for u in requested if not u.startswith((server.url, "data:", "blob:"))]
        assert not outside, f"the page requested outside URLs: {outside}"
    finally:
        shutil.rmtree(profile, ignore_errors=True)
