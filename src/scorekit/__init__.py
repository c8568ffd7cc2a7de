"""scorekit: exact, fast text scoring and reranking with transformer models."""

__version__ = "0.1.0"

from scorekit.llm import LLM  # noqa: E402
from scorekit.outputs import PoolingParams  # noqa: E402

__all__ = ["LLM", "PoolingParams", "__version__"]
