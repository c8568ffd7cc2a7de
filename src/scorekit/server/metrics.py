"""Prometheus metrics (prometheus-client): requests and latency per route, queue length, tokens processed.

Each app gets its own registry, so several servers (tests) can live in one process.
"""

from __future__ import annotations

import time
from typing import Callable

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self, queue_length: Callable[[], float]):
        self.registry = CollectorRegistry()
        self.requests = Counter("scorekit_requests", "HTTP requests by route, method and status",
                                ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram("scorekit_request_duration_seconds", "HTTP request latency by route",
                                 ["route", "method"], registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
        self.queue = Gauge("scorekit_queue_length", "Model calls waiting or running", registry=self.registry)
        self.queue.set_function(queue_length)
        self.tokens = Counter("scorekit_prompt_tokens", "Prompt tokens processed by route", ["route"],
                              registry=self.registry)

    async def middleware(self, request: Request, call_next):
        start = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            path = getattr(route, "path", None) or "<unmatched>"
            self.requests.labels(route=path, method=request.method, status=str(status)).inc()
            self.latency.labels(route=path, method=request.method).observe(time.perf_counter() - start)

    def router(self) -> APIRouter:
        router = APIRouter(tags=["server"])

        @router.get("/metrics", summary="Prometheus metrics",
                    description="Request counts and latencies per route, queue length, prompt tokens processed. "
                                "Never guarded by --api-key.",
                    response_class=Response,
                    responses={200: {"content": {"text/plain": {"example": "scorekit_requests_total{...} 3.0"}}}})
        async def metrics() -> Response:
            return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

        return router
