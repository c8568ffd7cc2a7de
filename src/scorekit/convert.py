"""`scorekit convert`: write a causal-LM reranker as a plain HF sequence-classification folder.

    scorekit convert Qwen2.5.gguf out/ --hf-overrides '{"architectures": ["Qwen2ForSequenceClassification"],
        "classifier_from_token": ["no", "yes"], "method": "from_2_way_softmax"}'

Any causal LM that `transformers` has a *ForSequenceClassification class for (Llama, Qwen2/3, Gemma,
Gemma2/3, Mistral, Phi, ...). The classifier rows come from the LM head exactly as at load time
(models/decoder_heads.py), so `transformers` (`AutoModelForSequenceClassification`) and scorekit both load
the result and give the same scores, without any overrides. The written folder must cover the
sequence-classification model exactly: a base-model weight the source lacks, or a source tensor that would
be dropped (anything but the LM head), is refused, as loading refuses it (docs/models.md).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from scorekit.errors import ModelLoadError
from scorekit.models.decoder_heads import LabelTokenHead
from scorekit.models.loader import _state_dict, load_config, load_tokenizer
from scorekit.models.model_info import describe_model
from scorekit.models.resolve import resolve_model
from scorekit.models.strict_weights import name_keys

_CONVERSION_KEYS = ("classifier_from_token", "method", "is_original_qwen3_reranker")


def _sequence_classification_class(info, model_type: str):
    import transformers
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES

    name = info.architecture if info.architecture.endswith("ForSequenceClassification") else None
    name = name or MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES.get(model_type)
    cls = getattr(transformers, name, None) if name else None
    if cls is None:
        raise ModelLoadError(f"transformers has no sequence-classification class for model_type {model_type!r}")
    return cls


def _lm_head_key(config, state: dict) -> str:
    """The checkpoint key of the LM head's matrix: its own, or (tied) the input embeddings it shares.
    Asked of the transformers causal-LM class itself (on the meta device: no memory), so any naming works."""
    from transformers import AutoModelForCausalLM

    causal_config = copy.deepcopy(config)
    causal_config.architectures = None
    with torch.device("meta"):
        causal = AutoModelForCausalLM.from_config(causal_config)
    head = causal.get_output_embeddings()
    names = [n for n, p in causal.named_parameters(remove_duplicate=False) if head is not None and p is head.weight]
    found = [n for n in names if n in state]
    if not found:
        raise ModelLoadError(f"the checkpoint has no language-model head (looked for {names or 'an LM head'})")
    return found[0]


def convert(model: str, output: str | Path, hf_overrides: dict) -> Path:
    location = resolve_model(model)
    config = load_config(location, hf_overrides)
    info = describe_model(config, location.folder)
    if info.conversion is None or not info.is_decoder:
        raise ModelLoadError("convert needs a causal LM and hf_overrides with classifier_from_token (and method)")
    tokenizer = load_tokenizer(location)
    state = _state_dict(location, config)
    head_key = _lm_head_key(config, state)
    text = config.get_text_config()
    rows = LabelTokenHead.from_conversion(info.conversion, tokenizer).linear_rows(
        state[head_key], getattr(text, "final_logit_softcapping", None))

    seq_config = copy.deepcopy(config)
    for key in _CONVERSION_KEYS:
        if hasattr(seq_config, key):
            delattr(seq_config, key)
    seq_class = _sequence_classification_class(info, config.model_type)
    seq_config.architectures = [seq_class.__name__]
    seq_config.num_labels = rows.shape[0]
    seq_config.use_sep_token = False  # q + d concatenated, as the converted reranker was trained/used
    seq_config.problem_type = "multi_label_classification"  # sigmoid per label, as scorekit scores it
    if seq_config.pad_token_id is None:
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        seq_config.pad_token_id = pad
    with torch.device("meta"):
        skeleton = seq_class(seq_config)
    if not isinstance(getattr(skeleton, "score", None), torch.nn.Linear):
        raise ModelLoadError(f"{seq_class.__name__} has no `score` Linear head to write the classifier into")

    head_params = {f"score.{name}" for name, _ in skeleton.score.named_parameters()}
    expected = set(skeleton.state_dict()) - head_params
    missing = expected - set(state)
    # The LM head is the one tensor a sequence classifier drops: its label rows are now the `score` head.
    dropped = set(state) - expected - ({head_key} if head_key not in expected else set())
    if missing or dropped:
        raise ModelLoadError(
            f"{seq_class.__name__} does not fit this checkpoint: "
            + "; ".join(([f"missing {name_keys(missing)}"] if missing else [])
                        + ([f"would drop {name_keys(dropped)}"] if dropped else [])))
    weights = {k: state[k].contiguous() for k in expected}
    weights["score.weight"] = rows.contiguous()
    if "score.bias" in head_params:
        weights["score.bias"] = torch.zeros(rows.shape[0])  # the conversion's classifier has no bias
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})

    seq_config.dtype = state[head_key].dtype if state[head_key].is_floating_point() else torch.float32
    seq_config.save_pretrained(str(out))
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
    try:
        out = convert(args.model, args.output, args.hf_overrides)
    except ModelLoadError as exc:
        print(f"scorekit convert: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
