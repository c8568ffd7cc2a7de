"""The three settings objects, each default written once: what model to load, how the engine runs, how the
server serves. `scorekit serve` builds them from its flags and `LLM(...)` from its keyword arguments, so the
CLI and the library can never disagree about a default.

Frozen: an object built once at start-up and shared by threads must not change under them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

# Estimated peak activations of one batch. Together with results held as small per-row tensors, this keeps a
# 1 query × 2,000 × 512-token request well under 1.5 GB above the loaded model (bench/memory.py measures it),
# however large max_num_batched_tokens / max_num_seqs are set.
DEFAULT_MAX_BATCH_BYTES = 1 << 30


@dataclass(frozen=True)
class ModelConfig:
    """What to load and how to present it (vLLM's model flags)."""

    model: str | None = None  # None: the embedded all-MiniLM-L6-v2
    runner: Literal["auto", "pooling", "generate"] = "auto"
    task: Literal["embed", "classify", "token_embed", "token_classify"] | None = None
    hf_overrides: dict[str, Any] | None = field(default=None, hash=False)
    chat_template: str | None = None
    max_model_len: int | None = None
    dtype: str = "auto"
    device: str = "auto"
    quantization: Literal["int8"] | None = None
    # vLLM's model adapters: `embed` serves a causal LM as an embedding model (last-token pooling), `classify`
    # as a classifier (its score head, or hf_overrides' classifier_from_token), `none` leaves it as it is.
    convert: Literal["auto", "none", "embed", "classify"] = "auto"
    pooler_config: dict[str, Any] | None = field(default=None, hash=False)  # models/pooler_config.py
    trust_remote_code: bool = False  # passed to transformers for architectures that ship their own code
    revision: str | None = None  # of a hub model
    download_dir: str | None = None  # where hub models are downloaded (default: the Hugging Face cache)

    def __post_init__(self):
        if self.convert not in ("auto", "none", "embed", "classify"):
            raise ValueError(f"convert must be auto, none, embed or classify, not {self.convert!r}")
        if self.runner not in ("auto", "pooling", "generate"):
            raise ValueError(f"runner must be auto, pooling or generate, not {self.runner!r}")
        if self.max_model_len is not None and self.max_model_len < 1:
            raise ValueError("max_model_len must be a positive integer")


@dataclass(frozen=True)
class EngineConfig:
    """How the engine batches and schedules (vLLM's scheduler flags, plus scorekit's memory and fairness caps)."""

    max_num_batched_tokens: int = 16384  # padded tokens of one forward
    max_num_seqs: int = 256  # rows of one forward
    enable_prefix_caching: bool = True  # decoder prompts sharing a prefix (template + query) compute it once
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES  # estimated peak activations of one forward
    max_queued_prompts: int = 100_000  # sequences waiting in the engine at most; beyond it a request gets 503
    # A large request runs in chunks of about this many tokens, and other requests are served between its
    # chunks (fairness), and a request whose caller has gone stops at the next chunk (cancellation). A small
    # request that arrives during a chunk waits for that chunk's forward: with 16,384-token chunks a MiniLM
    # server beside a 1 × 5,000 rerank answered one small request in ~3 s every chunk; with 4,096, 1 in 93 took
    # over 1 s (bench/reliability.py, 2-core Intel Xeon). Still large enough for full-speed forwards.
    chunk_tokens: int = 4096
    scheduling_policy: Literal["fcfs", "priority"] = "fcfs"  # `priority` from requests is obeyed only under "priority"
    model_threads: int | None = None  # None: the engine's own choice for the device and model (runner.py)
    # Outputs of earlier prompts kept for identical later ones (engine/cache.py): repeated RAG documents are
    # embedded or scored once. An LRU of at most this many bytes; 0 turns it off.
    score_cache_bytes: int = 256 * 1024 * 1024
    min_prefix_tokens: int = 16  # the shortest shared prefix worth computing once

    def __post_init__(self):
        for name in ("max_num_batched_tokens", "max_num_seqs", "max_batch_bytes", "max_queued_prompts", "chunk_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer")
        if self.score_cache_bytes < 0:
            raise ValueError("score_cache_bytes must be 0 (off) or more")
        if self.scheduling_policy not in ("fcfs", "priority"):
            raise ValueError(f"scheduling_policy must be fcfs or priority, not {self.scheduling_policy!r}")


@dataclass(frozen=True)
class ServerConfig:
    """How the HTTP server serves: names, keys, limits, shutdown."""

    host: str = "0.0.0.0"
    port: int = 8000
    served_model_names: tuple[str, ...] = ()  # empty: the model's folder or file name
    api_keys: tuple[str, ...] = ()
    enable_request_id_headers: bool = False
    # Limits: each one is a flag, and each refusal a 413 that names it. Generous for real RAG (a 1 × 2,000
    # rerank of 2,000-character documents is ~4 MB of JSON), strict enough that no one request takes the machine.
    max_request_bytes: int = 16 * 1024 * 1024
    # Inputs in one request (documents, texts, items), as TEI names it: a 1 × 20,000 rerank fits, while millions
    # of one-word inputs (which a 16 MiB body could carry) cannot pile up per-input objects by the gigabyte.
    max_client_batch_size: int = 32_768
    timeout_graceful_shutdown: float = 30.0  # seconds in-flight requests get after SIGTERM
    max_chunks_per_doc: int = 1  # score/rerank requests that do not say: 1 = no long-document chunking
    disable_uvicorn_access_log: bool = False
    uvicorn_log_level: str = "info"

    def __post_init__(self):
        blank = [k for k in self.api_keys if not k or not k.strip()]
        if blank:
            raise ValueError("--api-key was given an empty or blank key: refusing to start with the API open. "
                             "Give a real key (or leave the flag out to serve without one).")
        for name in ("max_request_bytes", "max_client_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer")
        if self.timeout_graceful_shutdown < 0:
            raise ValueError("timeout_graceful_shutdown must be zero or more seconds")


def split_kwargs(kwargs: dict[str, Any], *classes: type) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Keyword arguments sorted into one dict per config class (by field name), and the ones no class takes."""
    out: list[dict[str, Any]] = []
    rest = dict(kwargs)
    for cls in classes:
        names = {f.name for f in fields(cls)}
        out.append({k: rest.pop(k) for k in list(rest) if k in names})
    return out, rest
