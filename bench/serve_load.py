"""serve_load: the HTTP server on all-MiniLM-L6-v2 under load — scorekit vs infinity-emb 0.0.78 (torch, CPU).

    python bench/serve_load.py [--requests 2000] [--concurrency 1 8 32] [--skip-infinity]

Each server runs as a subprocess on a free loopback port; a separate client process (bench/load_client.py:
`concurrency` keep-alive HTTP/1.1 connections, one request in flight on each; `--client httpx` for httpx's
AsyncClient instead; `--client wrk` for Debian's wrk, a C client, for `--wrk-seconds` per run, results in
bench/results/serve_load_wrk.json) sends `requests` single-text OpenAI-style embedding requests and measures
throughput and p50/p99 latency. Both servers stay up for the whole run and take turns,
in alternating order per concurrency, so machine drift hits both alike. The offline rate — one
`scorekit.LLM().embed(texts)` call on the same texts in this process, rounds before and after the loads — is
the yardstick: each server's throughput is also shown as a fraction of it. On a 2-core machine the client competes with the server for the CPU, as a real co-located client would:
the table shows how much CPU each side used (of 100% per core).

The texts: the 1,000 sentences of bench/data/sentences.txt, then the same sentences with their words in reverse
order (same lengths, different token sequences), so no two of the 2,000 are alike — scorekit's engine runs
identical prompts once, which would flatter the offline rate with repeated texts.

Targets: scorekit at concurrency 8 ≥ 0.9x the in-process rate (issue #15), and ≥ 3x infinity's throughput at concurrency 8.
infinity lives in its own venv (bench/infinity_setup.sh, run automatically when the venv is missing); when it
cannot be set up or started, the script says why and reports scorekit alone.
"""

from __future__ import annotations

import argparse
import gc
import math
import multiprocessing as mp
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import common  # noqa: F401  (sets up the path and offline mode)
import load_client
import wrk_client
from common import record, sentences, timed

HERE = Path(__file__).resolve().parent
INFINITY_VENV = Path(os.environ.get("INFINITY_VENV", HERE / ".venv-infinity"))
INFINITY_SETUP = HERE / "infinity_setup.sh"
MODEL_NAME = "all-MiniLM-L6-v2"  # served name for both servers
TARGET_VS_OFFLINE = 0.9  # issue #15
TARGET_VS_INFINITY = 3.0


def load_texts(n: int) -> list[str]:
    base = sentences()
    pool = base + [" ".join(reversed(s.split())) for s in base]
    return [pool[i % len(pool)] for i in range(n)]


# -- the client process (bench/load_client.py) -------------------------------------------------------------

def run_client(url: str, texts: list[str], concurrency: int, max_seconds: float, client: str = "raw") -> dict:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=load_client.client_main,
                       args=(child, url, texts, MODEL_NAME, concurrency, max(16, 2 * concurrency), max_seconds, client),
                       name=f"serve_load-client-c{concurrency}")
    proc.start()
    child.close()
    try:
        if not parent.poll(max_seconds + 120):
            raise TimeoutError(f"client process gave no result within {max_seconds + 120:.0f} s")
        result = parent.recv()
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join()
    if "fatal" in result:
        raise RuntimeError(f"client process failed: {result['fatal']}")
    return result


# -- servers ----------------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads) and its live descendants, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        stats[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += stats.get(p, 0.0)
        todo += children.get(p, [])
    return total


def thread_cpu_seconds(pid: int) -> tuple[float, float]:
    """(main thread, all other threads) utime + stime of one process. In `scorekit serve` the main thread runs
    the event loop (HTTP, validation, routing, JSON) and the others are the model threads (tokenising, forwards):
    the split says on which side a change in CPU per request lies."""
    tick = os.sysconf("SC_CLK_TCK")
    main = other = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        seconds = (int(fields[11]) + int(fields[12])) / tick
        if int(task.name) == pid:
            main += seconds
        else:
            other += seconds
    return main, other


@dataclass
class Server:
    name: str
    cmd: list[str]
    env: dict[str, str]
    route: str
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 240.0) -> None:
        import httpx

        fd, path = tempfile.mkstemp(prefix=f"serve_load-{self.name}-", suffix=".log")
        self.log_path = Path(path)
        with os.fdopen(fd, "w") as log:
            self.proc = subprocess.Popen(self.cmd + ["--port", str(self.port)], env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with code {self.proc.returncode} while starting:\n"
                                   f"{self.log_tail()}")
            try:
                if httpx.get(self.base + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"{self.name} did not answer /health within {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 25) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join("    " + line for line in self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # its own session: SIGTERM goes to the server process only
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self.log_path is not None:
            self.log_path.unlink(missing_ok=True)


def server_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    env.update(extra)
    return env


def scorekit_server(source: Path | None = None, name: str = "scorekit") -> Server:
    """`scorekit serve`; with `source`, the scorekit of another checkout (its src/ first on PYTHONPATH)."""
    cmd = [sys.executable, "-m", "scorekit.cli", "serve", "--host", "127.0.0.1", "--served-model-name", MODEL_NAME,
           "--disable-uvicorn-access-log", "--uvicorn-log-level", "warning"]
    # The runs send the same texts again: each must compute them. A baseline revision gets the flag too when it
    # has an output cache (without it the baseline answered the repeated runs from its cache: 2,016 rows per forward).
    if source is None or "score_cache_bytes" in (source / "src" / "scorekit" / "config.py").read_text():
        cmd += ["--score-cache-bytes", "0"]
    env = server_env(PYTHONPATH=str(source / "src")) if source is not None else server_env()
    return Server(name, cmd, env, "/v1/embeddings")


def baseline_checkout(rev: str) -> Path:
    """A detached git worktree of `rev` (removed again by `remove_checkout`): the same machine, the same run,
    the code of another commit — how a change's speed is compared with what it replaced."""
    folder = Path(tempfile.mkdtemp(prefix="serve_load-baseline-"))
    subprocess.run(["git", "-C", str(HERE.parent), "worktree", "add", "--detach", str(folder), rev],
                   check=True, capture_output=True)
    return folder


def remove_checkout(folder: Path) -> None:
    subprocess.run(["git", "-C", str(HERE.parent), "worktree", "remove", "--force", str(folder)], capture_output=True)


def infinity_server(model_dir: Path) -> Server:
    cmd = [str(INFINITY_VENV / "bin" / "infinity_emb"), "v2", "--model-id", str(model_dir),
           "--served-model-name", MODEL_NAME, "--engine", "torch", "--device", "cpu", "--host", "127.0.0.1",
           "--log-level", "warning"]
    # Telemetry off (the setup script also removes its client): this machine only talks to loopback.
    env = server_env(DO_NOT_TRACK="1", INFINITY_ANONYMOUS_USAGE_STATS="0")
    env.pop("PYTHONPATH", None)
    return Server("infinity", cmd, env, "/embeddings")


def ensure_infinity() -> str | None:
    """None when the venv works, else why not."""
    exe = INFINITY_VENV / "bin" / "infinity_emb"
    if not exe.exists():
        print(f"infinity venv missing: running {INFINITY_SETUP.relative_to(HERE.parent)} (about a minute)…",
              flush=True)
        done = subprocess.run(["bash", str(INFINITY_SETUP)], capture_output=True, text=True)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
            return f"bench/infinity_setup.sh failed (exit {done.returncode}):\n{tail}"
    if not exe.exists():
        return f"{exe} not found after setup"
    return None


# -- measuring --------------------------------------------------------------------------------------------------

def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return math.nan
    return sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(q / 100 * len(sorted_values)) - 1))]


def check_vector(server: Server, text: str, reference: list[float]) -> float:
    """Cosine between the server's vector for `text` and the in-process one (both should be unit vectors)."""
    import httpx

    resp = httpx.post(server.base + server.route, json={"input": text, "model": MODEL_NAME}, timeout=60)
    resp.raise_for_status()
    vector = resp.json()["data"][0]["embedding"]
    dot = sum(a * b for a, b in zip(vector, reference))
    return dot / (math.sqrt(sum(a * a for a in vector)) * math.sqrt(sum(b * b for b in reference)))


def start_server(server: Server, texts: list[str], reference: list[float]) -> dict:
    print(f"starting {server.name} on {server.base} …", flush=True)
    t0 = time.perf_counter()
    server.start()
    startup = time.perf_counter() - t0
    cosine = check_vector(server, texts[0], reference)
    print(f"{server.name}: up in {startup:.1f} s; cosine to the in-process vector {cosine:.6f}", flush=True)
    return {"startup_s": startup, "cosine_vs_in_process": cosine, "rows": []}


def engine_counters(server: Server) -> tuple[float, float] | None:
    """scorekit's (forwards, sequences) so far, from /metrics; None for a server without them."""
    import httpx

    try:
        text = httpx.get(server.base + "/metrics", timeout=10).text
    except httpx.HTTPError:
        return None
    values = dict(re.findall(r"^scorekit_engine_(batches|sequences)_total ([0-9.e+]+)$", text, re.M))
    return (float(values["batches"]), float(values["sequences"])) if len(values) == 2 else None


def load_once(server: Server, texts: list[str], concurrency: int, offline_rate: float, max_seconds: float,
              client: str, wrk_seconds: float = 10.0) -> dict:
    counters0 = engine_counters(server)
    cpu0, split0 = cpu_seconds(server.proc.pid), thread_cpu_seconds(server.proc.pid)
    if client == "wrk":  # a fixed duration; wrk's own percentiles
        result = wrk_client.run(server.base + server.route, texts, MODEL_NAME, concurrency, wrk_seconds)
        done, p50, p99 = result["count"], result["p50_s"], result["p99_s"]
    else:
        result = run_client(server.base + server.route, texts, concurrency, max_seconds, client)
        lat = sorted(result["latencies"])
        done, p50, p99 = len(lat), percentile(lat, 50), percentile(lat, 99)
    server_cpu = cpu_seconds(server.proc.pid) - cpu0
    split = [b - a for a, b in zip(split0, thread_cpu_seconds(server.proc.pid))]
    counters1 = engine_counters(server)
    wall = result["wall"]
    rate = done / wall if wall > 0 else 0.0
    row = {"concurrency": concurrency, "requests": done, "failed": result["failures"], "seconds": wall,
           "req_per_s": rate, "p50_ms": 1000 * p50, "p99_ms": 1000 * p99,
           "vs_in_process": rate / offline_rate, "server_cpu_pct": 100 * server_cpu / wall,
           "client_cpu_pct": 100 * result["client_cpu"] / wall, "timed_out": result["timed_out"],
           # CPU per request is steadier than req/s when other processes take cores from the run.
           "server_cpu_ms_per_req": 1000 * server_cpu / max(done, 1),
           "client_cpu_ms_per_req": 1000 * result["client_cpu"] / max(done, 1),
           # The server's CPU per request split: its main thread (for scorekit, the event loop) and the rest.
           "main_thread_cpu_ms_per_req": 1000 * split[0] / max(done, 1),
           "other_threads_cpu_ms_per_req": 1000 * split[1] / max(done, 1),
           "load_average_1min_after": os.getloadavg()[0],
           # Rows per forward: how well single-text requests were batched together.
           "rows_per_forward": ((counters1[1] - counters0[1]) / max(counters1[0] - counters0[0], 1)
                                if counters0 and counters1 else None)}
    note = ""
    if result["failures"]:
        note += f"  {result['failures']} FAILED: {result['errors'][:2]}"
    if result["timed_out"]:
        note += f"  stopped at the {max_seconds:.0f} s limit after {result['sent']} requests"
    print(f"  {server.name:9s} c={concurrency:<3d} {rate:7.1f} req/s  p50 {row['p50_ms']:7.1f} ms  "
          f"p99 {row['p99_ms']:7.1f} ms{note}", flush=True)
    return row


def busy_cores(seconds: float = 2.0) -> float:
    """How many cores other processes keep busy right now (from /proc/stat; this process is idle meanwhile)."""
    def sample() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = values[3] + values[4]  # idle + iowait
        return sum(values[:8]) - idle, sum(values[:8])
    busy0, total0 = sample()
    time.sleep(seconds)
    busy1, total1 = sample()
    return (os.cpu_count() or 1) * (busy1 - busy0) / max(1, total1 - total0)


def print_rows(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    print(f"{'conc':>5s} {'requests':>9s} {'seconds':>8s} {'req/s':>8s} {'p50 ms':>8s} {'p99 ms':>8s} "
          f"{'vs in-proc':>10s} {'server cpu':>10s} {'client cpu':>10s} {'cpu ms/req':>10s} {'loop ms':>8s} "
          f"{'rows/fwd':>8s}")
    for r in rows:
        requests = f"{r['requests']}" + (f"+{r['failed']}!" if r["failed"] else "") + ("*" if r["timed_out"] else "")
        rows_fwd = f"{r['rows_per_forward']:8.2f}" if r.get("rows_per_forward") else f"{'-':>8s}"
        print(f"{r['concurrency']:5d} {requests:>9s} {r['seconds']:8.2f} {r['req_per_s']:8.1f} {r['p50_ms']:8.1f} "
              f"{r['p99_ms']:8.1f} {r['vs_in_process']:9.2f}x {r['server_cpu_pct']:9.0f}% {r['client_cpu_pct']:9.0f}% "
              f"{r['server_cpu_ms_per_req']:10.2f} {r['main_thread_cpu_ms_per_req']:8.2f} {rows_fwd}")


def rows_at(result: dict | None, concurrency: int) -> list[dict]:
    """The runs at `concurrency`, in the order they ran."""
    return [r for r in result["rows"] if r["concurrency"] == concurrency] if result else []


def row_at(result: dict | None, concurrency: int) -> dict | None:
    """The first run at `concurrency` (None: no such run)."""
    return next(iter(rows_at(result, concurrency)), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--skip-infinity", action="store_true")
    parser.add_argument("--client", choices=["raw", "httpx", "wrk"], default="raw",
                        help="the load generator: raw HTTP/1.1 keep-alive connections (~0.1 ms CPU per request), "
                             "httpx.AsyncClient (~1.2 ms), or Debian's wrk (C; apt-get install wrk; runs for "
                             "--wrk-seconds instead of --requests)")
    parser.add_argument("--wrk-seconds", type=float, default=10.0, help="duration of one wrk run")
    parser.add_argument("--rounds", type=int, default=3,
                        help="in-process rounds before the loads (one more runs after them; the median is used)")
    parser.add_argument("--max-seconds", type=float, default=180.0,
                        help="time limit of one load run; a run that hits it reports what it completed")
    parser.add_argument("--baseline", metavar="REV", default=None,
                        help="also load the scorekit of git revision REV (a worktree), alternating with this one")
    args = parser.parse_args()
    if args.client == "wrk" and not wrk_client.available():
        parser.error("--client wrk: no `wrk` on PATH (apt-get install -y wrk)")
    applied = common.apply_runtime()  # the in-process yardstick runs with the settings `scorekit serve` applies

    # SIGTERM → SystemExit, so the `finally` below stops the servers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    import torch

    from scorekit import LLM
    from scorekit.models.packaged import default_model_dir

    busy_before = busy_cores()
    load_before = os.getloadavg()[0]  # the machine is shared: the record says how busy it was
    if busy_before > 0.25:
        print(f"WARNING: other processes keep {busy_before:.2f} of {os.cpu_count()} cores busy: they take CPU from "
              f"this benchmark, expect low and noisy numbers.", flush=True)
    texts = load_texts(args.requests)
    threads = torch.get_num_threads()

    # -- the offline, in-process rate: one llm.embed(texts) call, rounds before and one after the loads ---------
    llm = LLM(score_cache_bytes=0)  # every round computes: the output cache would answer repeats
    reference = llm.embed(texts[:1], use_tqdm=False)[0].outputs.embedding
    embed_all = lambda: llm.embed(texts, use_tqdm=False)  # noqa: E731
    embed_all()  # warm-up
    offline_cpu: list[float] = []  # CPU seconds of this process (the model threads) per round

    def embed_round() -> float:
        cpu0 = time.process_time()
        wall = timed(embed_all)
        offline_cpu.append(time.process_time() - cpu0)
        return wall

    offline_times = [embed_round() for _ in range(args.rounds)]
    print(f"in-process: llm.embed({len(texts)} texts): {', '.join(f'{t:.2f}' for t in offline_times)} s "
          f"({threads} torch threads)", flush=True)
    offline_rate = len(texts) / statistics.median(offline_times)  # updated after the loads
    # The yardstick of concurrency 1's latency (#15: p50 ≤ 1.2x): one in-process call per text, one text each.
    single_s = statistics.median(timed(lambda t=t: llm.embed([t], use_tqdm=False)) for t in texts[:200])
    print(f"in-process llm.embed([text]), one text per call: median {1000 * single_s:.2f} ms over 200 texts",
          flush=True)

    baseline_name = f"scorekit@{args.baseline}" if args.baseline else None
    results: dict[str, dict | None] = {"scorekit": None, "infinity": None}
    infinity_status = "skipped (--skip-infinity)"
    servers: dict[str, Server] = {}
    rows: dict[str, list[dict]] = {"scorekit": [], "infinity": []}
    checkout = baseline_checkout(args.baseline) if args.baseline else None
    try:
        servers["scorekit"] = scorekit_server()
        results["scorekit"] = start_server(servers["scorekit"], texts, reference)
        if checkout is not None:
            servers[baseline_name] = scorekit_server(checkout, baseline_name)
            results[baseline_name] = start_server(servers[baseline_name], texts, reference)
            rows[baseline_name] = []
        if not args.skip_infinity:
            why = ensure_infinity()
            if why is None:
                servers["infinity"] = infinity_server(default_model_dir())
                try:
                    results["infinity"] = start_server(servers["infinity"], texts, reference)
                    infinity_status = "ok"
                except Exception as exc:  # noqa: BLE001 - report scorekit's numbers all the same
                    why = f"{type(exc).__name__}: {exc}"
                    servers.pop("infinity").stop()
            if why is not None:
                infinity_status = f"NOT RUN — {why}"
                print(f"\ninfinity-emb 0.0.78 could not be measured: {why}", flush=True)

        # Both servers stay up (idle when not loaded); the order alternates per concurrency so drift hits both.
        for k, c in enumerate(args.concurrency):
            order = list(servers) if k % 2 == 0 else list(reversed(servers))
            for name in order:
                try:
                    rows[name].append(load_once(servers[name], texts, c, offline_rate, args.max_seconds,
                                                args.client, args.wrk_seconds))
                except Exception as exc:  # noqa: BLE001
                    if name == "scorekit":
                        raise
                    infinity_status = f"failed during the load at concurrency {c} — {type(exc).__name__}: {exc}"
                    print(f"infinity-emb: {infinity_status}\n{servers[name].log_tail()}", flush=True)
                    servers.pop(name).stop()
    finally:
        for server in servers.values():
            server.stop()
        if checkout is not None:
            remove_checkout(checkout)

    offline_times.append(embed_round())
    offline_s = statistics.median(offline_times)
    offline_cpu_ms = 1000 * statistics.median(offline_cpu) / len(texts)
    offline_rate = len(texts) / offline_s
    del llm
    gc.collect()
    busy_after = busy_cores()
    load_after = os.getloadavg()[0]
    for name, result in results.items():
        if result is not None:
            result["rows"] = rows[name]
            for row in rows[name]:
                row["vs_in_process"] = row["req_per_s"] / offline_rate
    if results["infinity"] is not None and not rows["infinity"]:
        results["infinity"] = None

    # -- report -----------------------------------------------------------------------------------------------
    print(f"\nserve_load: {len(texts)} single-text requests per run, all-MiniLM-L6-v2, CPU, {os.cpu_count()} cores "
          f"shared by server and client")
    print(f"in-process llm.embed({len(texts)} texts): median {offline_s:.2f} s = {offline_rate:.1f} texts/s "
          f"(rounds: {', '.join(f'{t:.2f}' for t in offline_times)} s, the last one after the loads), "
          f"{offline_cpu_ms:.2f} CPU ms per text")
    print("cpu columns: % of one core over the run; the client process competes with the server for the same "
          "cores; cpu ms/req: the server's CPU per request; loop ms: the part of it on the server's main thread "
          "(scorekit's event loop; the rest is the model threads)")
    labels = [("scorekit", "scorekit serve  POST /v1/embeddings")]
    if baseline_name:
        labels.append((baseline_name, f"{baseline_name} serve (the baseline revision)  POST /v1/embeddings"))
    labels.append(("infinity", "infinity-emb 0.0.78 v2 --engine torch --device cpu  POST /embeddings"))
    for name, label in labels:
        if results.get(name):
            print_rows(label, results[name]["rows"])
    if baseline_name and results.get(baseline_name):
        # `--concurrency 8 8 8` repeats a level: the k-th run of this tree pairs with the k-th of the baseline (they
        # ran back to back), and the median of the pairs' ratios is the verdict.
        for c in dict.fromkeys(args.concurrency):
            pairs = [(ours, base) for ours, base in zip(rows_at(results["scorekit"], c),
                                                        rows_at(results[baseline_name], c)) if base["req_per_s"]]
            for ours, base in pairs:
                print(f"  concurrency {c}: this tree {ours['req_per_s']:.1f} req/s vs {baseline_name} "
                      f"{base['req_per_s']:.1f} = {ours['req_per_s'] / base['req_per_s']:.2f}x "
                      f"(p50 {ours['p50_ms']:.1f} vs {base['p50_ms']:.1f} ms)")
            if len(pairs) > 1:
                ratios = [ours["req_per_s"] / base["req_per_s"] for ours, base in pairs]
                print(f"  concurrency {c}: median of {len(pairs)} paired runs {statistics.median(ratios):.2f}x")
    if not results["infinity"]:
        print(f"\ninfinity-emb 0.0.78: {infinity_status}")
    if max(busy_before, busy_after) > 0.25:
        print(f"\nWARNING: other processes kept {busy_before:.2f} cores busy before the run, {busy_after:.2f} after it: "
              f"these numbers are low and noisy.")

    ours8, theirs8 = row_at(results["scorekit"], 8), row_at(results["infinity"], 8)
    ours1 = row_at(results["scorekit"], 1)
    print()
    if ours1:
        print(f"concurrency 1 p50 {ours1['p50_ms']:.2f} ms vs one in-process call {1000 * single_s:.2f} ms: "
              f"{ours1['p50_ms'] / (1000 * single_s):.2f}x (target ≤ 1.2x)")
    if ours8:
        met = ours8["vs_in_process"] >= TARGET_VS_OFFLINE
        print(f"target ≥ {TARGET_VS_OFFLINE}x in-process at concurrency 8: {'met' if met else 'NOT met'} "
              f"({ours8['req_per_s']:.1f} req/s vs {offline_rate:.1f} texts/s = {ours8['vs_in_process']:.2f}x)")
    else:
        print(f"target ≥ {TARGET_VS_OFFLINE}x in-process at concurrency 8: not measured (no concurrency 8 run)")
    cpu_bound = None
    if ours8:
        # When other processes take cores, req/s and texts/s are measured at different moments; CPU per item is
        # steadier. On a machine of its own each side is CPU-bound, so this ratio estimates the quiet-machine one.
        cpu_bound = offline_cpu_ms / (ours8["server_cpu_ms_per_req"] + ours8["client_cpu_ms_per_req"])
        print(f"  CPU per item at concurrency 8: {ours8['server_cpu_ms_per_req']:.2f} ms server + "
              f"{ours8['client_cpu_ms_per_req']:.2f} ms client per request, {offline_cpu_ms:.2f} ms per text "
              f"in-process: {cpu_bound:.2f}x when CPU-bound")
    if ours8 and theirs8:
        ratio = ours8["req_per_s"] / theirs8["req_per_s"] if theirs8["req_per_s"] else math.inf
        met = ratio >= TARGET_VS_INFINITY
        print(f"target ≥ {TARGET_VS_INFINITY}x infinity at concurrency 8: {'met' if met else 'NOT met'} "
              f"({ours8['req_per_s']:.1f} vs {theirs8['req_per_s']:.1f} req/s = {ratio:.2f}x)")
    else:
        ratio = None
        print(f"target ≥ {TARGET_VS_INFINITY}x infinity at concurrency 8: not measured (infinity: {infinity_status})")

    record("serve_load" if args.client == "raw" else f"serve_load_{args.client}", {
        "requests": len(texts), "concurrency": args.concurrency, "client": args.client, "torch_threads": threads, "cpu_count": os.cpu_count(),
        "other_busy_cores_before_after": [busy_before, busy_after],
        "load_average_1min_before_after": [load_before, load_after],
        "in_process": {"seconds": offline_s, "texts_per_s": offline_rate, "rounds_s": offline_times,
                       "cpu_ms_per_text": offline_cpu_ms, "single_text_call_median_ms": 1000 * single_s},
        "c1_p50_vs_single_call": ours1["p50_ms"] / (1000 * single_s) if ours1 else None,
        "scorekit": results["scorekit"], "infinity": results["infinity"], "infinity_status": infinity_status,
        "targets": {"vs_in_process_at_c8": TARGET_VS_OFFLINE, "vs_infinity_at_c8": TARGET_VS_INFINITY},
        "scorekit_vs_in_process_at_c8": ours8["vs_in_process"] if ours8 else None,
        "scorekit_vs_in_process_at_c8_cpu_bound": cpu_bound,
        "scorekit_vs_infinity_at_c8": ratio,
        "baseline": {"revision": args.baseline, "result": results.get(baseline_name)} if baseline_name else None,
    }, runtime=applied)


if __name__ == "__main__":
    main()
