"""`build_app` as Python calls it and as `serve run scorekit.ray:build_app key=value ...` calls it (Ray's own
builder call, which passes one dict of strings): the Application carries what was asked for."""

from __future__ import annotations

import pytest

pytest.importorskip("ray")

from ray.serve._private.api import call_user_app_builder_with_args_if_necessary  # what `serve run` calls

from scorekit.config import EngineConfig, ModelConfig, ServerConfig
from scorekit.ray import build_app


def test_serve_run_style_string_arguments():
    app = call_user_app_builder_with_args_if_necessary(
        build_app, {"num_replicas": "3", "replica_cpus": "2", "api_keys": "sk-a,sk-b", "max_model_len": "128",
                    "enable_request_id_headers": "true"})
    deployment = app._bound_deployment
    assert deployment.num_replicas == 3 and deployment.ray_actor_options["num_cpus"] == 2.0
    model, engine, server, threads = deployment.init_args
    assert model == ModelConfig(max_model_len=128) and engine == EngineConfig() and threads == 2
    assert server.api_keys == ("sk-a", "sk-b") and server.enable_request_id_headers is True


def test_python_keywords_and_autoscaling():
    app = build_app("some/model", min_replicas=1, max_replicas=4, replica_cpus=0.5, served_model_names=("m",))
    deployment = app._bound_deployment
    scaling = deployment._deployment_config.autoscaling_config
    assert (scaling.min_replicas, scaling.max_replicas, scaling.initial_replicas) == (1, 4, 1)
    model, _, server, threads = deployment.init_args
    assert model.model == "some/model" and server == ServerConfig(served_model_names=("m",)) and threads == 1


def test_refusals_before_any_replica_starts():
    with pytest.raises(ValueError, match="empty or blank key"):
        build_app(api_keys=(" ",))
    with pytest.raises(TypeError, match="num_replica"):
        build_app(num_replica=2)
    with pytest.raises(ValueError, match="num_replicas"):
        build_app(num_replicas=0)
