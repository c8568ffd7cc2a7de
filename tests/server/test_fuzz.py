"""Property-based fuzzing of every POST route with schemathesis, from our own /openapi.json, on MiniLM.

Schemathesis generates bodies that fit the schema and bodies that break it (wrong types, missing fields,
out-of-range numbers, odd strings); whatever it sends, the answer must not be a 5xx: a client's input is
either honoured or refused with a 4xx. A failure prints the request as a curl command.

The default run is bounded and the same every time: schemathesis' deterministic coverage cases (boundary
values, missing and wrong-typed fields, other methods, which get 405) plus 12 derandomised examples per route —
about 2,000 requests over the 12 POST routes of MiniLM, ~25 s on 2 cores. `-m slow` adds at least 2,000 random
requests drawn over all the POST routes at once (~50 s).
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

TIMEOUT = 60  # seconds per request: generated batches can be large, but never this slow
SLOW_REQUESTS = 2000


@pytest.fixture(scope="module")
def post_routes(server):
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json").include(method="POST")


def check_no_server_error(case) -> None:
    response = case.call(timeout=TIMEOUT)
    assert response.status_code < 500, (f"{response.status_code} for\n{case.as_curl_command()}\n"
                                        f"{response.text[:500]}")


# The lazy schema applies its own filters, not the fixture's: POST is named again here.
schema = schemathesis.pytest.from_fixture("post_routes").include(method="POST")


@schema.parametrize()
@settings(max_examples=12, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_no_post_route_answers_5xx(case):
    check_no_server_error(case)


@pytest.mark.slow
def test_two_thousand_generated_requests_answer_no_5xx(post_routes):
    sent = 0

    @given(case=post_routes.as_strategy())
    @settings(max_examples=SLOW_REQUESTS + 200, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def fuzz(case):
        nonlocal sent
        sent += 1
        check_no_server_error(case)

    fuzz()
    assert sent >= SLOW_REQUESTS, sent
