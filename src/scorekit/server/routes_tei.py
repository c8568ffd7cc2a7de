"""Hugging Face text-embeddings-inference's bodies, so TEI clients work unchanged: `/rerank` with `texts`
(answered as TEI's sorted list of `{index, score, text?}`) and `/embed` (a list of vectors).

TEI's semantics: `raw_scores` gives the model's logits instead of sigmoid scores (cross-encoders; a
bi-encoder's cosine is raw either way); `truncate` cuts over-long inputs to the model's limit, from
`truncation_direction` (Right by default), and without it an over-long input is a 400.
"""

from __future__ import annotations

from fastapi import Request

from scorekit.errors import ValidationError
from scorekit.scoring.scorer import ScoreParams, rank
from scorekit.scoring.truncation import TruncationParams
from scorekit.server.protocol import RerankRequest, TEIEmbedRequest
from scorekit.server.responses import ORJSONBody
from scorekit.server.state import ServerState


def _truncation(truncate: bool | None, direction: str | None) -> TruncationParams:
    if not truncate:
        return TruncationParams()
    return TruncationParams(truncate_prompt_tokens=-1, truncation_side=(direction or "right").lower())


async def do_tei_rerank(state: ServerState, req: RerankRequest, request: Request) -> ORJSONBody:
    state.check_inputs(len(req.texts), "texts")
    params = ScoreParams(_truncation(req.truncate, req.truncation_direction), use_activation=not req.raw_scores)
    result = await state.run(state.scorer().score(req.query, list(req.texts), params), request)
    state.count_tokens("rerank", result.prompt_tokens)
    return ORJSONBody([{"index": r.index, "score": r.relevance_score, **({"text": r.document} if req.return_text else {})}
                       for r in rank(req.texts, result.scores)])


async def do_tei_embed(state: ServerState, req: TEIEmbedRequest, request: Request) -> ORJSONBody:
    from scorekit.server.routes_embed import inputs_of

    if req.prompt_name is not None:
        raise ValidationError("prompt_name: this model has no sentence-transformers prompts configured.",
                              param="prompt_name")
    inputs = inputs_of(req.inputs)
    state.check_inputs(len(inputs), "inputs")
    job = state.scorer().embed(inputs, _truncation(req.truncate, req.truncation_direction), normalize=req.normalize,
                               dimensions=req.dimensions)
    done = await state.run(job, request)
    state.count_tokens("embed", done.prompt_tokens)
    return ORJSONBody([v.numpy() for v in done.outputs])
