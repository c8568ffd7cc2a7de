"""Ray Serve: the scorekit HTTP app as a deployment of N replicas behind Ray Serve's HTTP proxy.

    from ray import serve
    from scorekit.ray import build_app
    serve.run(build_app(num_replicas=2, api_keys=("sk-1",)))      # or: serve run scorekit.ray:build_app num_replicas=2

Each replica is a Ray actor that builds its own LLM and the very app `scorekit serve` runs
(scorekit.server.app.build_app): same routes, same answers, same API-key check, its own /metrics. Serve's proxy
routes each HTTP request to one replica; Serve replaces a replica that dies (docs/ray.md).
"""

from __future__ import annotations

import inspect
import json
import math
from dataclasses import fields
from typing import Any

from ray import serve

from scorekit.config import EngineConfig, ModelConfig, ServerConfig, split_kwargs

DEPLOYMENT_NAME = "scorekit"
# Serve's default lets 5 requests into a replica at once. Our engine merges concurrent requests into shared
# batches, so a replica must see many at once to batch them; the engine's own queue bounds the rest.
DEFAULT_MAX_ONGOING_REQUESTS = 64


def torch_threads_for(cpus: float) -> int:
    """A replica's intra-op threads: one per whole CPU Ray reserved for it (at least one)."""
    return max(1, math.floor(cpus))


@serve.deployment
@serve.ingress()  # late-bound: the app is built in the replica, after its LLM (__serve_build_asgi_app__)
class ScorekitServer:
    """One replica: its process settings, its LLM, its FastAPI app."""

    def __init__(self, model: ModelConfig, engine: EngineConfig, server: ServerConfig, torch_threads: int):
        from scorekit import runtime
        from scorekit.llm import LLM

        # Before the LLM: the engine sizes its model threads from torch's thread count at construction.
        runtime.apply(runtime.RuntimeSettings(torch_threads=torch_threads))
        self._llm = LLM.from_configs(model, engine)
        self._server = server

    def __serve_build_asgi_app__(self):
        from scorekit.server.app import build_app as build_fastapi_app

        return build_fastapi_app(self._llm, self._server)


def _from_cli_string(name: str, value: Any, default: Any) -> Any:
    """`serve run scorekit.ray:build_app num_replicas=2 api_keys=a,b` passes every value as a string."""
    if not isinstance(value, str):
        return value
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    if isinstance(default, tuple):
        items = parsed if isinstance(parsed, list) else value.split(",")
        return tuple(str(item) for item in items)
    if name == "model":
        return value  # a model name is never JSON
    return parsed


_DEFAULTS = {f.name: f.default for cls in (ModelConfig, EngineConfig, ServerConfig) for f in fields(cls)}
_OWN = {"num_replicas": 1, "replica_cpus": 1.0, "min_replicas": None, "max_replicas": None,
        "max_ongoing_requests": DEFAULT_MAX_ONGOING_REQUESTS}


def build_app(model: str | dict | None = None, **options: Any) -> serve.Application:
    """A Ray Serve Application of scorekit replicas.

    `build_app(model=None, num_replicas=1, replica_cpus=1, min_replicas=None, max_replicas=None,
    max_ongoing_requests=64, **server_options)`: `server_options` are the fields of ModelConfig, EngineConfig
    and ServerConfig (scorekit/config.py), e.g. `api_keys=("sk-1",)`, `max_model_len=256`. With
    `min_replicas`/`max_replicas`, Serve autoscales between them (starting at `num_replicas`, clamped) on the
    number of ongoing requests per replica. Each replica reserves `replica_cpus` CPUs and runs that many torch
    threads. `serve run scorekit.ray:build_app num_replicas=2` calls this with one dict of strings."""
    if isinstance(model, dict):  # Ray Serve's CLI: the builder gets a single dict of `key=value` strings
        options = {**model, **options}
        model = options.pop("model", None)
    unknown = set(options) - set(_DEFAULTS) - set(_OWN)
    if unknown:
        raise TypeError(f"build_app() got options scorekit does not know: {', '.join(sorted(unknown))}")
    options = {k: _from_cli_string(k, v, _DEFAULTS.get(k, _OWN.get(k))) for k, v in options.items()}
    own = {k: options.pop(k, default) for k, default in _OWN.items()}
    (model_opts, engine_opts, server_opts), _ = split_kwargs(options, ModelConfig, EngineConfig, ServerConfig)
    return application(ModelConfig(model=model, **model_opts), EngineConfig(**engine_opts),
                       ServerConfig(**server_opts),  # refuses a blank API key here, before any replica starts
                       **own)


def application(model: ModelConfig, engine: EngineConfig, server: ServerConfig, *, num_replicas: int = 1,
                replica_cpus: float = 1.0, min_replicas: int | None = None, max_replicas: int | None = None,
                max_ongoing_requests: int = DEFAULT_MAX_ONGOING_REQUESTS) -> serve.Application:
    """The Application from built configs (what `build_app` and `scorekit serve --ray-replicas` both call)."""
    cpus = float(replica_cpus)
    if cpus <= 0:
        raise ValueError("replica_cpus must be more than 0")
    num_replicas, max_ongoing_requests = int(num_replicas), int(max_ongoing_requests)
    options: dict[str, Any] = {
        "name": DEPLOYMENT_NAME,
        "ray_actor_options": {"num_cpus": cpus},
        "max_ongoing_requests": max_ongoing_requests,
        # SIGTERM's grace for in-flight requests, as `scorekit serve` gives it in one process
        "graceful_shutdown_timeout_s": server.timeout_graceful_shutdown,
    }
    if min_replicas is not None or max_replicas is not None:
        low = int(min_replicas if min_replicas is not None else 1)
        high = int(max_replicas if max_replicas is not None else max(low, num_replicas))
        if not 0 <= low <= high or high < 1:
            raise ValueError(f"autoscaling needs 0 <= min_replicas <= max_replicas and max_replicas >= 1, "
                             f"not {low}..{high}")
        options["autoscaling_config"] = {
            "min_replicas": low, "max_replicas": high, "initial_replicas": min(max(num_replicas, low), high),
            # Half the replica's admission limit: scale out while a replica still has room to batch.
            "target_ongoing_requests": max(1, max_ongoing_requests // 2),
        }
    else:
        if num_replicas < 1:
            raise ValueError("num_replicas must be at least 1")
        options["num_replicas"] = num_replicas
    return ScorekitServer.options(**options).bind(model, engine, server, torch_threads_for(cpus))


# Ray Serve's CLI accepts only a builder of exactly one parameter (serve/_private/api.py checks the signature);
# Python callers use the keywords above. Presenting one parameter lets the same name serve both.
build_app.__signature__ = inspect.Signature([inspect.Parameter("model", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                               default=None)])
