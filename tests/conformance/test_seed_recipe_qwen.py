"""The seed's reranker recipe command (tests/server/test_cli_flags.py parses it; SPEC §6, docs/models.md: the
Qwen3-Reranker overrides `classifier_from_token: ["no", "yes"]` + `is_original_qwen3_reranker`, the
`qwen3_reranker` template) run as written through `scorekit serve`, with only host, port and model path
changed: the model is the packaged Qwen2.5-0.5B GGUF, a real causal LM. (The override's architecture name picks
the sequence-classification head; the backbone is the checkpoint's own, Qwen2.)

The reference is computed by hand with transformers: the Qwen3-Reranker prompt written out from its model card,
the causal LM's logits at the last position, and P(yes) = softmax over (no, yes) — what the original
reranker computes. Slow: the server and transformers each load the 0.5B model (about 45 s each here)."""

from __future__ import annotations

import json

import httpx
import pytest
import torch

OVERRIDES = {"architectures": ["Qwen3ForSequenceClassification"], "classifier_from_token": ["no", "yes"],
             "is_original_qwen3_reranker": True}
API_KEY = "k"
QUERY = "Why is the sky blue?"
DOCUMENTS = ["Sunlight is scattered by air molecules; blue light scatters most (Rayleigh scattering).",
             "Bananas are rich in potassium."]
DEFAULT_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"


def recipe(model_path: str) -> list[str]:
    """The command of tests/server/test_cli_flags.py, dash spelling, with our model path."""
    return [model_path, "--hf-overrides", json.dumps(OVERRIDES), "--chat-template", "qwen3_reranker",
            "--max-model-len", "4096", "--served-model-name", "reranker", "--convert", "classify",
            "--pooler-config", '{"pooling_type": "LAST"}', "--trust-remote-code", "--enable-offline-docs",
            "--max-num-seqs", "64", "--enable-prefix-caching", "--max-request-bytes", "1000", "--api-key", API_KEY]


def qwen3_reranker_prompt(query: str, document: str, instruction: str) -> str:
    """The prompt of the Qwen3-Reranker model card, written out by hand."""
    return ("<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the "
            'Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
            f"<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {document}<|im_end|>\n"
            "<|im_start|>assistant\n<think>\n\n</think>\n\n")


@pytest.fixture(scope="module")
def qwen_path():
    from scorekit.models.packaged import PackagedModelMissing, qwen25_gguf

    try:
        return qwen25_gguf()
    except PackagedModelMissing as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def server(qwen_path, cli_server_starter, tmp_path_factory):
    proc, url = cli_server_starter(recipe(str(qwen_path)), tmp_path_factory.mktemp("recipe") / "serve.log",
                                   timeout=400)
    try:
        with httpx.Client(base_url=url, timeout=300, trust_env=False,
                          headers={"Authorization": f"Bearer {API_KEY}"}) as client:
            yield client
    finally:
        proc.terminate()
        proc.wait(timeout=60)


@pytest.fixture(scope="module")
def reference(qwen_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(qwen_path.parent), qwen_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32).eval()
    no, yes = tokenizer.convert_tokens_to_ids(["no", "yes"])

    def p_yes(query: str, document: str, instruction: str = DEFAULT_INSTRUCTION) -> float:
        ids = tokenizer(qwen3_reranker_prompt(query, document, instruction), return_tensors="pt")["input_ids"]
        with torch.no_grad():
            last = model(input_ids=ids).logits[0, -1]
        return float(torch.softmax(last[[no, yes]], dim=-1)[1])

    return p_yes


@pytest.mark.slow
def test_the_recipe_scores_p_yes_at_the_last_position(server, reference):
    r = server.post("/rerank", json={"model": "reranker", "query": QUERY, "documents": DOCUMENTS})
    assert r.status_code == 200, r.text
    got = {res["index"]: res["relevance_score"] for res in r.json()["results"]}
    expected = {i: reference(QUERY, d) for i, d in enumerate(DOCUMENTS)}
    assert got == pytest.approx(expected, abs=1e-4)
    assert r.json()["results"][0]["index"] == 0  # the real model judges the relevant passage higher


@pytest.mark.slow
def test_the_instruction_reaches_the_template(server, reference):
    instruction = "Find passages about fruit"
    r = server.post("/score", json={"model": "reranker", "queries": QUERY, "documents": DOCUMENTS[1:],
                                    "instruction": instruction})
    assert r.status_code == 200, r.text
    assert r.json()["data"][0]["score"] == pytest.approx(reference(QUERY, DOCUMENTS[1], instruction), abs=1e-4)
