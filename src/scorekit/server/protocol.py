"""Request and response bodies of the HTTP API (SPEC §2, §3, §12), as pydantic models. No torch here.

Unknown request fields are accepted and ignored (`extra="allow"`), as vLLM does, so Cohere/Jina/OpenAI clients
that send their own extras keep working.

Two rules stricter than pydantic's defaults, both answered with a 400 that names the field:
* token ids are JSON integers (`TokenId`): pydantic would take `true` and `1.0` as token 1;
* text holds no lone UTF-16 surrogate (`Text`, `SURROGATE_FREE`): JSON may spell one (`"\\ud800"`), Python keeps
  it in a str, and the tokenizer, the template engine and UTF-8 encoding all fail on it later with their own words.
  Fields that are a union (text or token ids, a string or a list) are checked after the union is resolved, so
  the error's `param` is the field itself (`body.input`) and the message says where inside it.
"""

from __future__ import annotations

import re
import time
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, model_validator
from pydantic_core import PydanticCustomError

# A surrogate code point left in a Python str is always a lone one: JSON's escaped pairs ("\\ud83d\\ude00")
# are joined into one character by the parser.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _lone_surrogate_error(text: str, where: str = "") -> PydanticCustomError | None:
    if text.isascii():  # O(1) in CPython: the common case costs nothing
        return None
    found = _SURROGATE.search(text)
    if found is None:
        return None
    return PydanticCustomError(
        "string_lone_surrogate",
        "Text{where} contains the lone UTF-16 surrogate {code} at character {position}, which is not a Unicode "
        "character: send valid UTF-8 text",
        {"where": where, "code": f"\\u{ord(found.group()):04x}", "position": found.start()})


def _no_lone_surrogate(text: str) -> str:
    error = _lone_surrogate_error(text)
    if error is not None:
        raise error
    return text


def _no_lone_surrogate_inside(value: Any) -> Any:
    """Every string (keys too) in a JSON value or the models parsed from one (a multimodal input, a Cohere
    document); iterative, so deep nesting cannot overflow the stack."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            error = _lone_surrogate_error(item, f" at `{path}`" if path else "")
            if error is not None:
                raise error
        elif isinstance(item, dict):
            for key, inner in item.items():
                stack.append((key, f"{path}.{key!r} (key)" if path else f"{key!r} (key)"))
                stack.append((inner, f"{path}.{key}" if path else str(key)))
        elif isinstance(item, list):
            stack.extend((inner, f"{path}[{i}]") for i, inner in enumerate(item))
        elif isinstance(item, BaseModel):
            stack.append((item.model_dump(), path))
    return value


Text = Annotated[str, AfterValidator(_no_lone_surrogate)]
SURROGATE_FREE = AfterValidator(_no_lone_surrogate_inside)
JsonObject = Annotated[dict[str, Any], SURROGATE_FREE]
TokenId = StrictInt  # not `int`: pydantic's lax int takes true and 1.0


class Request(BaseModel):
    model_config = ConfigDict(extra="allow")


class Response(BaseModel):
    model_config = ConfigDict(extra="allow")


# -- inputs ----------------------------------------------------------------------------------------------------
class MultiModalInput(Request):
    """One multimodal input: all its content parts form a single query or document."""

    content: list[dict[str, Any]]  # checked for lone surrogates by the field that holds it (SURROGATE_FREE)


class CohereDocument(Request):
    """A Cohere v1 document object: scored as its `text`, or as the fields `rank_fields` names
    (server/rank_fields.py); every field is kept, to be echoed back as sent."""

    text: Optional[str] = None  # checked by the field that holds it (SURROGATE_FREE)


ScoreInput = Union[str, MultiModalInput]
ScoreSide = Annotated[Union[ScoreInput, list[ScoreInput]], SURROGATE_FREE]
RerankDocumentInput = Union[str, MultiModalInput, CohereDocument]


# -- score and rerank (SPEC §2.1–§2.3) -----------------------------------------------------------------------
class ScoreCommon(Request):
    model: Optional[Text] = None
    user: Optional[Text] = None
    truncate_prompt_tokens: Optional[int] = Field(None, ge=-1)
    truncation_side: Optional[Literal["left", "right"]] = None
    padding: Optional[Literal["max_length", "do_not_pad"]] = None
    request_id: Optional[Text] = None
    priority: int = Field(0, ge=-(2**63), le=2**63 - 1)
    mm_processor_kwargs: Optional[JsonObject] = None
    cache_salt: Optional[Text] = None
    use_activation: Optional[bool] = None
    max_tokens_per_query: int = 0
    max_tokens_per_doc: int = 0
    instruction: Optional[Text] = None
    chat_template_kwargs: Optional[JsonObject] = None
    # Long documents (scorekit, Cohere's max_chunks_per_doc): >1 scores windows of a long document and
    # aggregates them; null: the server's --max-chunks-per-doc (1: off).
    max_chunks_per_doc: Optional[int] = Field(None, ge=1)
    chunk_overlap_tokens: int = Field(32, ge=0)
    chunk_aggregation: Literal["max", "mean", "first"] = "max"


SCORE_SPELLINGS = (("queries", "documents"), ("queries", "items"), ("data_1", "data_2"), ("text_1", "text_2"))


class ScoreRequest(ScoreCommon):
    """One of four spellings, tried in this order: queries/documents, queries/items, data_1/data_2, text_1/text_2."""

    queries: Optional[ScoreSide] = None
    documents: Optional[ScoreSide] = None
    items: Optional[ScoreSide] = None
    data_1: Optional[ScoreSide] = None
    data_2: Optional[ScoreSide] = None
    text_1: Optional[ScoreSide] = None
    text_2: Optional[ScoreSide] = None

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
    """vLLM/Jina/Cohere's body (`documents`), or Hugging Face TEI's (`texts`, answered in TEI's shape)."""

    query: Annotated[ScoreInput, SURROGATE_FREE]
    documents: Optional[Annotated[Union[RerankDocumentInput, list[RerankDocumentInput]], SURROGATE_FREE]] = None
    top_n: int = Field(0, ge=0)  # 0: every document; negative: 400 (vLLM 0.33, SPEC §2.3)
    return_documents: bool = True  # Cohere: false → results carry no `document`
    rank_fields: Optional[list[Text]] = None  # Cohere: which fields of structured documents to rank on
    # -- TEI's /rerank ---------------------------------------------------------------------------------------
    texts: Optional[list[Text]] = None
    raw_scores: bool = False  # TEI: the model's logits instead of sigmoid-activated scores
    return_text: bool = False  # TEI: each result carries its text
    truncate: Optional[bool] = None  # TEI: cut over-long inputs to the model's limit (else a 400)
    truncation_direction: Optional[Literal["Left", "Right", "left", "right"]] = None

    @model_validator(mode="after")
    def _documents_or_texts(self):
        if (self.documents is None) == (self.texts is None):
            raise ValueError("give `documents` (vLLM, Jina and Cohere clients) or `texts` (TEI clients), not both")
        tei_only = [name for name in ("raw_scores", "return_text", "truncate", "truncation_direction")
                    if name in self.model_fields_set]
        if self.documents is not None and tei_only:
            raise ValueError(f"{', '.join(tei_only)} go with TEI's `texts`, not `documents`")
        return self


class TEIEmbedRequest(Request):
    """Hugging Face TEI's /embed body."""

    inputs: TextOrTokens
    normalize: bool = True
    truncate: Optional[bool] = None
    truncation_direction: Optional[Literal["Left", "Right", "left", "right"]] = None
    prompt_name: Optional[Text] = None  # refused: no sentence-transformers prompts are configured
    dimensions: Optional[int] = None


class GenerativeScoringRequest(Request):
    model: Optional[Text] = None
    # A string, token ids, or (scorekit's, on a vision-language model) a multimodal input {"content": [...]},
    # as the offline llm.generative_score takes: vLLM's /generative_scoring takes no multimodal input.
    query: Annotated[Union[str, list[TokenId], MultiModalInput], SURROGATE_FREE]
    items: Annotated[list[Union[str, list[TokenId], MultiModalInput]], SURROGATE_FREE]
    label_token_ids: list[TokenId]
    apply_softmax: bool = True
    item_first: bool = False
    add_special_tokens: bool = True
    cache_salt: Optional[Text] = None
    priority: int = 0
    request_id: Optional[Text] = None
    mm_processor_kwargs: Optional[JsonObject] = None  # as on /score: needs --trust-request-mm-kwargs


# -- embeddings, classification, pooling (SPEC §12) -----------------------------------------------------------
TextOrTokens = Annotated[Union[str, list[str], list[TokenId], list[list[TokenId]]], SURROGATE_FREE]


EncodingFormat = Literal["float", "base64", "bytes", "bytes_only"]
EmbedDType = Literal["float32", "float16", "bfloat16", "fp8_e4m3", "fp8_e5m2"]
Endianness = Literal["native", "big", "little"]


class InputOrMessages(Request):
    """vLLM's two forms of /v1/embeddings, /classify and /pooling: `input` (texts or token ids) or chat
    `messages` (one conversation, rendered with the tokenizer's chat template: scoring/chat.py)."""

    input: Optional[TextOrTokens] = None
    messages: Optional[list[JsonObject]] = None
    add_special_tokens: Optional[bool] = None  # default: true for `input`, false for `messages` (as vLLM)
    add_generation_prompt: bool = False  # `messages` only
    continue_final_message: bool = False  # `messages` only
    chat_template_kwargs: Optional[JsonObject] = None  # `messages` only

    @model_validator(mode="after")
    def _input_or_messages(self):
        if (self.input is None) == (self.messages is None):
            raise ValueError("give exactly one of `input` or `messages`")
        if self.input is not None and (self.add_generation_prompt or self.continue_final_message
                                       or self.chat_template_kwargs):
            raise ValueError("add_generation_prompt, continue_final_message and chat_template_kwargs go with "
                             "`messages`, not `input`")
        if self.add_generation_prompt and self.continue_final_message:
            raise ValueError("Cannot set both `continue_final_message` and `add_generation_prompt` to True.")
        return self

    @property
    def special_tokens(self) -> bool:
        """add_special_tokens as given, else its default for the form used."""
        return self.add_special_tokens if self.add_special_tokens is not None else self.messages is None


class EmbeddingRequest(InputOrMessages):
    """/v1/embeddings: `input` or `messages` (InputOrMessages). See server/encoding.py for encoding_format,
    embed_dtype and endianness."""

    model: Optional[Text] = None
    encoding_format: EncodingFormat = "float"
    embed_dtype: EmbedDType = "float32"
    endianness: Endianness = "native"
    dimensions: Optional[int] = None  # Matryoshka models only: the first `dimensions`, normalised again
    user: Optional[Text] = None
    truncate_prompt_tokens: Optional[int] = Field(None, ge=-1)
    truncation_side: Optional[Literal["left", "right"]] = None
    normalize: Optional[bool] = None  # vLLM's name for use_activation on embeddings; default true
    use_activation: Optional[bool] = None
    request_id: Optional[Text] = None
    priority: int = Field(0, ge=-(2**63), le=2**63 - 1)
    mm_processor_kwargs: Optional[JsonObject] = None  # images of `messages`; needs --trust-request-mm-kwargs

    @model_validator(mode="after")
    def _normalize_or_activation(self):
        if None not in (self.normalize, self.use_activation) and self.normalize != self.use_activation:
            raise ValueError("`normalize` and `use_activation` disagree; give one of them")
        return self


class CohereEmbedRequest(Request):
    model: Optional[Text] = None
    input_type: Optional[Text] = None
    texts: Optional[list[Text]] = None
    images: Optional[list[Text]] = None
    inputs: Optional[list[JsonObject]] = None
    embedding_types: Optional[list[Literal["float", "int8", "uint8", "binary", "ubinary", "base64"]]] = None
    truncate: Optional[Literal["NONE", "START", "END"]] = "END"
    output_dimension: Optional[int] = None
    max_tokens: Optional[int] = None


class ClassificationRequest(InputOrMessages):
    model: Optional[Text] = None
    use_activation: Optional[bool] = None
    truncate_prompt_tokens: Optional[int] = Field(None, ge=-1)
    truncation_side: Optional[Literal["left", "right"]] = None
    request_id: Optional[Text] = None
    priority: int = Field(0, ge=-(2**63), le=2**63 - 1)


class PoolingRequest(InputOrMessages):
    model: Optional[Text] = None
    task: Optional[Text] = None
    encoding_format: EncodingFormat = "float"
    embed_dtype: EmbedDType = "float32"
    endianness: Endianness = "native"
    use_activation: Optional[bool] = None
    truncate_prompt_tokens: Optional[int] = Field(None, ge=-1)
    truncation_side: Optional[Literal["left", "right"]] = None
    dimensions: Optional[int] = None  # task embed on a Matryoshka model only
    request_id: Optional[Text] = None
    priority: int = Field(0, ge=-(2**63), le=2**63 - 1)


# -- tokenizer --------------------------------------------------------------------------------------------------
class TokenizeRequest(Request):
    model: Optional[Text] = None
    prompt: Optional[Text] = None
    messages: Optional[list[JsonObject]] = None
    add_special_tokens: Optional[bool] = None  # default: true for `prompt`, false for `messages` (as vLLM)
    add_generation_prompt: bool = True  # `messages` only (vLLM's default is true here)
    continue_final_message: bool = False  # `messages` only
    chat_template_kwargs: Optional[JsonObject] = None  # `messages` only
    tools: Optional[list[JsonObject]] = None  # `messages` only: passed to the chat template, as vLLM
    return_token_strs: bool = False

    @model_validator(mode="after")
    def _prompt_or_messages(self):
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of `prompt` or `messages`")
        if self.messages is not None and self.add_generation_prompt and self.continue_final_message:
            raise ValueError("Cannot set both `continue_final_message` and `add_generation_prompt` to True.")
        if self.prompt is not None and (self.continue_final_message or self.chat_template_kwargs or self.tools):
            raise ValueError("continue_final_message, chat_template_kwargs and tools go with `messages`, not "
                             "`prompt`")
        return self


class DetokenizeRequest(Request):
    model: Optional[Text] = None
    tokens: list[Annotated[TokenId, Field(ge=0)]]


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
    owned_by: str = "vllm"  # vLLM's value: clients written against vLLM may check it
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
