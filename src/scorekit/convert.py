"""`scorekit convert`: write a causal-LM reranker as a plain HF sequence-classification folder.

    scorekit convert Qwen2.5.gguf out/ --hf-overrides '{"architectures": ["Qwen2ForSequenceClassification"],
        "classifier_from_token": ["no", "yes"], "method": "from_2_way_softmax"}'

The classifier rows come from the LM head exactly as at load time (SPEC §6), so `transformers`
(`AutoModelForSequenceClassification`) and scorekit both load the result and give the same scores,
without any overrides.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from scorekit.models.loader import _classifier_from_lm_head, _state_dict, load_config, load_tokenizer
from scorekit.models.model_info import describe_model
from scorekit.models.resolve import resolve_model

_CONVERSION_KEYS = ("classifier_from_token", "method", "is_original_qwen3_reranker")


def convert(model: str, output: str | Path, hf_overrides: dict) -> Path:
    location = resolve_model(model)
    config = load_config(location, hf_overrides)
    info = describe_model(config, location.folder)
    if info.conversion is None or not info.is_decoder:
        raise SystemExit("convert needs a causal LM and hf_overrides with classifier_from_token (and method)")
    tokenizer = load_tokenizer(location)
    state = _state_dict(location, config)
    lm_head = state.get("lm_head.weight", state["model.embed_tokens.weight"])
    classifier = _classifier_from_lm_head(info, tokenizer, lm_head)

    weights = {k: v.contiguous() for k, v in state.items() if k.startswith("model.")}
    weights["score.weight"] = classifier.contiguous()
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})

    for key in _CONVERSION_KEYS:
        if hasattr(config, key):
            delattr(config, key)
    config.architectures = [info.architecture]
    config.num_labels = classifier.shape[0]
    config.use_sep_token = False  # q + d concatenated, as the converted reranker was trained/used
    config.problem_type = "multi_label_classification"  # sigmoid per label, as scorekit scores it
    if config.pad_token_id is None:
        config.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    config.torch_dtype = torch.float32
    config.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scorekit convert", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="model folder, GGUF file or cached hub id")
    parser.add_argument("output", help="folder to write")
    parser.add_argument("--hf-overrides", required=True, type=json.loads,
                        help='JSON, e.g. {"architectures": ["Qwen2ForSequenceClassification"], '
                             '"classifier_from_token": ["no", "yes"], "method": "from_2_way_softmax"}')
    args = parser.parse_args(argv)
    out = convert(args.model, args.output, args.hf_overrides)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
