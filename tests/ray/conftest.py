"""One local Ray instance (2 CPUs) for the whole test run; the Serve app for the serve tests of one module.

The serve tests run `scorekit serve --ray-address ... --ray-replicas 2` as a user would, once, joining this
test process's Ray instance, so the tests can look at the replicas through Ray's own state API. Replicas and
actors reserve a quarter CPU each (one torch thread): two of each leave Ray Data's read and write tasks
(1 CPU each) room to run beside them.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

ray = pytest.importorskip("ray", reason='the Ray tests need the ray extra: pip install "scorekit[ray]"')

os.environ["NO_PROXY"] = ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1", "localhost"]))
os.environ["no_proxy"] = os.environ["NO_PROXY"]

API_KEY = "sk-ray-test"
REPLICA_CPUS = 0.25
ACTOR_CPUS = 0.25
REPLICA_CLASS = "ServeReplica:scorekit:scorekit"  # ServeReplica:<application>:<deployment>


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def ray_address():
    """Ray's GCS address of the one local instance (started once: ~10 s)."""
    context = ray.init(num_cpus=2, include_dashboard=True, dashboard_host="127.0.0.1", dashboard_port=free_port(),
                       log_to_driver=False)
    yield context.address_info["gcs_address"]
    ray.shutdown()


def _alive_replicas() -> list:
    from ray.util.state import list_actors

    return list_actors(filters=[("class_name", "=", REPLICA_CLASS), ("state", "=", "ALIVE")], detail=True)


@pytest.fixture()
def actor_cpus():
    return ACTOR_CPUS


@pytest.fixture()
def alive_replicas():
    """The live replica actors of `scorekit serve --ray-replicas`, from Ray's state API."""
    return _alive_replicas


class ServeProcess:
    """`scorekit serve --ray-replicas 2` in a subprocess, joined to the session's Ray instance."""

    def __init__(self, address: str, log_path):
        self.api_key = API_KEY
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        with open(log_path, "w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "scorekit.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                 "--ray-address", address, "--ray-replicas", "2", "--ray-replica-cpus", str(REPLICA_CPUS),
                 "--api-key", API_KEY, "--served-model-name", "minilm"],
                stdout=log, stderr=subprocess.STDOUT)
        self.started = time.time()
        deadline = time.time() + 180
        while "scorekit serving on Ray Serve" not in log_path.read_text():
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()
                raise RuntimeError("scorekit serve --ray-replicas did not start:\n" + log_path.read_text())
            time.sleep(0.5)
        self.start_seconds = time.time() - self.started

    def client(self, key: str | None = API_KEY, timeout: float = 120) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, timeout=timeout, trust_env=False, headers=headers)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture(scope="session")  # Serve's proxy port is cluster-wide: one deployment for the test run
def ray_server(ray_address, tmp_path_factory):
    server = ServeProcess(ray_address, tmp_path_factory.mktemp("ray_serve") / "serve.log")
    try:
        yield server
    finally:
        server.stop()
