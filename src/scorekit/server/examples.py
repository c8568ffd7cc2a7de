"""Request examples shown in the OpenAPI schema (/docs, /redoc)."""

from __future__ import annotations


def _ex(summary: str, value: dict) -> dict:
    return {"summary": summary, "value": value}


SCORE = {
    "one_to_many": _ex("1:N — one query, several documents", {
        "queries": "What is the capital of France?",
        "documents": ["The capital of Brazil is Brasilia.", "The capital of France is Paris."]}),
    "many_to_many": _ex("N:N — pairs zipped", {
        "queries": ["What is the capital of Brazil?", "What is the capital of France?"],
        "documents": ["The capital of Brazil is Brasilia.", "The capital of France is Paris."]}),
    "legacy": _ex("Legacy spelling text_1/text_2", {"text_1": "hello", "text_2": ["hi", "goodbye"]}),
}

RERANK = {
    "jina": _ex("Jina / vLLM style", {
        "query": "What is the capital of France?",
        "documents": ["The capital of Brazil is Brasilia.", "The capital of France is Paris."], "top_n": 1}),
    "cohere": _ex("Cohere style, no documents echoed", {
        "model": "sentence-transformers/all-MiniLM-L6-v2", "query": "What is the capital of France?",
        "documents": ["The capital of Brazil is Brasilia.", "The capital of France is Paris."],
        "return_documents": False}),
    "tei": _ex("Hugging Face TEI style (answered as TEI's list)", {
        "query": "What is the capital of France?", "texts": ["The capital of Brazil is Brasilia.",
                                                             "The capital of France is Paris."], "return_text": True}),
    "long": _ex("Long documents scored as windows (max_chunks_per_doc)", {
        "query": "What is the capital of France?", "documents": ["A long report ... The capital of France is Paris. ..."],
        "max_chunks_per_doc": 8, "chunk_aggregation": "max"}),
}

GENERATIVE = {
    "yes_no": _ex("P(' yes') vs P(' no') after each item", {
        "query": "Is the following city in France? Answer yes or no. City:",
        "items": [" Paris", " Berlin"], "label_token_ids": [9805, 787]}),
}

EMBEDDINGS = {
    "openai": _ex("OpenAI style", {"input": ["hello world", "goodbye"], "encoding_format": "float"}),
}

COHERE_EMBED = {
    "cohere": _ex("Cohere v2 style", {"texts": ["hello world"], "input_type": "search_document",
                                      "embedding_types": ["float"]}),
}

TEI_EMBED = {"tei": _ex("Hugging Face TEI style", {"inputs": ["hello world", "goodbye"], "normalize": True})}

CLASSIFY = {"one": _ex("Classify texts", {"input": ["I loved it", "I hated it"]})}

POOLING = {"embed": _ex("Raw pooled output", {"input": "hello world"})}

TOKENIZE = {
    "prompt": _ex("Tokenise a prompt", {"prompt": "hello world", "return_token_strs": True}),
}

DETOKENIZE = {"tokens": _ex("Detokenise token ids", {"tokens": [7592, 2088]})}

INVOCATIONS = {"rerank": RERANK["jina"], "score": SCORE["one_to_many"], "embed": EMBEDDINGS["openai"]}
