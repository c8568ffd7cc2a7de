"""Run by test_two_node.py in its own process (a driver joins one Ray cluster only): two Ray nodes on this
machine with Ray's own ray.cluster_utils.Cluster, one CPU each, and `serve.run(build_app(num_replicas=2))`
on them. Prints one JSON line: the nodes, each replica's node, and the scores the proxy returned."""

from __future__ import annotations

import json
import sys

import httpx
import ray
from ray import serve
from ray.cluster_utils import Cluster
from ray.util.state import list_actors

from scorekit.ray import build_app


def main(port: int, dashboard_port: int) -> None:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": True,
                                                            "dashboard_host": "127.0.0.1",
                                                            "dashboard_port": dashboard_port})
    cluster.add_node(num_cpus=1)
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        cluster.wait_for_nodes()
        # Both nodes share this machine's address: one proxy, on the head, or two would want one port.
        serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_app(num_replicas=2, replica_cpus=1), name="scorekit", route_prefix="/")
        replicas = list_actors(filters=[("class_name", "=", "ServeReplica:scorekit:scorekit"),
                                        ("state", "=", "ALIVE")])
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", trust_env=False, timeout=60) as client:
            scores = [client.post("/score", json={"text_1": "capital of France?", "text_2": ["Paris", "bananas"]})
                      .json()["data"] for _ in range(4)]
        print(json.dumps({"nodes": [n["NodeID"] for n in ray.nodes() if n["Alive"]],
                          "replica_nodes": [r.node_id for r in replicas],
                          "scores": [[d["score"] for d in s] for s in scores]}))
    finally:
        serve.shutdown()
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
