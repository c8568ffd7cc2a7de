"""Prometheus metrics (prometheus-client): requests and latency per route, queue length, tokens processed.

Each app gets its own registry, so several servers (tests) can live in one process.
"""

from __future__ import annotations

import time
from typing import Callable

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily


class EngineCollector:
    """Cumulative engine counters, read from EngineStats at scrape time."""

    def __init__(self, runner):
        self.runner = runner

    def collect(self):
        stats = self.runner.stats
        for name, doc, value in (
            ("scorekit_engine_batches", "Batches run on the model", stats.batches),
            ("scorekit_engine_sequences", "Sequences submitted to the engine", stats.sequences),
            ("scorekit_engine_deduplicated_sequences", "Submitted sequences identical to another in the same "
                                                       "group, not run again", stats.deduplicated),
            ("scorekit_engine_tokens", "Real tokens run on the model (rate() = tokens per second)", stats.real_tokens),
            ("scorekit_engine_padded_tokens", "Tokens run including padding", stats.padded_tokens),
            ("scorekit_engine_prefix_cache_hit_tokens", "Tokens served from a shared-prefix KV cache instead of "
                                                         "recomputed", stats.prefix_hit_tokens),
            ("scorekit_score_cache_hits", "Prompts answered from the output cache (--score-cache-bytes)",
             self.runner.cache.hits),
            ("scorekit_score_cache_misses", "Prompts the output cache did not hold", self.runner.cache.misses),
        ):
            yield CounterMetricFamily(name, doc, value=value)
        yield GaugeMetricFamily("scorekit_score_cache_bytes", "Bytes held by the output cache", value=self.runner.cache.bytes)
        yield GaugeMetricFamily("scorekit_engine_queue_sequences", "Sequences waiting in the engine queue",
                                value=self.runner.scheduler.queued_prompts)


class Metrics:
    def __init__(self, queue_length: Callable[[], float], runner=None):
        self.registry = CollectorRegistry()
        self.requests = Counter("scorekit_requests", "HTTP requests by route, method and status",
                                ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram("scorekit_request_duration_seconds", "HTTP request latency by route",
                                 ["route", "method"], registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
        self.queue = Gauge("scorekit_queue_length", "Requests waiting for the engine or running on it",
                           registry=self.registry)
        self.queue.set_function(queue_length)
        self.tokens = Counter("scorekit_prompt_tokens", "Prompt tokens processed by route", ["route"],
                              registry=self.registry)
        self.batch_size = Histogram("scorekit_engine_batch_size", "Sequences per model batch", registry=self.registry,
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512))
        self.padding = Histogram("scorekit_engine_batch_padding_fraction", "Fraction of a batch that is padding",
                                 registry=self.registry, buckets=(0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0))
        if runner is not None:
            self.registry.register(EngineCollector(runner))
            runner.stats.listeners.append(self._observe_batch)

    def _observe_batch(self, rows: int, real: int, padded: int) -> None:
        self.batch_size.observe(rows)
        self.padding.observe(1 - real / padded if padded else 0.0)

    def middleware(self, app):
        """ASGI middleware counting requests and timing them per route. Plain ASGI rather than
        `@app.middleware("http")`, whose wrapper (a task group and memory streams per request) cost more
        CPU than the rest of an embedding request's routing."""

        async def metrics_app(scope, receive, send):
            if scope["type"] != "http":
                return await app(scope, receive, send)
            start = time.perf_counter()
            status = 500  # unless the app answers: an exception escaping it becomes a 500 further out

            async def send_status(message):
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await app(scope, receive, send_status)
            finally:
                route = scope.get("route")  # set by the router on this same scope
                path = getattr(route, "path", None) or "<unmatched>"
                method = scope.get("method", "")
                self.requests.labels(route=path, method=method, status=str(status)).inc()
                self.latency.labels(route=path, method=method).observe(time.perf_counter() - start)

        return metrics_app

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
