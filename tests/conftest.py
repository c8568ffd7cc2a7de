"""Shared fixtures: real packaged models, loaded once per test session (loading is the slow part), and real
servers on free loopback ports, in background threads."""

from __future__ import annotations

import os
import socket
import threading
import time

import httpx
import pytest
import uvicorn

from scorekit.config import ServerConfig
from scorekit.server.app import build_app

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may reach a model hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def minilm_dir():
    from scorekit.models.packaged import default_model_dir

    return default_model_dir()


@pytest.fixture(scope="session")
def minilm_llm():
    from scorekit import LLM

    # No output cache for the shared models: many tests count the work the engine does, and a prompt another
    # test sent first would be a cache hit. tests/engine/test_cache.py tests the cache on models of its own.
    return LLM(score_cache_bytes=0)


@pytest.fixture(scope="session")
def smollm2_path():
    from scorekit.models.packaged import smollm2_gguf

    return smollm2_gguf()


@pytest.fixture(scope="session")
def smollm2_llm(smollm2_path):
    from scorekit import LLM

    return LLM(str(smollm2_path), runner="generate", score_cache_bytes=0)


@pytest.fixture(scope="session")
def smollm2_hf(smollm2_path):
    """transformers' own SmolLM2 on the same GGUF weights: the independent reference."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(smollm2_path.parent), gguf_file=smollm2_path.name, dtype=torch.float32)
    return model.eval()


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory, smollm2_path):
    """A tiny random Llama causal LM with SmolLM2's tokenizer, saved as a folder: (folder, model, tokenizer)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from scorekit.models.loader import load_tokenizer
    from scorekit.models.resolve import resolve_model

    folder = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = load_tokenizer(resolve_model(str(smollm2_path)))
    torch.manual_seed(3)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    model = LlamaForCausalLM(config).eval()
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder, model, tokenizer


# -- live servers ---------------------------------------------------------------------------------------------
os.environ["NO_PROXY"] = ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1", "localhost"]))
os.environ["no_proxy"] = os.environ["NO_PROXY"]

API_KEY = "sk-test-123"


class LiveServer:
    def __init__(self, app):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=120, trust_env=False, **kwargs)


@pytest.fixture(scope="session")
def minilm(minilm_llm):
    return minilm_llm  # the session-wide LLM of tests/conftest.py: loaded once for all test folders


@pytest.fixture(scope="session")
def smollm2(smollm2_llm):
    return smollm2_llm


@pytest.fixture(scope="session")
def server(minilm):
    with LiveServer(build_app(minilm, ServerConfig(served_model_names=("minilm", "sentence-transformers/all-MiniLM-L6-v2")))) as live:
        yield live


@pytest.fixture(scope="session")
def keyed_server(minilm):
    with LiveServer(build_app(minilm, ServerConfig(served_model_names=("minilm",), api_keys=(API_KEY,),
                                                 enable_request_id_headers=True))) as live:
        yield live


@pytest.fixture(scope="session")
def smol_server(smollm2):
    with LiveServer(build_app(smollm2, ServerConfig(served_model_names=("smollm2",), api_keys=(API_KEY,)))) as live:
        yield live


@pytest.fixture()
def http(server):
    with server.client() as client:
        yield client


@pytest.fixture(scope="session")
def live_server():
    """`with live_server(app) as live:` — a LiveServer for an app a test builds itself."""
    return LiveServer


def start_cli_server(args: list[str], log_path, env: dict | None = None, timeout: float = 120):
    """`scorekit serve ARGS` on a free loopback port, as a user runs it; returns (process, url) once /health
    answers, or fails the test with the server's log."""
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "scorekit.cli", "serve", "--host", "127.0.0.1", "--port",
                                 str(port), *args], stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "NO_PROXY": "127.0.0.1", **(env or {})})
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + timeout
    while True:
        try:
            if httpx.get(f"{url}/health", trust_env=False).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail("scorekit serve did not start:\n" + open(log_path).read())
        time.sleep(0.3)


@pytest.fixture(scope="session")
def cli_server_starter():
    """`proc, url = cli_server_starter(args, log_path)`: see start_cli_server."""
    return start_cli_server

