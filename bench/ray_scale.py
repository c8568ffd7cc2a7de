"""ray_scale: what Ray costs and gives on this machine, all-MiniLM-L6-v2, measured in one run.

    python bench/ray_scale.py [--requests 2000] [--concurrency 16] [--rounds 2] [--rows 2000]

Serving: the same load client as bench/serve_load.py (bench/load_client.py, a separate process, keep-alive
HTTP/1.1, single-text /v1/embeddings requests) against
  - `scorekit serve` in one process (2 torch threads: the whole machine),
  - Ray Serve with 1 replica of 1 CPU, and with 2 replicas of 1 CPU each, behind Serve's HTTP proxy,
in alternating order per round (the Serve app is redeployed between its two shapes). The CPU each part used
(replicas, Serve's proxy, the one-process server) comes from /proc, so the per-request overhead of the proxy is
a number, not a guess.

Offline: `score_dataset` on `rows` (query, document) pairs with 1 actor of 1 CPU and 2 actors of half a CPU
each (one torch thread each: two threads on the two cores; 2 x 1 CPU would leave Ray Data's own tasks no CPU
and hang, scorekit/ray/data.py), against
`LLM.score(queries, documents)` in this process (2 torch threads), alternating. The Ray times are wall times of
the whole Dataset run, actor start-up (model load) included, as a user sees them.

Also recorded: each replica's memory (RSS) and start-up time, and Ray's own processes' memory. docs/ray.md
turns the per-core rates into a projection for a larger cluster.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import common  # noqa: F401  (sets up the path and offline mode)
import psutil
import serve_load
from common import apply_runtime, record, sentences
from serve_load import MODEL_NAME, cpu_seconds, load_texts, run_client

REPLICA_CLASS = "ServeReplica:scorekit:scorekit"


def rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


def ray_actors(class_name: str) -> list:
    from ray.util.state import list_actors

    return list_actors(filters=[("class_name", "=", class_name), ("state", "=", "ALIVE")], detail=True)


class RayServer:
    """The Serve app in this process's Ray instance, redeployed with a given number of 1-CPU replicas."""

    def __init__(self, port: int):
        from ray import serve

        self.port, self.replicas = port, 0
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        self.proxy_pid = ray_actors("ProxyActor")[0].pid

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def deploy(self, replicas: int) -> float:
        """Seconds from serve.run to a ready app (replica processes started, model loaded)."""
        from ray import serve

        from scorekit.ray import build_app

        if self.replicas:
            serve.delete("scorekit")
        start = time.perf_counter()
        serve.run(build_app(num_replicas=replicas, replica_cpus=1, served_model_names=(MODEL_NAME,)),
                  name="scorekit", route_prefix="/")
        self.replicas = replicas
        return time.perf_counter() - start

    def pids(self) -> list[int]:
        return [a.pid for a in ray_actors(REPLICA_CLASS)]


def fresh(texts: list[str], tag: str) -> list[str]:
    """The texts made new for one measurement: the engine keeps an output cache per process, and a server that
    stays up between rounds must not answer round 2 from round 1's work while a redeployed replica cannot."""
    return [f"{text} [{tag}]" for text in texts]


def measure(url: str, pids: dict[str, list[int]], texts: list[str], concurrency: int, max_seconds: float) -> dict:
    before = {part: sum(cpu_seconds(p) for p in ps) for part, ps in pids.items()}
    result = run_client(url + "/v1/embeddings", texts, concurrency, max_seconds)
    cpu = {part: sum(cpu_seconds(p) for p in ps) - before[part] for part, ps in pids.items()}
    done = len(result["latencies"])
    lat = sorted(result["latencies"])
    return {"req_per_s": done / result["wall"], "errors": result["failures"], "p50_ms": 1000 * lat[len(lat) // 2],
            "cpu_ms_per_request": {part: 1000 * c / max(done, 1) for part, c in cpu.items()}}


def serving(args, texts: list[str]) -> dict:
    single = serve_load.scorekit_server(name="one process")
    single.start()
    ray_server = RayServer(serve_load.free_port())
    runs: dict[str, list[dict]] = {"one process (2 threads)": [], "Ray, 1 replica x 1 CPU": [],
                                   "Ray, 2 replicas x 1 CPU": []}
    starts: dict[int, list[float]] = {1: [], 2: []}
    memory: dict[str, float] = {}
    try:
        for r in range(args.rounds):
            order = [0, 1, 2] if r % 2 == 0 else [2, 1, 0]
            for which in order:
                if which == 0:
                    row = measure(single.base, {"server": [single.proc.pid]}, fresh(texts, f"{r}{which}"),
                                  args.concurrency, args.max_seconds)
                    memory["one process"] = rss_mb(single.proc.pid)
                else:
                    starts[which].append(ray_server.deploy(which))
                    pids = ray_server.pids()
                    for pid in pids:
                        memory[f"replica ({which} deployed)"] = rss_mb(pid)
                    row = measure(ray_server.base, {"replicas": pids, "proxy": [ray_server.proxy_pid]},
                                  fresh(texts, f"{r}{which}"), args.concurrency, args.max_seconds)
                name = list(runs)[which]
                runs[name].append(row)
                print(f"round {r + 1} {name:26s} {row['req_per_s']:7.1f} req/s  p50 {row['p50_ms']:6.1f} ms  "
                      f"CPU ms/request {row['cpu_ms_per_request']}  errors {row['errors']}", flush=True)
    finally:
        single.stop()
    ray_memory = {}
    for name in ("ServeController", "ProxyActor"):
        for actor in ray_actors(name):
            ray_memory[name] = rss_mb(actor.pid)
    from ray import serve

    serve.delete("scorekit")  # its replicas' CPUs go back to Ray for the Dataset runs
    summary = {name: {"req_per_s": statistics.median(x["req_per_s"] for x in rows),
                      "p50_ms": statistics.median(x["p50_ms"] for x in rows),
                      "cpu_ms_per_request": {part: statistics.median(x["cpu_ms_per_request"][part] for x in rows)
                                             for part in rows[0]["cpu_ms_per_request"]},
                      "errors": sum(x["errors"] for x in rows)}
               for name, rows in runs.items()}
    return {"summary": summary, "rounds": runs, "replica_start_s": {k: statistics.median(v) for k, v in starts.items()},
            "rss_mb": memory, "ray_actor_rss_mb": ray_memory}


def offline(args) -> dict:
    import ray

    from scorekit import LLM
    from scorekit.ray import score_dataset

    pool = sentences()
    llm = LLM()
    llm.score("warm up", ["the model"], use_tqdm=False)
    names = ["LLM.score, one process (2 threads)", "score_dataset, 1 actor x 1 CPU", "score_dataset, 2 actors x 0.5 CPU"]
    times: dict[str, list[float]] = {name: [] for name in names}
    starts: dict[str, list[float]] = {name: [] for name in names[1:]}
    for r in range(args.rounds):
        for which, name in (list(enumerate(names)) if r % 2 == 0 else list(reversed(list(enumerate(names))))):
            # every run new texts (the output cache), every text unique (the engine runs duplicates once)
            tag = f"{r}{which}"
            rows = [{"query": f"{pool[i % len(pool)]} [{tag}{i}]", "document": f"{pool[(7 * i + 3) % len(pool)]} [{tag}{i}]"}
                    for i in range(args.rows)]
            start = time.perf_counter()
            if which == 0:
                llm.score([x["query"] for x in rows], [x["document"] for x in rows], use_tqdm=False)
            else:
                actors = which
                score_dataset(ray.data.from_items(rows), num_actors=actors, actor_cpus=1 / actors).materialize()
            times[name].append(time.perf_counter() - start)
            if which:  # the same pool on one row: actor start-up (the model load) and Ray Data's own overhead
                start = time.perf_counter()
                score_dataset(ray.data.from_items(rows[:1]), num_actors=which, actor_cpus=1 / which).materialize()
                starts[name].append(time.perf_counter() - start)
            print(f"round {r + 1} {name:36s} {args.rows / times[name][-1]:7.1f} rows/s", flush=True)
    out = {name: {"seconds": statistics.median(t), "rows_per_s": args.rows / statistics.median(t)}
           for name, t in times.items()}
    for name, s in starts.items():
        out[name]["one_row_run_s"] = statistics.median(s)
        out[name]["rows_per_s_after_start"] = args.rows / (out[name]["seconds"] - statistics.median(s))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--skip-offline", action="store_true")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()

    import ray

    runtime = apply_runtime()
    texts = load_texts(args.requests)
    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=True, dashboard_host="127.0.0.1", log_to_driver=False)
    ray_start = time.perf_counter() - start
    print(f"ray.init (local, 2 CPUs): {ray_start:.1f} s")
    try:
        serve_result = serving(args, texts)
        offline_result = None if args.skip_offline else offline(args)
    finally:
        from ray import serve

        serve.shutdown()
        ray.shutdown()

    print(f"\nserving, {args.requests} single-text /v1/embeddings requests at concurrency {args.concurrency} (medians)")
    base = serve_result["summary"]["one process (2 threads)"]["req_per_s"]
    for name, row in serve_result["summary"].items():
        print(f"  {name:26s} {row['req_per_s']:7.1f} req/s  {row['req_per_s'] / base:5.2f}x  p50 {row['p50_ms']:6.1f} ms"
              f"  CPU ms/request {', '.join(f'{k} {v:.2f}' for k, v in row['cpu_ms_per_request'].items())}")
    print(f"  replica start (serve.run to ready): {serve_result['replica_start_s']}")
    print(f"  RSS MB: {serve_result['rss_mb']}; Ray's Serve actors: {serve_result['ray_actor_rss_mb']}")
    if offline_result:
        print(f"\noffline, {args.rows} (query, document) pairs")
        base = offline_result["LLM.score, one process (2 threads)"]["rows_per_s"]
        for name, row in offline_result.items():
            extra = (f"  (one-row run {row['one_row_run_s']:.1f} s; {row['rows_per_s_after_start']:.1f} rows/s "
                     f"after it)" if "one_row_run_s" in row else "")
            print(f"  {name:36s} {row['rows_per_s']:7.1f} rows/s  {row['rows_per_s'] / base:5.2f}x{extra}")
    if not args.no_record:
        record("ray_scale", {"args": vars(args), "ray_init_s": ray_start, "serving": serve_result,
                             "offline": offline_result, "ray": __import__("ray").__version__}, runtime)


if __name__ == "__main__":
    sys.exit(main())
