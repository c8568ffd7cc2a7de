"""Many concurrent clients: each gets its own answers back, and the engine merged their work into shared batches."""

from __future__ import annotations

import asyncio

import httpx
import pytest

WORDS = "river mountain forest desert ocean island valley glacier canyon meadow".split()


def _request(i: int) -> dict:
    return {"queries": f"tell me about the {WORDS[i % 10]} number {i}",
            "documents": [f"a {WORDS[(i + k) % 10]} " * (1 + (i + k) % 7) for k in range(4)]}


def test_concurrent_clients_get_their_own_answers(server, minilm):
    n = 48
    expected = [[o.outputs.score for o in minilm.score(r["queries"], r["documents"], use_tqdm=False)]
                for r in map(_request, range(n))]
    batches_before = minilm.engine.stats.batches

    async def fire():
        async with httpx.AsyncClient(base_url=server.url, timeout=120, trust_env=False) as client:
            return await asyncio.gather(*(client.post("/score", json=_request(i)) for i in range(n)))

    responses = asyncio.run(fire())
    for i, response in enumerate(responses):
        assert response.status_code == 200
        assert [d["score"] for d in response.json()["data"]] == pytest.approx(expected[i], abs=1e-5)
    assert minilm.engine.stats.batches - batches_before < n  # requests shared batches
