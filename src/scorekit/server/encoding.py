"""How vectors leave the server: `encoding_format` float | base64 | bytes | bytes_only, in `embed_dtype` and
`endianness`, with vLLM's semantics (its `vllm/utils/serial_utils.py`):

- float: JSON numbers (the float32 values);
- base64: the vector's bytes in `embed_dtype` (float32, float16, bfloat16, fp8_e4m3, fp8_e5m2) and `endianness`
  (native, big, little), base64-encoded, per item — what the OpenAI SDK decodes with numpy for float32;
- bytes: one binary body, every item's bytes back to back, and a `metadata` header (JSON: id, created, model,
  usage, and per item index, embed_dtype, endianness, start, end, shape) to cut it with;
- bytes_only: the same body without the header.
bfloat16 and fp8 have no numpy type: their bytes are the raw 2- or 1-byte patterns.
"""

from __future__ import annotations

import base64
import sys
from typing import Any, Literal

import orjson
import torch
from fastapi import Response

EncodingFormat = Literal["float", "base64", "bytes", "bytes_only"]
EmbedDType = Literal["float32", "float16", "bfloat16", "fp8_e4m3", "fp8_e5m2"]
Endianness = Literal["native", "big", "little"]

_TORCH_DTYPE = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
                "fp8_e4m3": torch.float8_e4m3fn, "fp8_e5m2": torch.float8_e5m2}
# The same bytes seen as a type numpy knows, for the byte swap and `tobytes`.
_VIEW = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.int16,
         "fp8_e4m3": torch.uint8, "fp8_e5m2": torch.uint8}


def to_bytes(vector: torch.Tensor, embed_dtype: EmbedDType, endianness: Endianness) -> bytes:
    array = vector.to(_TORCH_DTYPE[embed_dtype]).flatten().contiguous().view(_VIEW[embed_dtype]).numpy()
    if endianness != "native" and endianness != sys.byteorder:
        array = array.byteswap()
    return array.tobytes()


def encode(vector: torch.Tensor, encoding_format: EncodingFormat, embed_dtype: EmbedDType,
           endianness: Endianness) -> Any:
    """One item of a JSON response (float or base64)."""
    if encoding_format == "float":
        return vector.float().numpy()  # orjson writes numpy arrays natively
    return base64.b64encode(to_bytes(vector, embed_dtype, endianness)).decode()


def bytes_response(vectors: list[torch.Tensor], encoding_format: EncodingFormat, embed_dtype: EmbedDType,
                   endianness: Endianness, header: dict[str, Any]) -> Response:
    """The binary answer of `bytes` / `bytes_only` (header: id, created, model, usage)."""
    chunks, items, offset = [], [], 0
    for index, vector in enumerate(vectors):
        data = to_bytes(vector, embed_dtype, endianness)
        items.append({"index": index, "embed_dtype": embed_dtype, "endianness": endianness, "start": offset,
                      "end": offset + len(data), "shape": list(vector.shape)})
        chunks.append(data)
        offset += len(data)
    headers = None if encoding_format == "bytes_only" else {
        "metadata": orjson.dumps({**header, "data": items}).decode()}
    return Response(b"".join(chunks), media_type="application/octet-stream", headers=headers)
