"""The miner API: JSON over HTTP, signed with bittensor's btauth/1 headers.

``POST /v1/prompt`` with a PromptRequest body; the miner answers a PromptResponse.
The version lives in the path so a later API can be served beside this one.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

PROMPT_PATH = "/v1/prompt"
STREAM_PATH = "/v1/prompt/stream"  # the same request, answered as signed JSON lines
HEALTH_PATH = "/v1/health"
MAX_COMPLETION_CHARS = 64_000  # longer completions are cut before scoring
# A request's limits, here once: the organic endpoint (``organic/api.py``) accepts what
# it can send on to miners, so it checks a user's request against the same numbers.
MAX_MESSAGES = 64
MAX_MESSAGE_CHARS = 200_000
MAX_TOKENS = 8192  # the largest max_tokens a request may ask for
MAX_TEMPERATURE = 2


# Unknown fields are ignored at every level (docs/protocol.md 2): a later validator may
# add some, and a miner must not refuse it for that. Known fields are strict: JSON of
# another type ("step": "3", true or 3.0; "timeout": "10") is refused with 422, never
# coerced, so every miner reads the same request the same way.
STRICT = ConfigDict(extra="ignore", strict=True)


class ChatMessage(BaseModel):
    model_config = STRICT
    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=MAX_MESSAGE_CHARS)


class PromptRequest(BaseModel):
    """What a validator sends: the challenge as chat messages plus its context."""

    model_config = STRICT
    task: str
    challenge_id: str
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    timeout: float = Field(gt=0, le=600)
    step: int = Field(ge=0)
    # Optional, and left out of the body when unset (``body()``), so a synthetic request
    # is byte for byte what it was: organic users choose them, a miner MAY honour them.
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    temperature: float | None = Field(default=None, ge=0, le=MAX_TEMPERATURE)

    def body(self) -> bytes:
        """The exact bytes sent (and signed): unset optional fields are not sent."""
        return self.model_dump_json(exclude_none=True).encode()


class PromptResponse(BaseModel):
    """What a miner answers. Extra fields are ignored, not trusted."""

    model_config = ConfigDict(extra="ignore")
    completion: str
    timings: dict[str, float] = Field(default_factory=dict)
