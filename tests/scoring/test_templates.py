"""Score templates: shipped files render the models' documented prompt formats; kwargs are filtered."""

from __future__ import annotations

import pytest

from scorekit.errors import ValidationError
from scorekit.scoring.templates import check_template_kwargs, load_template, render_score_prompt, shipped_templates


def test_shipped_templates_are_packaged():
    assert {"qwen3_reranker", "mxbai_rerank_v2", "bge-reranker-v2-gemma", "nemotron-rerank"} <= set(shipped_templates())


def test_qwen3_reranker_format():
    text = render_score_prompt(load_template("qwen3_reranker"), "what is x?", "x is y.", {})
    assert text.startswith("<|im_start|>system\nJudge whether the Document meets the requirements")
    assert "<Instruct>: Given a web search query, retrieve relevant passages that answer the query\n" in text
    assert "<Query>: what is x?\n<Document>: x is y.<|im_end|>\n" in text
    assert text.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


def test_instruction_kwarg_and_precedence():
    source = load_template("qwen3_reranker")
    assert "<Instruct>: Find code\n" in render_score_prompt(source, "q", "d", {}, {"instruction": "Find code"})
    assert "<Instruct>: Older\n" in render_score_prompt(source, "q", "d", {}, {"instruct": "Older"})


def test_other_templates():
    assert render_score_prompt(load_template("nemotron-rerank"), "q", "d", {}) == "question:q \n \n passage:d"
    gemma = render_score_prompt(load_template("bge-reranker-v2-gemma"), "q", "d", {})
    assert gemma.startswith("A: q\nB: d\nGiven a query A and a passage B") and gemma.endswith("'Yes' or 'No'.")
    mxbai = render_score_prompt(load_template("mxbai_rerank_v2"), "q", "d", {})
    assert "query: q\ndocument: d\n" in mxbai and mxbai.endswith("Relevance:<|im_end|>\n<|im_start|>assistant\n")


def test_literal_template_and_unreferenced_kwargs_ignored():
    source = load_template("{{ messages[0].content }} {{ messages[1].content }}")
    assert render_score_prompt(source, "a", "bc", {}, {"instruction": "unused"}) == "a bc"


def test_reserved_kwargs_and_template_errors():
    with pytest.raises(ValidationError, match="reserved key 'tools'"):
        check_template_kwargs({"tools": []})
    with pytest.raises(ValidationError, match="boom"):
        render_score_prompt(load_template("{{ raise_exception('boom') }}"), "q", "d", {})
    with pytest.raises(ValidationError):
        load_template("no-such-template")
