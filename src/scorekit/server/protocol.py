"""Request and response bodies of the HTTP API (SPEC §2, §3, §12), as pydantic models. No torch here.

Unknown request fields are accepted and ignored (`extra="allow"`), as vLLM does, so Cohere/Jina/OpenAI clients
that send their own extras keep working.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Request(BaseModel):
    model_config = ConfigDict(extra="allow")


class Response(BaseModel):
    model_config = ConfigDict(extra="allow")


# -- inputs ----------------------------------------------------------------------------------------------------
class MultiModalInput(Request):
    """One multimodal input: all its content parts form a single query or document."""

    content: list[dict[str, Any]]


class CohereDocument(Request):
    """A Cohere v1 document object `{"text": ...}`: scored as its text."""

    text: str


ScoreInput = Union[str, MultiModalInput]
RerankDocumentInput = Union[str, MultiModalInput, CohereDocument]


# -- score and rerank (SPEC §2.1–§2.3) -----------------------------------------------------------------------
class ScoreCommon(Request):
    model: Optional[str] = None
    user: Optional[str] = None
    truncate_prompt_tokens: Optional[int] = Field(None, ge=-1)
    truncation_side: Optional[Literal["left", "right"]] = None
    padding: Optional[Literal["max_length", "do_not_pad"]] = None
    request_id: Optional[str] = None
    priority: int = Field(0, ge=-(2**63), le=2**63 - 1)
    mm_processor_kwargs: Optional[dict[str, Any]] = None
    cache_salt: Optional[str] = None
    use_activation: Optional[bool] = None
    max_tokens_per_query: int = 0
    max_tokens_per_doc: int = 0
    instruction: Optional[str] = None
    chat_template_kwargs: Optional[dict[str, Any]] = None


SCORE_SPELLINGS = (("queries", "documents"), ("queries", "items"), ("data_1", "data_2"), ("text_1", "text_2"))


class ScoreRequest(ScoreCommon):
    """One of four spellings, tried in this order: queries/documents, queries/items, data_1/data_2, text_1/text_2."""

    queries: Optional[Union[ScoreInput, list[ScoreInput]]] = None
    documents: Optional[Union[ScoreInput, list[ScoreInput]]] = None
    items: Optional[Union[ScoreInput, list[ScoreInput]]] = None
    data_1: Optional[Union[ScoreInput, list[ScoreInput]]] = None
    data_2: Optional[Union[ScoreInput, list[ScoreInput]]] = None
    text_1: Optional[Union[ScoreInput, list[ScoreInput]]] = None
    text_2: Optional[Union[ScoreInput, list[ScoreInput]]] = None

    @model_validator(mode="after")
    def _one_spelling(self):
        if self.sides() is None:
            raise ValueError("give both fields of one pair: queries+documents, queries+items, data_1+data_2 "
                             "or text_1+text_2")
        return self

    def sides(self) -> tuple[Any, Any] | None:
        for first, second in SCORE_SPELLINGS:
            a, b = getattr(self, first), getattr(self, second)
            if a is not None and b is not None:
                return a, b
        return None


class RerankRequest(ScoreCommon):
    query: ScoreInput
    documents: Union[RerankDocumentInput, list[RerankDocumentInput]]
    top_n: int = Field(0, ge=0)
    return_documents: bool = True  # Cohere: false → results carry no `document`


class GenerativeScoringRequest(Request):
    model: Optional[str] = None
    query: Union[str, list[int]]
    items: list[Union[str, list[int]]]
    label_token_ids: list[int]
    apply_softmax: bool = True
    item_first: bool = False
    add_special_tokens: bool = True
    cache_salt: Optional[str] = None
    priority: int = 0
    request_id: Optional[str] = None


# -- embeddings, classification, pooling (SPEC §12) -----------------------------------------------------------
TextOrTokens = Union[str, list[str], list[int], list[list[int]]]


class EmbeddingRequest(Request):
    model: Optional[str] = None
    input: TextOrTokens
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Optional[int] = None
    user: Optional[str] = None
    truncate_prompt_tokens: Optional[int] = Field(None, ge=-1)
    use_activation: Optional[bool] = None
    request_id: Optional[str] = None


class CohereEmbedRequest(Request):
    model: Optional[str] = None
    input_type: Optional[str] = None
    texts: Optional[list[str]] = None
    images: Optional[list[str]] = None
    inputs: Optional[list[dict[str, Any]]] = None
    embedding_types: Optional[list[Literal["float", "int8", "uint8", "binary", "ubinary", "base64"]]] = None
    truncate: Optional[Literal["NONE", "START", "END"]] = "END"
    output_dimension: Optional[int] = None
    max_tokens: Optional[int] = None


class ClassificationRequest(Request):
    model: Optional[str] = None
    input: TextOrTokens
    use_activation: Optional[bool] = None
    truncate_prompt_tokens: Optional[int] = Field(None, ge=-1)
    request_id: Optional[str] = None


class PoolingRequest(Request):
    model: Optional[str] = None
    input: TextOrTokens
    task: Optional[str] = None
    encoding_format: Literal["float", "base64"] = "float"
    use_activation: Optional[bool] = None
    truncate_prompt_tokens: Optional[int] = Field(None, ge=-1)
    dimensions: Optional[int] = None
    request_id: Optional[str] = None


# -- tokenizer --------------------------------------------------------------------------------------------------
class TokenizeRequest(Request):
    model: Optional[str] = None
    prompt: Optional[str] = None
    messages: Optional[list[dict[str, Any]]] = None
    add_special_tokens: Optional[bool] = None
    add_generation_prompt: bool = True
    return_token_strs: bool = False

    @model_validator(mode="after")
    def _prompt_or_messages(self):
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of `prompt` or `messages`")
        return self


class DetokenizeRequest(Request):
    model: Optional[str] = None
    tokens: list[Annotated[int, Field(ge=0)]]


# -- responses --------------------------------------------------------------------------------------------------
def now() -> int:
    return int(time.time())


class Usage(Response):
    prompt_tokens: int
    total_tokens: int
    completion_tokens: int = 0
    prompt_tokens_details: Optional[dict] = None
    completion_tokens_details: Optional[dict] = None


class RerankUsage(Response):
    prompt_tokens: int
    total_tokens: int


class ScoreData(Response):
    index: int
    object: Literal["score"] = "score"
    score: float


class ScoreResponse(Response):
    id: str
    object: Literal["list"] = "list"
    created: int = Field(default_factory=now)
    model: str
    data: list[ScoreData]
    usage: Usage


class RerankDocument(Response):
    text: Optional[str] = None
    multi_modal: Optional[list[dict[str, Any]]] = None


class RerankResult(Response):
    index: int
    document: Optional[RerankDocument] = None
    relevance_score: float


class CohereApiVersion(Response):
    version: str


class CohereBilledUnits(Response):
    search_units: Optional[float] = None
    input_tokens: Optional[float] = None


class CohereMeta(Response):
    api_version: CohereApiVersion
    billed_units: CohereBilledUnits


class RerankResponse(Response):
    id: str
    model: str
    usage: RerankUsage
    results: list[RerankResult]
    meta: CohereMeta


class EmbeddingData(Response):
    index: int
    object: Literal["embedding"] = "embedding"
    embedding: Union[list[float], str]


class EmbeddingResponse(Response):
    id: str
    object: Literal["list"] = "list"
    created: int = Field(default_factory=now)
    model: str
    data: list[EmbeddingData]
    usage: Usage


class CohereEmbedResponse(Response):
    id: str
    response_type: Literal["embeddings_by_type"] = "embeddings_by_type"
    embeddings: dict[str, list[Any]]
    texts: list[str]
    meta: CohereMeta


class ClassificationData(Response):
    index: int
    label: Optional[str]
    probs: list[float]
    num_classes: int


class ClassificationResponse(Response):
    id: str
    object: Literal["list"] = "list"
    created: int = Field(default_factory=now)
    model: str
    data: list[ClassificationData]
    usage: Usage


class PoolingData(Response):
    index: int
    object: Literal["pooling"] = "pooling"
    data: Union[list[float], list[list[float]], str]


class PoolingResponse(Response):
    id: str
    object: Literal["list"] = "list"
    created: int = Field(default_factory=now)
    model: str
    data: list[PoolingData]
    usage: Usage


class TokenizeResponse(Response):
    count: int
    max_model_len: int
    tokens: list[int]
    token_strs: Optional[list[str]] = None


class DetokenizeResponse(Response):
    prompt: str


class ModelCard(Response):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(default_factory=now)
    owned_by: str = "scorekit"
    root: Optional[str] = None
    parent: Optional[str] = None
    max_model_len: int
    permission: list[dict[str, Any]] = Field(default_factory=list)


class ModelList(Response):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorInfo(Response):
    message: str
    type: str
    param: Optional[str] = None
    code: int


class ErrorResponse(Response):
    error: ErrorInfo
