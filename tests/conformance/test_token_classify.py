"""vLLM's per-token classification (pooling task `token_classify`, the native task of `*ForTokenClassification`
models): ported from vLLM's tests/models/language/pooling/test_token_classification.py (boltuix/NeuroBERT-NER
there, compared with transformers' softmax of `logits[0]`; a tiny random BertForTokenClassification built from a
config here, MiniLM's tokenizer), plus the /pooling route (`task: "token_classify"`, vLLM's response shape: one
[tokens][num_labels] matrix per input) and LLM.encode(pooling_task="token_classify"). Tolerance 1e-5 (vLLM: 1e-2
in half precision)."""

from __future__ import annotations

import pytest
import torch

from scorekit import LLM, PoolingParams
from scorekit.config import ModelConfig
from scorekit.errors import ModelLoadError, UnsupportedTask
from tests.conformance.conftest import save_bert, served_config

MODEL_NAME = "boltuix/NeuroBERT-NER"
TEXTS = ["Barack Obama was born in Hawaii.", "Paris is the capital of France and home to the Louvre.",
         "no entities here"]
LABELS = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC"}


@pytest.fixture(scope="module")
def token_classifier(tmp_path_factory, minilm_dir):
    from transformers import BertForTokenClassification

    return save_bert(tmp_path_factory.mktemp("tiny-token-classifier"), BertForTokenClassification, minilm_dir,
                     seed=21, num_labels=len(LABELS), id2label=LABELS, label2id={v: k for k, v in LABELS.items()})


@pytest.fixture(scope="module")
def hf(token_classifier):
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(token_classifier))
    model = AutoModelForTokenClassification.from_pretrained(str(token_classifier)).eval()

    def logits(text: str) -> torch.Tensor:
        with torch.no_grad():
            return model(**tokenizer([text], return_tensors="pt")).logits[0]

    return logits


@pytest.fixture(scope="module")
def llm(token_classifier):
    llm = LLM(str(token_classifier))
    yield llm
    llm.engine.scheduler.stop()


def test_native_task(llm):
    assert llm.info.task == "token_classify" and llm.info.num_labels == len(LABELS)
    assert llm.info.score_type is None  # no scoring API, as vLLM


def test_encode_matches_transformers(llm, hf):
    outputs = llm.encode(TEXTS, pooling_task="token_classify", use_tqdm=False)
    for text, out in zip(TEXTS, outputs):
        expected = torch.softmax(hf(text), dim=-1)
        assert out.outputs.data.shape == expected.shape  # every token, special tokens included
        assert torch.allclose(out.outputs.data, expected, atol=1e-5)
    default = llm.encode(TEXTS[:1], use_tqdm=False)[0].outputs.data  # the model's own task by default
    assert torch.allclose(default, outputs[0].outputs.data, atol=1e-6)
    assert torch.allclose(llm.reward(TEXTS[:1], use_tqdm=False)[0].outputs.data, default, atol=1e-6)  # vLLM's reward


def test_use_activation_false_gives_logits(llm, hf):
    out = llm.encode(TEXTS[1:2], PoolingParams(use_activation=False), pooling_task="token_classify", use_tqdm=False)
    assert torch.allclose(out[0].outputs.data, hf(TEXTS[1]), atol=1e-5)


def test_batch_invariant(llm):
    alone = [llm.encode([t], pooling_task="token_classify", use_tqdm=False)[0].outputs.data for t in TEXTS]
    together = [o.outputs.data for o in llm.encode(TEXTS, pooling_task="token_classify", use_tqdm=False)]
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(alone, together))


def test_other_tasks_refused(llm):
    for task in ("embed", "token_embed", "classify"):
        with pytest.raises(UnsupportedTask):
            llm.encode(TEXTS[:1], pooling_task=task, use_tqdm=False)
    with pytest.raises(ValueError):
        llm.score("q", ["d"], use_tqdm=False)


def test_pooling_route(live_server, token_classifier, hf):
    with served_config(live_server, ModelConfig(str(token_classifier)), MODEL_NAME) as client:
        r = client.post("/pooling", json={"model": MODEL_NAME, "input": TEXTS[:2], "task": "token_classify"})
        r.raise_for_status()
        body = r.json()
        assert body["id"].startswith("pool-") and body["object"] == "list"
        for text, item in zip(TEXTS, body["data"]):
            assert item["object"] == "pooling"
            assert torch.allclose(torch.tensor(item["data"]), torch.softmax(hf(text), dim=-1), atol=1e-5)
        assert body["usage"]["prompt_tokens"] == sum(len(item["data"]) for item in body["data"])
        # The default task is the model's own; use_activation=false gives the logits.
        raw = client.post("/pooling", json={"model": MODEL_NAME, "input": TEXTS[0], "use_activation": False}).json()
        assert torch.allclose(torch.tensor(raw["data"][0]["data"]), hf(TEXTS[0]), atol=1e-5)
        for task in ("classify", "embed"):
            r = client.post("/pooling", json={"model": MODEL_NAME, "input": TEXTS[0], "task": task})
            assert r.status_code == 400 and "Unsupported task" in r.json()["error"]["message"]
        # A token classifier serves neither /classify nor the scoring routes (vLLM registers them by task).
        assert client.post("/classify", json={"input": TEXTS[0]}).status_code == 404
        assert client.post("/score", json={"queries": "a", "documents": "b"}).status_code == 404


def test_sequence_classifier_cannot_be_forced_to_token_classify(tiny_cross_encoder):
    with pytest.raises(ModelLoadError, match="ForTokenClassification"):
        LLM(str(tiny_cross_encoder), task="token_classify")


def test_missing_head_weight_is_a_load_error(tmp_path, token_classifier):
    import shutil

    from safetensors.torch import load_file, save_file

    folder = tmp_path / "no-head"
    shutil.copytree(token_classifier, folder)
    state = load_file(str(folder / "model.safetensors"))
    del state["classifier.bias"]
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ModelLoadError, match="classifier.bias"):
        LLM(str(folder))
