"""/metrics shows the engine: batches, batch size and padding histograms, tokens, prefix-cache hits, queue."""

import re


def _value(text: str, name: str) -> float:
    match = re.search(rf"^{name} ([0-9.e+-]+)$", text, re.M)
    assert match, f"{name} missing from /metrics"
    return float(match.group(1))


def test_engine_metrics_move_with_work(http):
    before = http.get("/metrics").text
    response = http.post("/score", json={"queries": "metrics query", "documents": ["one doc", "another document here"]})
    assert response.status_code == 200
    after = http.get("/metrics").text
    assert _value(after, "scorekit_engine_batches_total") > _value(before, "scorekit_engine_batches_total")
    assert _value(after, "scorekit_engine_tokens_total") > _value(before, "scorekit_engine_tokens_total")
    assert _value(after, "scorekit_engine_batch_size_count") > _value(before, "scorekit_engine_batch_size_count")
    assert "scorekit_engine_batch_padding_fraction_bucket" in after
    assert _value(after, "scorekit_engine_prefix_cache_hit_tokens_total") >= 0
    assert _value(after, "scorekit_engine_queue_sequences") >= 0
