"""Ray Data: score or embed the rows of a Dataset on a pool of actors, each loading the model once.

    import ray
    from scorekit.ray import score_dataset, embed_dataset
    ds = ray.data.read_json("pairs.jsonl")                       # or read_parquet: Ray Data's own readers
    score_dataset(ds, num_actors=2).write_parquet("scored/")     # adds a "score" column

Rows are scored as N:N pairs (row i's query with row i's document), exactly what `LLM.score(queries, documents)`
gives in one process. Ray restarts an actor that dies and retries its batch (Ray Data's actor pools default to
max_restarts=-1, max_task_retries=-1); scoring has no side effects, so a retried batch gives the same rows.
"""

from __future__ import annotations

import logging
from typing import Any

import pyarrow as pa
import ray
import ray.data

from scorekit.config import EngineConfig, ModelConfig, split_kwargs
from scorekit.ray.serve import torch_threads_for

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 64


class ModelActor:
    """Ray Data calls the class once per actor (the model load) and the instance once per batch."""

    def __init__(self, model: ModelConfig, engine: EngineConfig, torch_threads: int):
        from scorekit import runtime
        from scorekit.llm import LLM

        runtime.apply(runtime.RuntimeSettings(torch_threads=torch_threads))  # before the LLM sizes its threads
        self.llm = LLM.from_configs(model, engine)


class ScoreBatch(ModelActor):
    def __init__(self, model, engine, torch_threads, query_column: str, document_column: str, output_column: str):
        super().__init__(model, engine, torch_threads)
        self.columns = query_column, document_column, output_column

    def __call__(self, batch: pa.Table) -> pa.Table:
        query, document, output = self.columns
        queries, documents = batch.column(query).to_pylist(), batch.column(document).to_pylist()
        scores = [o.outputs.score for o in self.llm.score(queries, documents, use_tqdm=False)] if queries else []
        return batch.append_column(output, pa.array(scores, type=pa.float64()))


class EmbedBatch(ModelActor):
    def __init__(self, model, engine, torch_threads, text_column: str, output_column: str):
        super().__init__(model, engine, torch_threads)
        self.columns = text_column, output_column

    def __call__(self, batch: pa.Table) -> pa.Table:
        text, output = self.columns
        texts = batch.column(text).to_pylist()
        vectors = [o.outputs.embedding for o in self.llm.embed(texts, use_tqdm=False)] if texts else []
        # float32: what the model computed, so the column holds the offline values exactly
        return batch.append_column(output, pa.array(vectors, type=pa.list_(pa.float32())))


def _configs(model: str | None, options: dict[str, Any]) -> tuple[ModelConfig, EngineConfig]:
    (model_opts, engine_opts), rest = split_kwargs(options, ModelConfig, EngineConfig)
    if rest:
        raise TypeError(f"options scorekit does not know: {', '.join(sorted(rest))}")
    return ModelConfig(model=model, **model_opts), EngineConfig(**engine_opts)


def _warn_if_no_cpu_left(reserved: float) -> None:
    """Ray Data's read, repartition and write tasks take 1 CPU each; actors holding every CPU of the cluster
    leave them none, and the Dataset then waits forever (measured: 2 actors x 1 CPU on a 2-CPU Ray hung).
    A warning, not a refusal: an autoscaling cluster may yet add the CPU."""
    total = ray.cluster_resources().get("CPU", 0) if ray.is_initialized() else 0
    if total and reserved > total - 1:
        log.warning("scorekit: %.3g actor CPUs of the cluster's %.3g leave Ray Data's read/write tasks (1 CPU "
                    "each) no room: the Dataset will wait until a CPU is free. Use fewer actors or a fractional "
                    "actor_cpus (an actor runs one torch thread per whole CPU, at least one).", reserved, total)


def _map(ds: ray.data.Dataset, actor: type, columns: dict[str, str], model: str | None, num_actors: int,
         batch_size: int, actor_cpus: float, options: dict[str, Any]) -> ray.data.Dataset:
    if num_actors < 1:
        raise ValueError("num_actors must be at least 1")
    model_config, engine_config = _configs(model, options)
    _warn_if_no_cpu_left(num_actors * actor_cpus)
    # Ray Data hands each block to one actor as one task: a dataset read from one file (one block) would run
    # on a single actor while the others wait. Blocks of one batch each let every actor take a share.
    ds = ds.repartition(target_num_rows_per_block=batch_size)
    return ds.map_batches(actor, batch_format="pyarrow", batch_size=batch_size,
                          compute=ray.data.ActorPoolStrategy(size=num_actors), num_cpus=actor_cpus,
                          fn_constructor_kwargs={"model": model_config, "engine": engine_config,
                                                 "torch_threads": torch_threads_for(actor_cpus), **columns},
                          udf_modifying_row_count=False)


def score_dataset(ds: ray.data.Dataset, model: str | None = None, *, query_column: str = "query",
                  document_column: str = "document", output_column: str = "score", num_actors: int = 1,
                  batch_size: int = DEFAULT_BATCH_SIZE, actor_cpus: float = 1, **llm_options: Any) -> ray.data.Dataset:
    """`ds` with `output_column` added: the score of each row's (query, document) pair. `llm_options` are the
    fields of ModelConfig and EngineConfig (as `LLM(model, **options)` takes them). Lazy, like any Ray Dataset."""
    columns = {"query_column": query_column, "document_column": document_column, "output_column": output_column}
    return _map(ds, ScoreBatch, columns, model, num_actors, batch_size, actor_cpus, llm_options)


def embed_dataset(ds: ray.data.Dataset, model: str | None = None, *, text_column: str = "text",
                  output_column: str = "embedding", num_actors: int = 1, batch_size: int = DEFAULT_BATCH_SIZE,
                  actor_cpus: float = 1, **llm_options: Any) -> ray.data.Dataset:
    """`ds` with `output_column` added: each row's embedding of `text_column` (a list of float32), as
    `LLM.embed` computes it."""
    columns = {"text_column": text_column, "output_column": output_column}
    return _map(ds, EmbedBatch, columns, model, num_actors, batch_size, actor_cpus, llm_options)
