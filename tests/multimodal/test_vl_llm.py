"""LLM(folder) end to end on B2's tiny random VL models: ColPali MaxSim and a Qwen-VL converted reranker and
generative scorer take image Content; scores equal transformers' forward within 1e-5, batches are invariant,
usage counts the image tokens."""

from __future__ import annotations

import pytest
import torch

from scorekit import LLM
from scorekit.media.content import Content, ImagePart
from scorekit.models.vision.qwen_vl import process_images
from tests.multimodal.vl_models import QWEN_IMAGE, random_image, tiny_colpali, tiny_colqwen2, tiny_qwen_vl

TOL = 1e-5


def _image(seed: int) -> Content:
    return Content((ImagePart(random_image(seed), f"img-{seed}"),))


def _maxsim(q, d) -> float:
    return float((q @ d.T).max(dim=1).values.sum())


@pytest.mark.parametrize("build", [tiny_colpali, tiny_colqwen2], ids=["colpali", "colqwen2"])
def test_colpali_score_equals_transformers(tmp_path, build):
    tiny = build()
    llm = LLM(str(tiny.save(tmp_path / "colvision")))
    query, image = "what is on this page?", random_image(1)
    docs = [_image(1), "a text page", _image(2)]
    out = llm.score(query, docs)
    with torch.no_grad():
        def tokens(batch):
            emb = tiny.model(**batch).embeddings[0]
            return emb[batch["attention_mask"][0].bool()]
        q = tokens(tiny.processor.process_queries([query], return_tensors="pt"))
        d = tokens(tiny.processor.process_images([image], return_tensors="pt"))
    assert out[0].outputs.score == pytest.approx(_maxsim(q, d), abs=TOL)
    alone = [llm.score(query, [d])[0].outputs.score for d in docs]
    assert [o.outputs.score for o in out] == pytest.approx(alone, abs=TOL)  # mixed batch = alone


@pytest.fixture(scope="module", params=["qwen2_vl", "qwen2_5_vl", "qwen3_vl"])
def qwen(tmp_path_factory, request):
    tiny = tiny_qwen_vl(request.param)
    return tiny, str(tiny.save(tmp_path_factory.mktemp("qwen")))


def _last_logits(tiny, text: str, images) -> torch.Tensor:
    processed = process_images(tiny.image_processor, images)
    ids = tiny.tokenizer(text)["input_ids"]
    pad = tiny.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    merge = tiny.model.config.vision_config.spatial_merge_size
    from scorekit.models.vision.qwen_vl import expand_image_pads
    ids = torch.tensor([expand_image_pads(ids, pad, [i.tokens(merge) for i in processed])])
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids),
              "mm_token_type_ids": (ids == tiny.model.config.image_token_id).int()}
    if processed:
        inputs["pixel_values"] = torch.cat([i.pixel_values for i in processed])
        inputs["image_grid_thw"] = torch.cat([i.image_grid_thw for i in processed])
    with torch.no_grad():
        return tiny.model(**inputs).logits[0, -1], ids.shape[1]


def test_qwen_vl_converted_reranker_with_an_image_document(qwen):
    tiny, folder = qwen
    llm = LLM(folder, hf_overrides={"architectures": ["Qwen2VLForSequenceClassification"],
                                    "classifier_from_token": ["no", "yes"], "method": "from_2_way_softmax"})
    query = "a cat in the snow"
    docs_dicts = ["plain text", {"content": [{"type": "image_pil", "image_pil": random_image(1)}]}]
    docs = ["plain text", _image(1), Content(("caption", ImagePart(random_image(2), "img-2")))]
    out = llm.score(query, docs)
    logits, n = _last_logits(tiny, query + QWEN_IMAGE, [random_image(1)])
    yes, no = tiny.tokenizer.convert_tokens_to_ids(["yes", "no"])
    assert out[1].outputs.score == pytest.approx(float(torch.sigmoid(logits[yes] - logits[no])), abs=TOL)
    assert len(out[1].prompt_token_ids) == n  # the image's expanded tokens are prompt tokens
    alone = [llm.score(query, [d])[0].outputs.score for d in docs]
    assert [o.outputs.score for o in out] == pytest.approx(alone, abs=TOL)
    ranked = llm.rerank(query, docs)  # rerank called directly with image documents
    assert [r.index for r in ranked] == sorted(range(3), key=lambda i: -alone[i])
    assert [r.relevance_score for r in ranked] == pytest.approx(sorted(alone, reverse=True), abs=TOL)
    assert ranked[[r.index for r in ranked].index(1)].document is docs[1]
    top = llm.rerank(query, docs_dicts, top_n=1)  # vLLM's dict form, resolved like score's
    assert top[0].relevance_score == pytest.approx(max(alone[:2]), abs=TOL)


def test_qwen_vl_generative_score_with_an_image_item(qwen):
    tiny, folder = qwen
    llm = LLM(folder)
    yes, no = tiny.tokenizer.convert_tokens_to_ids(["yes", "no"])
    out = llm.generative_score("Is this a cat? ", [_image(3), "no picture"], [yes, no])
    logits, _ = _last_logits(tiny, "Is this a cat? " + QWEN_IMAGE, [random_image(3)])
    assert out[0].outputs.score == pytest.approx(float(torch.softmax(logits[[yes, no]], 0)[0]), abs=TOL)


# The Qwen3-VL-Reranker prompt as its authors build it (QwenLM/Qwen3-VL-Embedding, src/models/qwen3_vl_reranker.py
# `format_mm_instruction` through the checkpoint's chat template): system turn, then one user turn of the parts
# "<Instruct>: " + instruction, "<Query>:", the query's image(s) and text, "\n<Document>:", the document's image(s)
# and text, then the opened assistant turn (no think block).
def _authors_prompt(instruction: str, query: str, document: str, document_images: int) -> str:
    return ("<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the "
            'Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
            f"<Instruct>: {instruction}<Query>:{query}\n<Document>:{QWEN_IMAGE * document_images}{document}"
            "<|im_end|>\n<|im_start|>assistant\n")


def test_qwen3_vl_reranker_recipe_end_to_end(tmp_path):
    """vLLM's recipe on a tiny Qwen3-VL: hf_overrides Qwen3VLForSequenceClassification + classifier_from_token
    ["no", "yes"] + is_original_qwen3_reranker, the qwen3_vl_reranker template. The prompt is the authors' (image
    after "<Document>:", before the document's text), the score transformers' sigmoid(l_yes - l_no) at the last
    position computed by hand, and `instruction` replaces the default instruction."""
    tiny = tiny_qwen_vl("qwen3_vl")
    llm = LLM(str(tiny.save(tmp_path / "qwen3vl")), chat_template="qwen3_vl_reranker",
              hf_overrides={"architectures": ["Qwen3VLForSequenceClassification"],
                            "classifier_from_token": ["no", "yes"], "is_original_qwen3_reranker": True})
    query, default = "A cat standing in the snow.", "Given a search query, retrieve relevant candidates that answer the query."
    docs = ["This product was excellent.", _image(7), Content(("This product was excellent.", ImagePart(random_image(7), "img-7")))]
    expected = [(_authors_prompt(default, query, "This product was excellent.", 0), []),
                (_authors_prompt(default, query, "", 1), [random_image(7)]),
                (_authors_prompt(default, query, "This product was excellent.", 1), [random_image(7)])]
    out = llm.score(query, docs)
    yes, no = tiny.tokenizer.convert_tokens_to_ids(["yes", "no"])
    for o, (text, images) in zip(out, expected):
        logits, n = _last_logits(tiny, text, images)
        processed = process_images(tiny.image_processor, images)
        from scorekit.models.vision.qwen_vl import expand_image_pads
        pad = tiny.tokenizer.convert_tokens_to_ids("<|image_pad|>")
        ids = expand_image_pads(tiny.tokenizer(text)["input_ids"], pad, [i.tokens(2) for i in processed])
        assert o.prompt_token_ids == ids  # the authors' prompt, token for token
        assert o.outputs.score == pytest.approx(float(torch.sigmoid(logits[yes] - logits[no])), abs=TOL)
    ranked = llm.rerank(query, docs, instruction="Find the picture.")
    logits, _ = _last_logits(tiny, _authors_prompt("Find the picture.", query, "", 1), [random_image(7)])
    by_index = {r.index: r.relevance_score for r in ranked}
    assert by_index[1] == pytest.approx(float(torch.sigmoid(logits[yes] - logits[no])), abs=TOL)
