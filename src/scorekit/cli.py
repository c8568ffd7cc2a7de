"""The `scorekit` command: `serve`, `run-batch` and `convert`. Flags are named as vLLM names them, and as in
vLLM's parser each is accepted with dashes or underscores (`--max-model-len` or `--max_model_len`).

The flags build the same frozen configs (scorekit/config.py) that `LLM(...)` builds from its keywords, so
each default is written once, there.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from dataclasses import fields

from scorekit.config import EngineConfig, ModelConfig, ServerConfig
from scorekit.media.policy import MediaConfig, limit_mm_per_prompt
from scorekit.ray.cli import add_ray_args, run_batch_on_ray, serve_on_ray  # imports no Ray

log = logging.getLogger("scorekit")

_MODEL = {f.name: f.default for f in fields(ModelConfig)}
_ENGINE = {f.name: f.default for f in fields(EngineConfig)}
_SERVER = {f.name: f.default for f in fields(ServerConfig)}
_MEDIA = {f.name: f.default for f in fields(MediaConfig)}


def _flag(parser: argparse.ArgumentParser, name: str, **kwargs) -> None:
    """`--name-with-dashes` and `--name_with_underscores`, one argument."""
    dashed = "--" + name.replace("_", "-")
    spellings = [dashed] + ([f"--{name}"] if "_" in name else [])
    parser.add_argument(*spellings, dest=name, **kwargs)


def _model_args(parser: argparse.ArgumentParser) -> None:
    _flag(parser, "runner", choices=["auto", "pooling", "generate"], default=_MODEL["runner"],
          help="pooling: score/rerank/embed; generate: generative scoring (default: from the model)")
    _flag(parser, "hf_overrides", type=json.loads, default=None, metavar="JSON",
          help="patch the HF config, e.g. '{\"architectures\": [...], \"classifier_from_token\": [...]}'")
    _flag(parser, "chat_template", default=None, metavar="FILE",
          help="score template (file path or a packaged name such as qwen3_reranker)")
    _flag(parser, "max_model_len", type=int, default=None)
    _flag(parser, "dtype", default=_MODEL["dtype"])
    _flag(parser, "device", default=_MODEL["device"])
    _flag(parser, "task", choices=["embed", "classify", "token_embed", "token_classify"], default=None,
          help="force a pooling task, e.g. token_embed to serve an encoder as late interaction")
    _flag(parser, "quantization", choices=["int8"], default=None,
          help="int8: dynamic int8 linear layers (CPU only; faster, small score deviation)")
    _flag(parser, "max_num_batched_tokens", type=int, default=_ENGINE["max_num_batched_tokens"],
          help="token budget of one engine batch (padded tokens counted)")
    _flag(parser, "max_num_seqs", type=int, default=_ENGINE["max_num_seqs"], help="sequences in one engine batch at most")
    _flag(parser, "enable_prefix_caching", action=argparse.BooleanOptionalAction,
          default=_ENGINE["enable_prefix_caching"],
          help="decoder prompts sharing a prefix (template + query) compute it once")
    _flag(parser, "chunk_tokens", type=int, default=_ENGINE["chunk_tokens"],
          help="a large request runs in chunks of about this many tokens; other requests are served between them")
    _flag(parser, "score_cache_bytes", type=int, default=_ENGINE["score_cache_bytes"],
          help="bytes of earlier outputs kept for repeated prompts (documents seen before); 0 turns it off")
    _flag(parser, "scheduling_policy", choices=["fcfs", "priority"], default=_ENGINE["scheduling_policy"],
          help="priority: obey the requests' `priority` field (lower first); fcfs: a non-zero priority is a 400")
    _flag(parser, "convert", choices=["auto", "none", "embed", "classify"], default=_MODEL["convert"],
          help="embed: serve a causal LM as an embedding model; classify: as a classifier; none: as it is")
    _flag(parser, "pooler_config", type=json.loads, default=None, metavar="JSON",
          help="pooling and activation defaults, e.g. '{\"pooling_type\": \"MEAN\", \"normalize\": false}'")
    _flag(parser, "trust_remote_code", action="store_true",
          help="let transformers run the model's own code (architectures it does not ship)")
    _flag(parser, "revision", default=None, help="the revision of a hub model (branch, tag or commit)")
    _flag(parser, "download_dir", default=None, help="where hub models are downloaded (default: the HF cache)")
    _flag(parser, "served_model_name", nargs="+", action="extend", default=None,
          help="names clients may send as `model` (the first is echoed back; default: the model's folder or file name)")


def _configs(args) -> tuple[ModelConfig, EngineConfig]:
    model = ModelConfig(model=args.model, runner=args.runner, task=args.task, hf_overrides=args.hf_overrides,
                        chat_template=args.chat_template, max_model_len=args.max_model_len, dtype=args.dtype,
                        device=args.device, quantization=args.quantization, convert=args.convert,
                        pooler_config=args.pooler_config, trust_remote_code=args.trust_remote_code,
                        revision=args.revision, download_dir=args.download_dir)
    engine = EngineConfig(max_num_batched_tokens=args.max_num_batched_tokens, max_num_seqs=args.max_num_seqs,
                          enable_prefix_caching=args.enable_prefix_caching, chunk_tokens=args.chunk_tokens,
                          score_cache_bytes=args.score_cache_bytes,
                          scheduling_policy=args.scheduling_policy)
    return model, engine


def _server_config(args, api_keys: list[str]) -> ServerConfig:
    return ServerConfig(host=getattr(args, "host", _SERVER["host"]), port=getattr(args, "port", _SERVER["port"]),
                        served_model_names=tuple(args.served_model_name or ()), api_keys=tuple(api_keys),
                        enable_request_id_headers=getattr(args, "enable_request_id_headers", False),
                        max_request_bytes=args.max_request_bytes, max_client_batch_size=args.max_client_batch_size,
                        max_chunks_per_doc=args.max_chunks_per_doc,
                        timeout_graceful_shutdown=getattr(args, "timeout_graceful_shutdown",
                                                          _SERVER["timeout_graceful_shutdown"]),
                        disable_uvicorn_access_log=getattr(args, "disable_uvicorn_access_log", False),
                        uvicorn_log_level=getattr(args, "uvicorn_log_level", _SERVER["uvicorn_log_level"]))


def _media_args(parser: argparse.ArgumentParser) -> None:
    """Images of multimodal inputs (media/policy.py; docs/multimodal.md). vLLM's names where vLLM has the flag."""
    _flag(parser, "allowed_local_media_path", default=None, metavar="DIR",
          help="let requests read file:// images from inside DIR (symlinks and .. resolved first); off by default")
    _flag(parser, "allowed_media_domains", nargs="+", action="extend", default=None, metavar="DOMAIN",
          help="fetch http(s) images only from these hosts or their subdomains (default: any host)")
    _flag(parser, "trust_request_mm_kwargs", action="store_true",
          help="accept per-request mm_processor_kwargs (refused with a 400 otherwise)")
    _flag(parser, "mm_processor_kwargs", type=json.loads, default=None, metavar="JSON",
          help="the model's image processor settings, e.g. '{\"max_pixels\": 1003520}' for Qwen-VL (keys the "
               "model's processor does not take stop the load)")
    _flag(parser, "limit_mm_per_prompt", type=json.loads, default=None, metavar="JSON",
          help="vLLM's per-input limit, e.g. '{\"image\": 2}': most images in one query or document")
    _flag(parser, "max_images_per_request", type=int, default=_MEDIA["max_images_per_request"],
          help="most images in one request, across all its inputs; more get 413")
    _flag(parser, "media_fetch_timeout", type=float, default=_MEDIA["media_fetch_timeout"], metavar="SECONDS",
          help="the whole fetch of one http(s) image (connect, headers and body)")
    _flag(parser, "max_image_bytes", type=int, default=_MEDIA["max_image_bytes"],
          help="largest encoded image (download, data: URL or file); larger ones get 413")
    _flag(parser, "max_image_pixels", type=int, default=_MEDIA["max_image_pixels"],
          help="most pixels (width x height) of one image, checked from its header before decoding; more get 413")
    _flag(parser, "max_media_redirects", type=int, default=_MEDIA["max_media_redirects"],
          help="redirects followed per http(s) image (each hop's host checked against --allowed-media-domains)")
    _flag(parser, "media_io_threads", type=int, default=_MEDIA["media_io_threads"],
          help="threads fetching and decoding images for all requests together")


def _media_config(args) -> MediaConfig:
    return MediaConfig(allowed_local_media_path=args.allowed_local_media_path,
                       allowed_media_domains=tuple(args.allowed_media_domains or ()),
                       trust_request_mm_kwargs=args.trust_request_mm_kwargs,
                       mm_processor_kwargs=args.mm_processor_kwargs,
                       max_images_per_prompt=limit_mm_per_prompt(args.limit_mm_per_prompt),
                       max_images_per_request=args.max_images_per_request,
                       media_fetch_timeout=args.media_fetch_timeout, max_image_bytes=args.max_image_bytes,
                       max_image_pixels=args.max_image_pixels, max_media_redirects=args.max_media_redirects,
                       media_io_threads=args.media_io_threads)


def _load(args, media: MediaConfig | None = None):
    from scorekit.llm import LLM

    return LLM.from_configs(*_configs(args), media)


def _fail(message: str) -> int:
    print(f"scorekit: error: {message}", file=sys.stderr)
    return 2


def serve(args) -> int:
    import uvicorn

    from scorekit import runtime
    from scorekit.server.app import build_app
    from scorekit.server.state import default_served_name

    keys = list(args.api_key or [])
    if args.api_key is None and os.environ.get("SCOREKIT_API_KEY") is not None:
        keys = [os.environ["SCOREKIT_API_KEY"]]
    try:
        config = _server_config(args, keys)  # refuses an empty or blank key before anything loads
        media = _media_config(args)  # and a missing --allowed-local-media-path, a bad limit
    except ValueError as exc:
        return _fail(str(exc))
    if args.ray_replicas and media != MediaConfig():  # refused, never dropped: replicas build their own LLM
        return _fail("the image flags (--allowed-local-media-path, --allowed-media-domains, media limits) are not "
                     "passed to Ray replicas; serve without --ray-replicas to use them")
    if args.ray_replicas:  # replicas on Ray: each sets up its own process
        return serve_on_ray(args, config, *_configs(args))
    runtime.apply()  # allocator, matmul backend: the server owns its process
    llm = _load(args, media)
    app = build_app(llm, config)
    state = app.state.scorekit
    log.info("scorekit serving model %s (%s, task %s) as %s on http://%s:%d%s", default_served_name(llm),
             llm.info.architecture, llm.info.task, ", ".join(state.served_model_names), config.host, config.port,
             " (API key required)" if config.api_keys else "")
    uvicorn_config = uvicorn.Config(app, host=config.host, port=config.port, log_level=config.uvicorn_log_level,
                                    access_log=not config.disable_uvicorn_access_log,
                                    timeout_graceful_shutdown=config.timeout_graceful_shutdown)
    # uvicorn answers SIGTERM/SIGINT with a graceful shutdown, then raises the signal again to whatever handler
    # was there before it: with Python's default the process would die of it (exit -15) after shutting down
    # cleanly. This handler lets `serve` return, so a SIGTERM'd server exits 0.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _after_graceful_shutdown)
    uvicorn.Server(uvicorn_config).run()
    # Requests still running past the grace time were cancelled: their work stops after its current batch.
    if not llm.engine.scheduler.stop(timeout=30):
        log.warning("scorekit: a model thread was still running at exit")
    return 0


def _after_graceful_shutdown(signum, frame) -> None:
    log.info("scorekit: shut down after %s", signal.Signals(signum).name)


def run_batch(args) -> int:
    from scorekit.server.app import build_app
    from scorekit.server.batch import run_batch as run

    try:
        media = _media_config(args)
    except ValueError as exc:
        return _fail(str(exc))
    if args.ray_actors and media != MediaConfig():
        return _fail("the image flags are not passed to Ray actors; run without --ray-actors to use them")
    if args.ray_actors:
        return run_batch_on_ray(args, *_configs(args), _server_config(args, []))
    app = build_app(_load(args, media), _server_config(args, []))
    total, failures = run(app, args.input_file, args.output_file, progress=not args.no_progress)
    log.info("run-batch: %d requests, %d failed, results in %s", total, failures, args.output_file)
    return 0


def _limit_args(parser: argparse.ArgumentParser) -> None:
    _flag(parser, "max_request_bytes", type=int, default=_SERVER["max_request_bytes"],
          help="largest request body accepted; larger ones get 413")
    _flag(parser, "max_client_batch_size", type=int, default=_SERVER["max_client_batch_size"],
          help="most inputs (documents, texts, items) in one request; more get 413")
    _flag(parser, "max_chunks_per_doc", type=int, default=_SERVER["max_chunks_per_doc"],
          help="default for score/rerank requests: >1 scores long documents as that many windows at most")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scorekit", description="Scoring, reranking and embeddings.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="HTTP server compatible with vLLM, Cohere, Jina and OpenAI clients")
    p.add_argument("model", nargs="?", default=None,
                   help="model folder, GGUF file or name (default: the embedded all-MiniLM-L6-v2)")
    _flag(p, "host", default=_SERVER["host"])
    _flag(p, "port", type=int, default=_SERVER["port"])
    _model_args(p)
    _limit_args(p)
    _media_args(p)
    _flag(p, "api_key", nargs="+", action="extend", default=None,
          help="require `Authorization: Bearer KEY` (also env SCOREKIT_API_KEY); an empty key is refused")
    _flag(p, "enable_request_id_headers", action="store_true", help="echo X-Request-Id in every response")
    _flag(p, "enable_offline_docs", action="store_true",
          help="accepted for vLLM's command lines: scorekit's /docs and /redoc never load assets from the internet")
    _flag(p, "timeout_graceful_shutdown", type=float, default=_SERVER["timeout_graceful_shutdown"],
          help="seconds in-flight requests get to finish after SIGTERM; new ones are refused meanwhile")
    _flag(p, "disable_uvicorn_access_log", action="store_true")
    _flag(p, "uvicorn_log_level", default=_SERVER["uvicorn_log_level"],
          choices=["critical", "error", "warning", "info", "debug", "trace"])
    add_ray_args(p)
    p.set_defaults(func=serve)

    b = sub.add_parser("run-batch", help="run a JSONL file of /score, /rerank, /v1/embeddings, ... requests")
    b.add_argument("-i", "--input-file", "--input_file", dest="input_file", required=True)
    b.add_argument("-o", "--output-file", "--output_file", dest="output_file", required=True)
    _flag(b, "model", default=None)
    _flag(b, "no_progress", action="store_true")
    _model_args(b)
    _limit_args(b)
    _media_args(b)
    add_ray_args(b, batch=True)
    b.set_defaults(func=run_batch)

    c = sub.add_parser("convert", help="convert a model (see `scorekit convert --help`)", add_help=False)
    c.set_defaults(func=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(asctime)s %(name)s: %(message)s")
    if argv and argv[0] == "convert":
        from scorekit import convert  # written separately; imported only when used

        return convert.main(argv[1:]) or 0
    args = build_parser().parse_args(argv)
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
