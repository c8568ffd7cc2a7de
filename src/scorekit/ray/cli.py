"""The --ray-* flags of `scorekit serve` and `scorekit run-batch`, and what they run.

Imported by scorekit.cli to build its parser, so nothing here imports Ray until a --ray-* command runs: the
flags exist (and say what they need) without Ray installed.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from scorekit.config import EngineConfig, ModelConfig, ServerConfig

log = logging.getLogger("scorekit")

APP_NAME = "scorekit"  # the Serve application `scorekit serve --ray-replicas` runs (and deletes on exit)
NEEDS_RAY = 'the --ray-* options need Ray: pip install "scorekit[ray]"'


def _flag(group, name: str, **kwargs) -> None:
    """`--ray-name` and `--ray_name`, as scorekit's other flags."""
    spellings = ["--" + name.replace("_", "-"), "--" + name]
    group.add_argument(*spellings, dest=name, **kwargs)


def add_ray_args(parser: argparse.ArgumentParser, batch: bool = False) -> None:
    """The Ray flags: replicas of the server (serve), or an actor pool (run-batch, `batch=True`)."""
    group = parser.add_argument_group("Ray", "scale out on a Ray cluster (pip install \"scorekit[ray]\")")
    _flag(group, "ray_address", default=None, metavar="ADDR",
          help="join this Ray cluster (e.g. HEAD_IP:6379 or auto); default: start a local Ray instance")
    if batch:
        _flag(group, "ray_actors", type=int, default=None, metavar="N",
              help="run the file's lines on N Ray Data actors, each loading the model once")
        _flag(group, "ray_actor_cpus", type=float, default=1.0, metavar="C",
              help="CPUs each actor reserves (and its torch threads)")
        return
    _flag(group, "ray_replicas", type=int, default=None, metavar="N",
          help="serve with N Ray Serve replicas behind Ray Serve's HTTP proxy on --host/--port")
    _flag(group, "ray_replica_cpus", type=float, default=1.0, metavar="C",
          help="CPUs each replica reserves (and its torch threads)")
    _flag(group, "ray_min_replicas", type=int, default=None, metavar="N", help="autoscale: fewest replicas")
    _flag(group, "ray_max_replicas", type=int, default=None, metavar="N", help="autoscale: most replicas")
    _flag(group, "ray_max_ongoing_requests", type=int, default=None, metavar="N",
          help="requests one replica takes at once (default 64; more wait in Serve's queue)")


def connect(address: str | None) -> bool:
    """Connect this process to Ray: the running connection, the cluster at `address`, or a new local instance.
    True when this call started or joined Ray (so the caller disconnects at the end)."""
    import ray

    if ray.is_initialized():
        return False
    ray.init(address=address)
    return True


def serve_on_ray(args, server: ServerConfig, model: ModelConfig, engine: EngineConfig) -> int:
    """`scorekit serve --ray-replicas N`: deploy, log where, serve until SIGINT/SIGTERM, then remove the app."""
    try:
        import ray
        from ray import serve

        from scorekit.ray.serve import DEFAULT_MAX_ONGOING_REQUESTS, application
    except ImportError:
        print(f"scorekit: error: {NEEDS_RAY}", file=sys.stderr)
        return 2
    app = application(model, engine, server, num_replicas=args.ray_replicas, replica_cpus=args.ray_replica_cpus,
                      min_replicas=args.ray_min_replicas, max_replicas=args.ray_max_replicas,
                      max_ongoing_requests=args.ray_max_ongoing_requests or DEFAULT_MAX_ONGOING_REQUESTS)
    connected = connect(args.ray_address)
    stop = threading.Event()
    try:
        serve.start(http_options={"host": server.host, "port": server.port})
        host, port = _proxy_address()
        if (host, port) != (server.host, server.port):
            # Serve's HTTP options are cluster-wide and fixed while Serve runs (ray.serve.start): say where we are
            log.warning("Ray Serve already runs on this cluster with its proxies on %s:%d; --host %s --port %d "
                        "cannot change that while it runs (serve shutdown first)", host, port, server.host,
                        server.port)
        serve.run(app, name=APP_NAME, route_prefix="/")
        log.info("scorekit serving on Ray Serve: %d replica(s) of %s, %.3g CPU each, on http://%s:%d%s",
                 args.ray_replicas, model.model or "the embedded all-MiniLM-L6-v2", args.ray_replica_cpus,
                 host, port, " (API key required)" if server.api_keys else "")
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            while not stop.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass
        log.info("scorekit: removing the Ray Serve application %r", APP_NAME)
        serve.delete(APP_NAME)
    finally:
        if connected:
            if args.ray_address is None:
                serve.shutdown()  # our own local Ray: nothing else uses its Serve
            ray.shutdown()
    return 0


def _proxy_address() -> tuple[str, int]:
    """Where Serve's proxies listen (Serve's client keeps it; there is no public getter in Ray 2.60)."""
    from ray.serve.context import _get_global_client

    options = _get_global_client().http_config
    return options.host, options.port


def run_batch_on_ray(args, model: ModelConfig, engine: EngineConfig, server: ServerConfig) -> int:
    """`scorekit run-batch --ray-actors N`: the same output file as without Ray."""
    try:
        import ray

        from scorekit.ray.batch import run_batch_on_ray as run
    except ImportError:
        print(f"scorekit: error: {NEEDS_RAY}", file=sys.stderr)
        return 2
    connected = connect(args.ray_address)
    try:
        total, failures = run(args.input_file, args.output_file, model, engine, server, args.ray_actors,
                              args.ray_actor_cpus)
    finally:
        if connected:
            ray.shutdown()
    log.info("run-batch on %d Ray actors: %d requests, %d failed, results in %s", args.ray_actors, total, failures,
             args.output_file)
    return 0
