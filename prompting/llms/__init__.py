"""Generation backends behind one interface (see base.py); heavy imports stay lazy."""

from prompting.llms.base import (
    LLM,
    Generation,
    LLMError,
    LLMStats,
    Sampling,
    Scored,
    load_llm,
)

__all__ = [
    "LLM",
    "Generation",
    "LLMError",
    "LLMStats",
    "Sampling",
    "Scored",
    "load_llm",
]
