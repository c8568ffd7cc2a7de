"""`wrk` (Debian's package, a C load generator) as bench/serve_load.py's client: `--client wrk`.

wrk keeps `concurrency` keep-alive connections busy for a fixed duration (not a fixed number of requests) from
one thread. Its Lua hooks (written out per run, below) send the run's JSON bodies in turn and print the count,
errors and the latency percentiles from wrk's own histogram as one JSON line at the end, so nothing is parsed
from its human-readable report. Its CPU comes from the kernel's accounting of the finished child process.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import tempfile
from pathlib import Path

import orjson

LUA = r"""
local bodies = {%s}
local i = 0
request = function()
  i = i %% #bodies + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, bodies[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\nWRK_JSON {"requests": %%d, "duration_us": %%d, "status": %%d, "other": %%d, "p50_us": %%d, "p99_us": %%d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def available() -> bool:
    return shutil.which("wrk") is not None


def run(url: str, texts: list[str], model: str, concurrency: int, seconds: float) -> dict:
    """One wrk run; the same keys as load_client's result, with p50/p99 from wrk instead of every latency."""
    bodies = ",".join("[==[" + orjson.dumps({"input": t, "model": model}).decode() + "]==]" for t in texts)
    with tempfile.TemporaryDirectory(prefix="serve_load-wrk-") as folder:
        script = Path(folder) / "post.lua"
        script.write_text(LUA % bodies)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--timeout", "60s",
                               "-s", str(script), url], capture_output=True, text=True, timeout=seconds + 120)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRK_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed (exit {done.returncode}): {(done.stdout + done.stderr)[-500:]}")
    out = json.loads(line[len("WRK_JSON "):])
    # wrk counts every response in `requests`, a non-2xx/3xx one also in `status`; socket errors only as errors.
    return {"count": out["requests"] - out["status"], "failures": out["status"] + out["other"], "errors": [],
            "wall": out["duration_us"] / 1e6, "p50_s": out["p50_us"] / 1e6, "p99_s": out["p99_us"] / 1e6,
            "client_cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            "sent": out["requests"], "timed_out": False}
