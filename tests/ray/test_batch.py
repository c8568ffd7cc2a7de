"""`scorekit run-batch --ray-actors 2` writes the same file as `scorekit run-batch` in one process."""

from __future__ import annotations

import json

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


def _without_run_ids(line: str) -> str:
    """Each run draws fresh request ids (`batch-<random>`, `score-<uuid>`) and timestamps, with or without Ray;
    everything else — order, custom ids, statuses, scores to the last bit, errors — must be identical."""
    row = json.loads(line)
    row.pop("id")
    body = (row.get("response") or {}).get("body") or {}
    if row.get("response"):
        row["response"].pop("request_id")
    for key in ("id", "created"):
        body.pop(key, None)
    return json.dumps(row)


def test_run_batch_with_and_without_ray_actors_identical(ray_address, tmp_path, actor_cpus):
    src = tmp_path / "in.jsonl"
    src.write_text(_requests())
    plain, on_ray = tmp_path / "plain.jsonl", tmp_path / "ray.jsonl"
    assert main(["run-batch", "-i", str(src), "-o", str(plain), "--no-progress"]) == 0
    assert main(["run-batch", "-i", str(src), "-o", str(on_ray), "--ray-actors", "2", "--ray-actor-cpus", str(actor_cpus)]) == 0

    a, b = plain.read_text().splitlines(), on_ray.read_text().splitlines()
    assert len(a) == len(b) == 26
    assert [_without_run_ids(x) for x in a] == [_without_run_ids(x) for x in b]
    statuses = [(json.loads(x)["response"] or {}).get("status_code") for x in b]
    assert statuses.count(200) == 18 and statuses.count(400) == 6 and statuses.count(None) == 2
