"""Two Ray nodes on one machine (ray.cluster_utils.Cluster): the two replicas land one on each node and answer
through the head's proxy as the offline API does."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_replicas_on_both_nodes_of_a_two_node_cluster(minilm_llm):
    pytest.importorskip("ray")
    script = Path(__file__).with_name("two_node_cluster.py")
    done = subprocess.run([sys.executable, str(script), str(_free_port()), str(_free_port())], capture_output=True,
                          text=True, timeout=240, env={**os.environ, "NO_PROXY": "127.0.0.1"})
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(next(l for l in done.stdout.splitlines() if l.startswith('{"nodes"')))  # Ray prints too
    assert len(result["nodes"]) == 2
    assert sorted(result["replica_nodes"]) == sorted(result["nodes"])  # one replica on each node
    offline = [o.outputs.score for o in minilm_llm.score("capital of France?", ["Paris", "bananas"], use_tqdm=False)]
    for scores in result["scores"]:
        assert scores == pytest.approx(offline, abs=1e-5)
