"""The `scorekit` command: `serve`, `run-batch` and `convert`. Flags are named as vLLM names them."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

log = logging.getLogger("scorekit")


def _model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runner", choices=["auto", "pooling", "generate"], default="auto",
                        help="pooling: score/rerank/embed; generate: generative scoring (default: from the model)")
    parser.add_argument("--hf-overrides", type=json.loads, default=None, metavar="JSON",
                        help="patch the HF config, e.g. '{\"architectures\": [...], \"classifier_from_token\": [...]}'")
    parser.add_argument("--chat-template", default=None, metavar="FILE",
                        help="score template (file path or a packaged name such as qwen3_reranker)")
    parser.add_argument("--max-model-len", type=int, default=None)
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--task", choices=["embed", "classify", "token_embed"], default=None,
                        help="force a pooling task, e.g. token_embed to serve an encoder as late interaction")
    parser.add_argument("--quantization", choices=["int8"], default=None,
                        help="int8: dynamic int8 linear layers (CPU only; faster, small score deviation)")
    parser.add_argument("--max-num-batched-tokens", type=int, default=16384,
                        help="token budget of one engine batch (padded tokens counted)")
    parser.add_argument("--max-num-seqs", type=int, default=256, help="sequences in one engine batch at most")
    parser.add_argument("--enable-prefix-caching", action=argparse.BooleanOptionalAction, default=True,
                        help="decoder prompts sharing a prefix (template + query) compute it once")
    parser.add_argument("--served-model-name", nargs="+", action="extend", default=None,
                        help="names clients may send as `model` (the first is echoed back)")


def _load(args) -> "object":
    from scorekit.llm import LLM

    return LLM(args.model, runner=args.runner, hf_overrides=args.hf_overrides, chat_template=args.chat_template,
               max_model_len=args.max_model_len, dtype=args.dtype, device=args.device, task=args.task,
               quantization=args.quantization, max_num_batched_tokens=args.max_num_batched_tokens,
               max_num_seqs=args.max_num_seqs, enable_prefix_caching=args.enable_prefix_caching)


def _served_names(args) -> list[str]:
    from scorekit.models.packaged import DEFAULT_MODEL_NAME

    return list(args.served_model_name or []) or [args.model or DEFAULT_MODEL_NAME]


def serve(args) -> int:
    import uvicorn

    from scorekit.server.app import build_app

    keys = list(args.api_key or [])
    if not keys and os.environ.get("SCOREKIT_API_KEY"):
        keys = [os.environ["SCOREKIT_API_KEY"]]
    llm = _load(args)
    names = _served_names(args)
    app = build_app(llm, names, keys, args.enable_request_id_headers)
    log.info("scorekit serving model %s (%s, task %s) as %s on http://%s:%d%s", llm.loaded.location.name,
             llm.info.architecture, llm.info.task, ", ".join(names), args.host, args.port,
             " (API key required)" if keys else "")
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.uvicorn_log_level,
                            access_log=not args.disable_uvicorn_access_log)
    uvicorn.Server(config).run()
    return 0


def run_batch(args) -> int:
    from scorekit.server.app import build_app
    from scorekit.server.batch import run_batch as run

    llm = _load(args)
    app = build_app(llm, _served_names(args))
    total, failures = run(app, args.input_file, args.output_file, progress=not args.no_progress)
    log.info("run-batch: %d requests, %d failed, results in %s", total, failures, args.output_file)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scorekit", description="Scoring, reranking and embeddings.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="HTTP server compatible with vLLM, Cohere, Jina and OpenAI clients")
    p.add_argument("model", nargs="?", default=None,
                   help="model folder, GGUF file or name (default: the embedded all-MiniLM-L6-v2)")
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=8000)
    _model_args(p)
    p.add_argument("--api-key", nargs="+", action="extend", default=None,
                   help="require `Authorization: Bearer KEY` (also env SCOREKIT_API_KEY)")
    p.add_argument("--enable-request-id-headers", action="store_true",
                   help="echo X-Request-Id in every response")
    p.add_argument("--disable-uvicorn-access-log", action="store_true")
    p.add_argument("--uvicorn-log-level", default="info",
                   choices=["critical", "error", "warning", "info", "debug", "trace"])
    p.set_defaults(func=serve)

    b = sub.add_parser("run-batch", help="run a JSONL file of /score, /rerank or /v1/embeddings requests")
    b.add_argument("-i", "--input-file", required=True)
    b.add_argument("-o", "--output-file", required=True)
    b.add_argument("--model", default=None)
    b.add_argument("--no-progress", action="store_true")
    _model_args(b)
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
