"""reliability: `scorekit serve` under a bounded load-and-fault run, on the embedded all-MiniLM-L6-v2.

    python bench/reliability.py [--quick] [--no-record]

One server subprocess on a free loopback port (`--max-request-bytes` 6 MiB, so an over-limit body is cheap to
send while a 5 MB text still fits), then five phases, each bounded in requests and seconds:
1. mixed routes at concurrency 32: embeddings of 1 and 16 texts, Cohere embed, score 1×10, rerank 1×50 on all
   three rerank paths, pooling, tokenize, /invocations, and bad requests that must get their 4xx;
2. a disconnect storm: reranks of 1×400 whose sockets close (FIN or RST) 10-50 ms after sending; then the
   queue must drain, /metrics must count the 499s, and the same rerank must answer as it did before the storm;
3. an over-limit burst: bodies over --max-request-bytes (with a Content-Length, and chunked), inputs over
   --max-client-batch-size, a 5 MB text with and without truncate_prompt_tokens=-1: each its 413/400/200, fast;
4. big beside small: single-text /v1/embeddings requests, one at a time, while one 1×20,000 rerank runs, vs the
   same requests on an idle server before and after it (same run): the p50/p99 ratio is the headline;
5. the server's RSS (VmRSS, and its peak VmHWM) before phase 1 and after each phase.

Any 5xx, unexpected status, wrong answer, timeout (a hang), unhealthy server or ERROR line in the server's log
makes the exit status 1. The client (bench/fault_client.py) speaks HTTP/1.1 itself: httpx in the hot loop would
take the CPU the server needs on a 2-core machine. `--quick` shrinks every count (< 60 s) for the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import random
import re
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

import common  # noqa: F401  (sets up the path and offline mode)
from common import record, sentences
from fault_client import Connection, Response, abandon
from serve_load import Server, cpu_seconds, percentile, scorekit_server, server_env

MAX_REQUEST_BYTES = 6 << 20  # over it: 413; a 5 MB text (phase 3) still fits
MAX_CLIENT_BATCH = 32_768  # the server's default --max-client-batch-size
CONCURRENCY = 32
DIM = 384  # MiniLM's embedding size


@dataclass(frozen=True)
class Sizes:
    mixed: int  # phase 1 requests
    storm: int  # phase 2 abandoned reranks
    storm_docs: int
    over_bytes: int  # phase 3, each kind
    over_batch: int
    huge_text: int
    small_idle: int  # phase 4 small requests per idle round (two rounds: before and after the big one)
    small_max: int  # phase 4 small requests during the big one, at most
    big_docs: int
    phase_seconds: float  # time cap of phases 1-3
    big_seconds: float  # time cap of the big request


FULL = Sizes(mixed=640, storm=200, storm_docs=400, over_bytes=12, over_batch=8, huge_text=4, small_idle=150,
             small_max=600, big_docs=20_000, phase_seconds=180, big_seconds=600)
QUICK = Sizes(mixed=96, storm=24, storm_docs=400, over_bytes=2, over_batch=1, huge_text=1, small_idle=20,
              small_max=80, big_docs=2_000, phase_seconds=40, big_seconds=60)


class Run:
    """The server, the texts, and every problem seen: any problem makes the exit status 1."""

    def __init__(self, server: Server, sizes: Sizes):
        self.server, self.sizes, self.port = server, sizes, server.port
        base = sentences()
        # Distinct texts (the words of each sentence reversed as well): the engine runs identical prompts in one
        # request once, which would make the large requests cheaper than real ones.
        self.pool = base + [" ".join(reversed(s.split())) for s in base]
        self.counter = 0
        self.problems: list[str] = []
        self.rows: list[dict] = []
        self.rss: list[dict] = []

    def texts(self, n: int) -> list[str]:
        start, self.counter = self.counter, self.counter + n
        return [self.pool[(start + i) % len(self.pool)] for i in range(n)]

    def problem(self, phase: str, message: str) -> None:
        self.problems.append(f"{phase}: {message}")
        print(f"  PROBLEM {phase}: {message}", flush=True)

    def memory(self, when: str) -> dict:
        status = Path(f"/proc/{self.server.proc.pid}/status").read_text()
        kb = dict(re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", status, re.M))
        row = {"when": when, "rss_mb": int(kb["VmRSS"]) / 1024, "hwm_mb": int(kb["VmHWM"]) / 1024}
        self.rss.append(row)
        return row

    async def metrics(self) -> dict[str, float]:
        """/metrics as {series: value}, e.g. 'scorekit_requests_total{method="POST",route="/rerank",status="499"}'."""
        conn = Connection(self.port)
        try:
            r = await conn.request("GET", "/metrics", timeout=30)
        finally:
            await conn.close()
        if r.status != 200:
            raise RuntimeError(f"/metrics answered {r.status} {r.error}")
        found = re.findall(r"^([a-z_]+(?:\{[^}]*\})?) ([0-9.e+-]+)$", r.body.decode(), re.M)
        return {series: float(value) for series, value in found}

    async def healthy(self, phase: str) -> bool:
        conn = Connection(self.port)
        try:
            r = await conn.request("GET", "/health", timeout=30)
        finally:
            await conn.close()
        if r.status != 200:
            self.problem(phase, f"GET /health answered {r.status or r.error} afterwards")
        if self.server.proc.poll() is not None:
            self.problem(phase, f"the server exited with code {self.server.proc.returncode}")
            return False
        return r.status == 200

    def add_row(self, phase: str, statuses: collections.Counter, latencies: list[float], seconds: float,
                cpu: float, note: str = "", **extra) -> dict:
        lat = sorted(latencies)
        row = {"phase": phase, "requests": sum(statuses.values()), "statuses": dict(sorted(statuses.items())),
               "failures": sum(n for s, n in statuses.items() if s == 0 or s >= 500), "seconds": seconds,
               "p50_ms": 1000 * percentile(lat, 50), "p99_ms": 1000 * percentile(lat, 99),
               "max_ms": 1000 * lat[-1] if lat else None, "server_cpu_s": cpu, "note": note, **extra}
        self.rows.append(row)
        return row


def statuses_of(metrics: dict[str, float], route: str | None = None) -> collections.Counter:
    """Request counts by status from /metrics (all POST routes, or one)."""
    out: collections.Counter = collections.Counter()
    for series, value in metrics.items():
        m = re.match(r'scorekit_requests_total\{method="POST",route="([^"]*)",status="(\d+)"\}', series)
        if m and (route is None or m.group(1) == route):
            out[int(m.group(2))] += int(value)
    return out


def diff(after: collections.Counter, before: collections.Counter) -> collections.Counter:
    return collections.Counter({k: after[k] - before[k] for k in after if after[k] - before[k]})


def js(obj) -> bytes:
    return orjson.dumps(obj)


def data_of(r: Response) -> dict:
    try:
        return orjson.loads(r.body)
    except orjson.JSONDecodeError:
        return {}


# -- phase 1: mixed routes ---------------------------------------------------------------------------------

def mixed_requests(run: Run) -> list[tuple]:
    """(name, method, path, body, content type, expected status, check of a 200's JSON) per kind; the ordinary
    kinds repeat so that most of the traffic is real work."""
    q = "Where do rivers meet the sea?"
    def n_data(n):  # n embeddings of DIM floats
        return lambda d: len(d.get("data", [])) == n and all(len(x.get("embedding", [])) == DIM for x in d["data"])

    def n_results(n):
        return lambda d: len(d.get("results", [])) == n
    ordinary = [
        ("embed 1", "/v1/embeddings", lambda: {"input": run.texts(1)[0]}, n_data(1)),
        ("embed 16", "/v1/embeddings", lambda: {"input": run.texts(16)}, n_data(16)),
        ("cohere embed 4", "/v2/embed", lambda: {"texts": run.texts(4), "embedding_types": ["float"],
                                                 "input_type": "search_document"},
         lambda d: len(d.get("embeddings", {}).get("float", [])) == 4),
        ("score 1x10", "/score", lambda: {"queries": q, "documents": run.texts(10)},
         lambda d: len(d.get("data", [])) == 10),
        ("rerank 1x50", "/rerank", lambda: {"query": q, "documents": run.texts(50)}, n_results(50)),
        ("v1 rerank top 3", "/v1/rerank", lambda: {"query": q, "documents": run.texts(10), "top_n": 3}, n_results(3)),
        ("v2 rerank 1x10", "/v2/rerank", lambda: {"query": q, "documents": run.texts(10)}, n_results(10)),
        ("pooling", "/pooling", lambda: {"input": run.texts(1)[0]}, lambda d: len(d.get("data", [])) == 1),
        ("tokenize", "/tokenize", lambda: {"prompt": run.texts(1)[0]}, lambda d: d.get("count", 0) > 2),
        ("invocations", "/invocations", lambda: {"input": run.texts(2)}, n_data(2)),
    ]
    weights = {"embed 1": 4, "embed 16": 2, "score 1x10": 2, "rerank 1x50": 2, "tokenize": 2}
    bad = [
        ("bad: truncated JSON", "POST", "/v1/embeddings", b'{"input": ', "application/json", 400),
        ("bad: missing field", "POST", "/rerank", js({"query": q}), "application/json", 400),
        ("bad: unknown model", "POST", "/score", js({"model": "nope", "queries": q, "documents": ["a"]}),
         "application/json", 404),
        ("bad: text/plain", "POST", "/v1/embeddings", b"hello", "text/plain", 400),
        ("bad: top_n not a number", "POST", "/rerank", js({"query": q, "documents": ["a"], "top_n": "many"}),
         "application/json", 400),
        ("bad: no such route", "POST", "/v1/nope", js({"input": "a"}), "application/json", 404),
        ("bad: GET on a POST route", "GET", "/v1/embeddings", None, "application/json", 405),
    ]
    cycle = [(name, "POST", path, body, "application/json", 200, check)
             for name, path, body, check in ordinary for _ in range(weights.get(name, 1))]
    cycle += [(*b, None) for b in bad]
    random.Random(1).shuffle(cycle)
    return cycle


async def phase_mixed(run: Run) -> None:
    name = "1 mixed routes c=32"
    print(f"\n{name}: {run.sizes.mixed} requests …", flush=True)
    cycle = mixed_requests(run)
    statuses, latencies = collections.Counter(), []
    by_kind: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    m0, cpu0, start = await run.metrics(), cpu_seconds(run.server.proc.pid), time.perf_counter()
    deadline, next_i = start + run.sizes.phase_seconds, 0

    async def worker() -> None:
        nonlocal next_i
        conn = Connection(run.port)
        try:
            while next_i < run.sizes.mixed and time.perf_counter() < deadline:
                kind, method, path, body, ctype, expected, check = cycle[next_i % len(cycle)]
                next_i += 1
                payload = body() if callable(body) else body
                r = await conn.request(method, path, js(payload) if isinstance(payload, dict) else payload,
                                       timeout=60, content_type=ctype)
                statuses[r.status] += 1
                by_kind[kind][r.status] += 1
                latencies.append(r.seconds)
                if r.status != expected:
                    run.problem(name, f"{kind} ({method} {path}) answered {r.status or r.error}, expected "
                                      f"{expected}: {r.body[:200]!r}")
                elif check is not None and not check(data_of(r)):
                    run.problem(name, f"{kind} ({path}): 200 with a wrong answer: {r.body[:200]!r}")
        finally:
            await conn.close()

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    seconds = time.perf_counter() - start
    if next_i < run.sizes.mixed:
        run.problem(name, f"stopped at the {run.sizes.phase_seconds:.0f} s cap after {next_i} requests")
    server_side = diff(statuses_of(await run.metrics()), statuses_of(m0))
    if any(s >= 500 for s in server_side):
        run.problem(name, f"/metrics counted 5xx: {dict(server_side)}")
    await run.healthy(name)
    run.add_row(name, statuses, latencies, seconds, cpu_seconds(run.server.proc.pid) - cpu0,
                f"{next_i / seconds:.0f} req/s", by_kind={k: dict(v) for k, v in by_kind.items()},
                server_statuses=dict(server_side))


# -- phase 2: disconnect storm -----------------------------------------------------------------------------

async def rerank_scores(run: Run, body: bytes, phase: str) -> tuple[list[float], int] | None:
    """relevance_score per document index, and the prompt tokens, of one ordinary rerank."""
    conn = Connection(run.port)
    try:
        r = await conn.request("POST", "/rerank", body, timeout=120)
    finally:
        await conn.close()
    d = data_of(r)
    if r.status != 200 or "results" not in d:
        run.problem(phase, f"an ordinary /rerank answered {r.status or r.error}: {r.body[:200]!r}")
        return None
    scores = [0.0] * len(d["results"])
    for item in d["results"]:
        scores[item["index"]] = item["relevance_score"]
    return scores, d["usage"]["prompt_tokens"]


async def settle(run: Run, seconds: float) -> float | None:
    """Seconds until nothing is queued or running, from /metrics; None if it does not happen within `seconds`."""
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        m = await run.metrics()
        if m.get("scorekit_queue_length", 1) == 0 and m.get("scorekit_engine_queue_sequences", 1) == 0:
            return time.perf_counter() - start
        await asyncio.sleep(0.1)
    return None


async def phase_storm(run: Run) -> None:
    name = "2 disconnect storm"
    n, n_docs = run.sizes.storm, run.sizes.storm_docs
    print(f"\n{name}: {n} reranks of 1x{n_docs}, closed 10-50 ms after sending …", flush=True)
    query = "Which passage talks about the weather?"
    reference_body = js({"query": query, "documents": run.texts(n_docs)})
    # The engine's tokens for one whole request, measured on the reference run (the usage field counts the
    # query once per pair, while a bi-encoder runs it once).
    tokens0 = (await run.metrics()).get("scorekit_engine_tokens_total", 0)
    reference = await rerank_scores(run, reference_body, name)
    per_request = (await run.metrics()).get("scorekit_engine_tokens_total", 0) - tokens0
    bodies = [js({"query": query, "documents": run.texts(n_docs)}) for _ in range(n)]  # built before the clock
    rng = random.Random(2)
    delays = [rng.uniform(0.010, 0.050) for _ in range(n)]
    m0, cpu0, start = await run.metrics(), cpu_seconds(run.server.proc.pid), time.perf_counter()
    gate = asyncio.Semaphore(CONCURRENCY)
    answered_early = 0

    async def one(i: int) -> None:
        nonlocal answered_early
        async with gate:
            # Odd ones reset the connection (a killed client, a proxy giving up), even ones close it politely.
            answered_early += await abandon(run.port, "/rerank", bodies[i], delays[i], reset=i % 2 == 1)

    try:
        await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(n))), run.sizes.phase_seconds)
    except asyncio.TimeoutError:
        run.problem(name, f"the storm did not finish within {run.sizes.phase_seconds:.0f} s")
    sent_seconds = time.perf_counter() - start
    drained = await settle(run, 120)
    if drained is None:
        run.problem(name, "the server still had work queued or running 120 s after the storm")
    seconds = time.perf_counter() - start
    m1 = await run.metrics()
    server_side = diff(statuses_of(m1, "/rerank"), statuses_of(m0, "/rerank"))
    everything = diff(statuses_of(m1), statuses_of(m0))
    if any(s >= 500 for s in everything):
        run.problem(name, f"/metrics counted 5xx: {dict(everything)}")
    if server_side.get(499, 0) + server_side.get(200, 0) != n:
        run.problem(name, f"/metrics counted {dict(server_side)} for /rerank, expected {n} in all (499s and "
                          f"the {answered_early} answered before their close)")
    tokens = m1.get("scorekit_engine_tokens_total", 0) - m0.get("scorekit_engine_tokens_total", 0)
    healthy = await run.healthy(name)
    after = await rerank_scores(run, reference_body, name) if healthy else None
    delta = None
    if reference and after:
        delta = max(abs(a - b) for a, b in zip(reference[0], after[0]))
        if len(reference[0]) != len(after[0]) or delta > 1e-5:
            run.problem(name, f"the same rerank after the storm differs: max |delta| {delta:.2e}")
    work_share = tokens / (n * per_request) if per_request else None
    note = (f"499: {server_side.get(499, 0)}/{n}; drained {drained if drained is not None else -1:.2f} s after "
            f"the last close; engine ran {100 * work_share:.1f}% of the storm's tokens" if work_share is not None
            else "")
    run.add_row(name, collections.Counter(server_side), [], seconds, cpu_seconds(run.server.proc.pid) - cpu0, note,
                sent_seconds=sent_seconds, drain_seconds=drained, answered_before_close=answered_early,
                engine_tokens=tokens, engine_tokens_per_request=per_request,
                engine_work_share=work_share, rerank_max_abs_delta_after=delta, server_statuses=dict(everything))


# -- phase 3: over-limit burst -----------------------------------------------------------------------------

async def phase_limits(run: Run) -> None:
    name = "3 over-limit burst"
    s = run.sizes
    huge = ("the river runs through the old city " * 140_000)[:5_000_000]  # 5 MB, under the 6 MiB limit
    over = js({"input": "x" * (MAX_REQUEST_BYTES + (1 << 20))})  # 7 MiB
    many = ["a"] * (MAX_CLIENT_BATCH + 1)
    kinds = [  # (kind, path, body, chunked, expected status, repeats)
        ("body > limit (Content-Length)", "/v1/embeddings", over, False, 413, s.over_bytes),
        ("body > limit (chunked)", "/rerank", over, True, 413, max(1, s.over_bytes // 2)),
        ("inputs > limit /v1/embeddings", "/v1/embeddings", js({"input": many}), False, 413, s.over_batch),
        ("inputs > limit /rerank", "/rerank", js({"query": "q", "documents": many}), False, 413, s.over_batch),
        ("inputs > limit /score", "/score", js({"queries": "q", "documents": many}), False, 413, s.over_batch),
        ("inputs > limit /v2/embed", "/v2/embed", js({"texts": many}), False, 413, s.over_batch),
        ("5 MB text, truncate -1", "/v1/embeddings", js({"input": huge, "truncate_prompt_tokens": -1}), False, 200,
         s.huge_text),
        ("5 MB text, no truncation", "/v1/embeddings", js({"input": huge}), False, 400, s.huge_text),
    ]
    jobs = [k for k in kinds for _ in range(k[5])]
    random.Random(3).shuffle(jobs)
    print(f"\n{name}: {len(jobs)} requests at concurrency 8 …", flush=True)
    statuses, latencies = collections.Counter(), []
    worst: dict[str, float] = {}
    m0, cpu0, start = await run.metrics(), cpu_seconds(run.server.proc.pid), time.perf_counter()
    deadline, next_i = start + s.phase_seconds, 0

    async def worker() -> None:
        nonlocal next_i
        conn = Connection(run.port)
        try:
            while next_i < len(jobs) and time.perf_counter() < deadline:
                kind, path, body, chunked, expected, _ = jobs[next_i]
                next_i += 1
                r = await conn.request("POST", path, body, timeout=60, chunked=chunked)
                statuses[r.status] += 1
                latencies.append(r.seconds)
                worst[kind] = max(worst.get(kind, 0.0), r.seconds)
                if r.status != expected:
                    run.problem(name, f"{kind} answered {r.status or r.error}, expected {expected}: {r.body[:200]!r}")
                elif expected == 200 and len(data_of(r).get("data", [{}])[0].get("embedding", [])) != DIM:
                    run.problem(name, f"{kind}: 200 without a {DIM}-float embedding")
        finally:
            await conn.close()

    await asyncio.gather(*(worker() for _ in range(8)))
    seconds = time.perf_counter() - start
    if next_i < len(jobs):
        run.problem(name, f"stopped at the {s.phase_seconds:.0f} s cap after {next_i} of {len(jobs)} requests")
    server_side = diff(statuses_of(await run.metrics()), statuses_of(m0))
    if any(st >= 500 for st in server_side):
        run.problem(name, f"/metrics counted 5xx: {dict(server_side)}")
    await run.healthy(name)
    for kind, *_ in kinds:
        if kind in worst:
            print(f"  {kind:32s} max {1000 * worst[kind]:7.1f} ms", flush=True)
    slowest = max(worst, key=worst.get)
    run.add_row(name, statuses, latencies, seconds, cpu_seconds(run.server.proc.pid) - cpu0,
                f"slowest: {slowest} {1000 * worst[slowest]:.0f} ms",
                max_ms_by_kind={k: 1000 * v for k, v in worst.items()}, server_statuses=dict(server_side))


# -- phase 4: big beside small -----------------------------------------------------------------------------

async def small_round(run: Run, conn: Connection, count: int, until=None,
                      sent_at: list[float] | None = None) -> tuple[list[float], collections.Counter]:
    """Single-text embeddings one at a time: `count` of them, or fewer if `until()` becomes true first.
    `sent_at` collects when each counted one was sent (perf_counter seconds)."""
    latencies, statuses = [], collections.Counter()
    for _ in range(count):
        if until is not None and until():
            break
        sent = time.perf_counter()
        r = await conn.request("POST", "/v1/embeddings", js({"input": run.texts(1)[0]}), timeout=120)
        statuses[r.status] += 1
        if r.status == 200 and (until is None or not until()):  # during the big one: only those answered before it
            latencies.append(r.seconds)
            if sent_at is not None:
                sent_at.append(sent)
        elif r.status != 200:
            run.problem("4 big beside small", f"a small /v1/embeddings answered {r.status or r.error}")
    return latencies, statuses


async def phase_big(run: Run) -> dict:
    name = "4 big beside small"
    s = run.sizes
    docs = [f"{t} (passage {i})" for i, t in enumerate(run.texts(s.big_docs))]
    big_body = js({"query": "Where do rivers meet the sea?", "documents": docs})
    print(f"\n{name}: 1x{s.big_docs} rerank ({len(big_body) / 1e6:.1f} MB) beside single-text embeddings …",
          flush=True)
    small = Connection(run.port)
    cpu0, start = cpu_seconds(run.server.proc.pid), time.perf_counter()
    idle_before, st_before = await small_round(run, small, s.small_idle)
    big_conn = Connection(run.port)
    big_task = asyncio.create_task(big_conn.request("POST", "/rerank", big_body, timeout=s.big_seconds))
    big_start = time.perf_counter()
    await asyncio.sleep(0.05)  # the big body is on its way first
    sent_at: list[float] = []
    during, st_during = await small_round(run, small, s.small_max, until=big_task.done, sent_at=sent_at)
    big = await big_task
    big_seconds = time.perf_counter() - big_start
    await big_conn.close()
    if big.status != 200 or len(data_of(big).get("results", [])) != s.big_docs:
        run.problem(name, f"the 1x{s.big_docs} rerank answered {big.status or big.error}: {big.body[:200]!r}")
    if not during:
        run.problem(name, "no small request was answered while the big one ran")
    idle_after, st_after = await small_round(run, small, s.small_idle)
    await small.close()
    await run.healthy(name)
    idle = sorted(idle_before + idle_after)
    during_sorted = sorted(during)
    result = {"idle_p50_ms": 1000 * percentile(idle, 50), "idle_p99_ms": 1000 * percentile(idle, 99),
              "during_p50_ms": 1000 * percentile(during_sorted, 50),
              "during_p99_ms": 1000 * percentile(during_sorted, 99),
              "during_max_ms": 1000 * during_sorted[-1] if during_sorted else None,
              "idle_before_p50_ms": 1000 * percentile(sorted(idle_before), 50),
              "idle_after_p50_ms": 1000 * percentile(sorted(idle_after), 50),
              "small_during": len(during), "big_docs": s.big_docs, "big_seconds": big_seconds,
              "big_status": big.status, "big_tokens": data_of(big).get("usage", {}).get("prompt_tokens")}
    # When the slow ones were sent, from the big request's start: they show where the big one held the engine.
    slow = sorted(zip(during, sent_at), reverse=True)[:8]
    result["slowest_during"] = [{"sent_at_s": t - big_start, "ms": 1000 * lat}
                                for lat, t in sorted(slow, key=lambda x: x[1])]
    result["p50_ratio"] = result["during_p50_ms"] / result["idle_p50_ms"]
    result["p99_ratio"] = result["during_p99_ms"] / result["idle_p99_ms"]
    statuses = st_before + st_during + st_after + collections.Counter({big.status: 1})
    run.add_row(name, statuses, idle + during, time.perf_counter() - start, cpu_seconds(run.server.proc.pid) - cpu0,
                f"big 1x{s.big_docs}: {big_seconds:.1f} s, {len(during)} small during it", **result)
    return result


# -- the run ---------------------------------------------------------------------------------------------

def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return ""


def log_findings(text: str) -> tuple[list[str], collections.Counter, collections.Counter]:
    """ERROR/CRITICAL lines and tracebacks of the server's log, how many lines each level had, and the distinct
    WARNING messages (without their time stamps) with their counts."""
    levels = collections.Counter(m.group(1) for m in re.finditer(r"^(INFO|WARNING|ERROR|CRITICAL)\b", text, re.M))
    bad = [line for line in text.splitlines()
           if re.match(r"(ERROR|CRITICAL)\b", line) or line.startswith("Traceback")]
    warnings = collections.Counter(re.sub(r"^WARNING [0-9-]+ [0-9:,]+ ", "", line) for line in text.splitlines()
                                   if line.startswith("WARNING"))
    return bad, levels, warnings


def print_table(run: Run, big: dict | None) -> None:
    print(f"\nreliability: scorekit serve, all-MiniLM-L6-v2, CPU {cpu_model()}, "
          f"--max-request-bytes {MAX_REQUEST_BYTES}")
    print(f"{'phase':24s} {'requests':>8s} {'fail':>5s} {'seconds':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'max ms':>8s} "
          f"{'srv cpu s':>9s}  statuses / note")
    for r in run.rows:
        fmt = lambda v: f"{v:8.1f}" if v is not None and v == v else f"{'-':>8s}"  # noqa: E731  (NaN: no latencies)
        statuses = " ".join(f"{k}:{v}" for k, v in r["statuses"].items())
        print(f"{r['phase']:24s} {r['requests']:8d} {r['failures']:5d} {r['seconds']:8.1f} {fmt(r['p50_ms'])} "
              f"{fmt(r['p99_ms'])} {fmt(r['max_ms'])} {r['server_cpu_s']:9.1f}  {statuses}  {r['note']}")
    if big:
        print(f"\nsmall single-text embeddings, idle server: p50 {big['idle_p50_ms']:.1f} ms, p99 "
              f"{big['idle_p99_ms']:.1f} ms;  during the 1x{big['big_docs']} rerank ({big['small_during']} "
              f"requests): p50 {big['during_p50_ms']:.1f} ms, p99 {big['during_p99_ms']:.1f} ms  →  "
              f"{big['p50_ratio']:.1f}x / {big['p99_ratio']:.1f}x")
        print("  slowest during it (sent at s after the big one: ms): " + ", ".join(
            f"{x['sent_at_s']:.1f}: {x['ms']:.0f}" for x in big["slowest_during"]))
    print("server memory: " + ";  ".join(f"{m['when']} RSS {m['rss_mb']:.0f} MB (peak {m['hwm_mb']:.0f})"
                                        for m in run.rss))


async def phases(run: Run) -> dict | None:
    # Warm-up, not counted: the first requests of each kind build the kernels and caches a running server has.
    for path, body in (("/v1/embeddings", {"input": run.texts(16)}), ("/rerank", {"query": "q", "documents":
                                                                                 run.texts(50)})):
        conn = Connection(run.port)
        await conn.request("POST", path, js(body), timeout=120)
        await conn.close()
    run.memory("before")
    big = None
    for phase in (phase_mixed, phase_storm, phase_limits, phase_big):
        if run.server.proc.poll() is not None:
            run.problem(phase.__name__, "the server is gone: phase skipped")
            continue
        result = await phase(run)
        big = result if phase is phase_big else big
        run.memory(f"after {phase.__name__.removeprefix('phase_')}")
    return big


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts (< 60 s), for the test suite")
    parser.add_argument("--no-record", action="store_true", help="do not write bench/results/reliability.json")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # SIGTERM → SystemExit: `finally` stops the server

    base = scorekit_server()
    server = Server("scorekit", base.cmd + ["--max-request-bytes", str(MAX_REQUEST_BYTES)], server_env(), base.route)
    t0 = time.perf_counter()
    server.start()
    print(f"scorekit serve up on {server.base} in {time.perf_counter() - t0:.1f} s (pid {server.proc.pid})", flush=True)
    run = Run(server, sizes)
    started = time.perf_counter()
    try:
        try:
            import uvloop
            big = uvloop.run(phases(run))
        except ImportError:
            big = asyncio.run(phases(run))
        log_text = server.log_path.read_text(errors="replace")
        bad_lines, levels, warnings = log_findings(log_text)
        runtime_line = next((line.split("scorekit runtime: ", 1)[1] for line in log_text.splitlines()
                             if "scorekit runtime: " in line), "")
    finally:
        server.stop()
    for line in bad_lines[:20]:
        run.problem("server log", line)
    print_table(run, big)
    print(f"server log: {dict(levels)} lines by level; total run {time.perf_counter() - started:.0f} s")
    for message, count in warnings.most_common(5):
        print(f"  {count:4d} x WARNING {message[:150]}")
    if run.problems:
        print(f"\nFAILED: {len(run.problems)} problem(s):")
        for p in run.problems:
            print(f"  {p}")
    else:
        print("\nOK: no 5xx, no timeout, no unexpected status, the server stayed healthy, no ERROR in its log")
    if not args.no_record:
        record("reliability", {
            "quick": args.quick, "sizes": asdict(sizes), "concurrency": CONCURRENCY,
            "max_request_bytes": MAX_REQUEST_BYTES, "phases": run.rows, "big_beside_small": big, "rss": run.rss,
            "server_log_levels": dict(levels), "server_log_warnings": dict(warnings),
            "problems": run.problems, "ok": not run.problems,
        }, runtime={"cpu_model": cpu_model(), "server_runtime": runtime_line})
    return 1 if run.problems else 0


if __name__ == "__main__":
    sys.exit(main())
