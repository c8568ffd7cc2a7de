"""`scorekit run-batch --ray-actors 2` writes the same file as `scorekit run-batch` in one process."""

from __future__ import annotations

import json
import math

from scorekit.cli import main

QUERY = "What is the capital of France?"


def _requests():
    lines = []
    for i in range(24):
        kind = i % 4
        if kind == 0:
            body = {"url": "/v1/score", "body": {"text_1": QUERY, "text_2": [f"Paris {i}", f"Bananas {i}"]}}
        elif kind == 1:
            body = {"url": "/v1/rerank", "body": {"query": QUERY, "documents": ["Berlin.", f"Paris, France {i}."]}}
        elif kind == 2:
            body = {"url": "/v1/embeddings", "body": {"input": [f"sentence {i}", "another one"]}}
        else:
            body = {"url": "/v1/score", "body": {"text_1": ["a", "b"], "text_2": ["c", "d", "e"]}}  # a 400
        lines.append(json.dumps({"custom_id": f"req-{i}", "method": "POST", **body}))
    lines.insert(5, "{not json")  # an invalid line keeps its place, as an error line
    lines.insert(9, json.dumps({"custom_id": "bad-url", "url": "/nope", "body": {}}))
    return "\n".join(lines) + "\n"


def _without_run_ids(line: str) -> dict:
    """Each run draws fresh request ids (`batch-<random>`, `score-<uuid>`) and timestamps, with or without Ray;
    everything else — order, custom ids, statuses, scores, errors — must be the same."""
    row = json.loads(line)
    row.pop("id")
    body = (row.get("response") or {}).get("body") or {}
    if row.get("response"):
        row["response"].pop("request_id")
    for key in ("id", "created"):
        body.pop(key, None)
    return row


def _same(a, b) -> bool:
    """Equal, but floats only to float32 rounding: an actor runs fewer torch threads than the local run, and on
    some CPUs (seen on CI) the matmul splits its sums differently with another thread count, moving the last
    bits (0.527216911 against 0.527216971)."""
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def test_run_batch_with_and_without_ray_actors_identical(ray_address, tmp_path, actor_cpus):
    src = tmp_path / "in.jsonl"
    src.write_text(_requests())
    plain, on_ray = tmp_path / "plain.jsonl", tmp_path / "ray.jsonl"
    assert main(["run-batch", "-i", str(src), "-o", str(plain), "--no-progress"]) == 0
    assert main(["run-batch", "-i", str(src), "-o", str(on_ray), "--ray-actors", "2", "--ray-actor-cpus", str(actor_cpus)]) == 0

    a, b = plain.read_text().splitlines(), on_ray.read_text().splitlines()
    assert len(a) == len(b) == 26
    for x, y in zip(a, b):
        assert _same(_without_run_ids(x), _without_run_ids(y)), (x, y)
    statuses = [(json.loads(x)["response"] or {}).get("status_code") for x in b]
    assert statuses.count(200) == 18 and statuses.count(400) == 6 and statuses.count(None) == 2
