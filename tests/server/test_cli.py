"""`scorekit serve` and `scorekit run-batch` as a user runs them (subprocesses, loopback only)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import httpx
import pytest

from scorekit.models.packaged import default_model_dir


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cli_server(tmp_path_factory, cli_server_starter):
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    proc, url = cli_server_starter(["--served-model-name", "mini", "minilm-alias", "--enable-request-id-headers"],
                                   log_path, env={"SCOREKIT_API_KEY": "env-key"})
    try:
        yield url, log_path
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_serve_default_model_with_env_key(cli_server):
    url, log_path = cli_server
    with httpx.Client(base_url=url, trust_env=False, timeout=60) as c:
        assert c.post("/rerank", json={"query": "q", "documents": ["d"]}).status_code == 401
        r = c.post("/rerank", json={"model": "minilm-alias", "query": "capital of France", "documents": ["Paris", "bananas"]},
                   headers={"Authorization": "Bearer env-key"})
        assert r.status_code == 200 and r.json()["model"] == "mini" and r.json()["results"][0]["index"] == 0
        assert "x-request-id" in r.headers
    log = log_path.read_text()
    assert f"on http://{url.removeprefix('http://')}" in log and "sentence-transformers/all-MiniLM-L6-v2" in log


def test_run_batch(tmp_path):
    lines = [
        {"custom_id": "s", "method": "POST", "url": "/v1/score", "body": {"model": "m", "queries": "a", "documents": ["a", "b"]}},
        {"custom_id": "r", "method": "POST", "url": "/v2/rerank", "body": {"query": "capital of France", "documents": ["bananas", "Paris"]}},
        {"custom_id": "e", "method": "POST", "url": "/v1/embeddings", "body": {"input": "hello"}},
        {"custom_id": "bad", "method": "POST", "url": "/score", "body": {"queries": "a", "documents": []}},
        {"custom_id": "url", "method": "POST", "url": "/tokenize", "body": {"prompt": "a"}},
    ]
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text("\n".join(json.dumps(l) for l in lines) + "\n")
    done = subprocess.run([sys.executable, "-m", "scorekit.cli", "run-batch", "-i", str(inp), "-o", str(out),
                           "--model", str(default_model_dir()), "--served-model-name", "m"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "run-batch" in done.stderr  # the tqdm progress bar
    results = [json.loads(l) for l in out.read_text().splitlines()]
    assert [r["custom_id"] for r in results] == ["s", "r", "e", "bad", "url"]
    assert results[0]["response"]["body"]["data"][0]["score"] == pytest.approx(1.0, abs=1e-5)
    assert results[1]["response"]["body"]["results"][0]["index"] == 1 and results[1]["error"] is None
    assert len(results[2]["response"]["body"]["data"][0]["embedding"]) == 384
    assert results[3]["response"]["status_code"] == 400
    assert results[3]["error"] == "At least one text_pair element must be given"
    assert results[4]["response"] is None and "not supported" in results[4]["error"]


def test_run_batch_generative_scoring(tmp_path, tiny_llama):
    """run-batch takes /generative_scoring lines; each equals LLM.generative_score on the same model."""
    from scorekit import LLM

    folder, _, _ = tiny_llama
    query, items, labels = "Is Paris a capital? Answer:", [" Yes, it is.", " No."], [100, 200]
    lines = [{"custom_id": "g", "method": "POST", "url": "/generative_scoring",
              "body": {"query": query, "items": items, "label_token_ids": labels}},
             {"custom_id": "no-labels", "method": "POST", "url": "/generative_scoring",
              "body": {"query": query, "items": items}}]
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text("\n".join(json.dumps(l) for l in lines) + "\n")
    done = subprocess.run([sys.executable, "-m", "scorekit.cli", "run-batch", "-i", str(inp), "-o", str(out),
                           "--model", str(folder), "--runner", "generate"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    results = {r["custom_id"]: r for r in map(json.loads, out.read_text().splitlines())}
    body = results["g"]["response"]["body"]
    assert results["g"]["error"] is None and body["id"].startswith("generative-scoring-")
    expected = [o.outputs.score for o in LLM(str(folder), runner="generate").generative_score(query, items, labels)]
    assert [d["score"] for d in body["data"]] == pytest.approx(expected, abs=1e-6)
    assert results["no-labels"]["response"]["status_code"] == 400
