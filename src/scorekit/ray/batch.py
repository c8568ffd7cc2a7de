"""`scorekit run-batch --ray-actors N`: the lines of a batch file run on a Ray Data actor pool, each actor with
its own LLM and server app, each line through the same handler as without Ray (scorekit.server.batch).

The driver reads the input file and writes the output file, in input order: the files live where the command
runs, which on a multi-node cluster is not where the actors run. Lines travel to the actors inside the Dataset.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import ray.data

from scorekit.config import EngineConfig, ModelConfig, ServerConfig
from scorekit.ray.data import ModelActor
from scorekit.ray.serve import torch_threads_for

# Lines per actor call: small enough that two actors share a short file, large enough to amortise a call.
LINES_PER_CALL = 16


class BatchLines(ModelActor):
    def __init__(self, model: ModelConfig, engine: EngineConfig, torch_threads: int, server: ServerConfig):
        from scorekit.server.app import build_app

        super().__init__(model, engine, torch_threads)
        self.app = build_app(self.llm, server)

    def __call__(self, batch: dict) -> dict:
        return {"line": batch["line"], "result": asyncio.run(self._run(list(batch["request"])))}

    async def _run(self, lines: list[str]) -> list[str]:
        from scorekit.server.batch import run_line

        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://scorekit.batch") as client:
            # One line after another, as without Ray: the same batches form, so the same numbers come out.
            return [json.dumps(await run_line(client, line)) for line in lines]


def run_batch_on_ray(input_path: str, output_path: str, model: ModelConfig, engine: EngineConfig,
                     server: ServerConfig, num_actors: int, actor_cpus: float = 1) -> tuple[int, int]:
    """Returns (requests, failures), like scorekit.server.batch.run_batch; Ray must be connected."""
    if num_actors < 1:
        raise ValueError("--ray-actors must be at least 1")
    lines = [l for l in Path(input_path).read_text().splitlines() if l.strip()]
    if not lines:
        Path(output_path).write_text("")
        return 0, 0
    ds = ray.data.from_items([{"line": i, "request": line} for i, line in enumerate(lines)])
    done = ds.map_batches(BatchLines, batch_format="numpy", batch_size=LINES_PER_CALL,
                          compute=ray.data.ActorPoolStrategy(size=num_actors), num_cpus=actor_cpus,
                          fn_constructor_kwargs={"model": model, "engine": engine, "server": server,
                                                 "torch_threads": torch_threads_for(actor_cpus)})
    rows = sorted(done.take_all(), key=lambda row: int(row["line"]))
    failures = 0
    with open(output_path, "w") as out:
        for row in rows:
            failures += json.loads(row["result"])["error"] is not None
            out.write(row["result"] + "\n")
    return len(rows), failures
