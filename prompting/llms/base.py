"""The generation interface every backend implements, and the registry by name.

A backend takes a batch (list in, list out) because every backend we care about is
faster batched; a single prompt is a batch of one. Heavy libraries (torch,
transformers, vllm, httpx) are imported inside each backend module, which is
imported only when its name is asked for.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    from prompting.config import Config

Message = dict  # {"role": "system"|"user"|"assistant", "content": str}
Prompt = Union[str, Sequence[Message]]


@dataclass(frozen=True)
class Sampling:
    """Sampling parameters shared by all backends (temperature 0 = greedy)."""

    max_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 0
    repetition_penalty: float = 1.0
    seed: int | None = None
    ignore_eos: bool = False  # benchmarks: generate exactly max_tokens

    @classmethod
    def from_config(cls, config: Config, **overrides) -> Sampling:
        n = config.neuron
        values = dict(
            max_tokens=n.max_tokens,
            temperature=n.temperature,
            top_p=n.top_p,
            top_k=n.top_k,
            repetition_penalty=n.repetition_penalty,
            seed=n.seed,
        )
        values.update(overrides)
        return cls(**values)


@dataclass
class Generation:
    text: str
    tokens: int  # generated tokens
    seconds: float  # wall time of the call that produced it (shared by a batch)
    prompt_tokens: int = 0
    finish_reason: str = ""


@dataclass
class LLMStats:
    backend: str
    model: str
    device: str = "cpu"
    dtype: str = ""
    load_seconds: float = 0.0
    gpu_bytes: int = 0  # weights + cache reserved on the GPU(s), 0 on CPU
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


class LLMError(RuntimeError):
    """A backend could not load or generate; the message says what to change."""


class LLM(abc.ABC):
    """A loaded model that turns a batch of prompts into a batch of generations."""

    name: str = "base"

    @abc.abstractmethod
    def generate(
        self, prompts: Sequence[Prompt], sampling: Sampling | None = None
    ) -> list[Generation]:
        """One Generation per prompt, in order. Chat messages get the chat template."""

    @property
    @abc.abstractmethod
    def tokenizer(self):
        """The HF tokenizer (counts tokens, applies chat templates)."""

    @property
    @abc.abstractmethod
    def stats(self) -> LLMStats:
        """Load time, device and memory footprint."""

    @property
    def batch_capacity(self) -> int | None:
        """Sequences generated at once at most (more wait their turn); None: the backend
        does not say. The validator keeps about this many drafts ready for the next
        batch (``validator.concurrency``)."""
        return None

    def close(self) -> None:
        """Free GPU memory / connections. Safe to call twice."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


_REGISTRY: dict[str, str] = {
    "hf": "prompting.llms.hf:HFLLM",
    "vllm": "prompting.llms.vllm:VLLM",
    "openai": "prompting.llms.openai:OpenAILLM",
}


def register(name: str, target: str | Callable[..., LLM]) -> None:
    """Register a backend by name, as 'module:Class' (imported lazily) or a factory."""
    _REGISTRY[name] = target  # type: ignore[assignment]


def backends() -> list[str]:
    return sorted(_REGISTRY)


def backend_class(name: str) -> Callable[..., LLM]:
    try:
        target = _REGISTRY[name]
    except KeyError:
        raise LLMError(f"unknown backend {name!r}; choose one of {', '.join(backends())}") from None
    if callable(target):
        return target
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def load_llm(config: Config) -> LLM:
    """Build the backend that ``--neuron.llm_backend`` names from the config."""
    return backend_class(config.neuron.llm_backend).from_config(config)  # type: ignore[attr-defined]


def as_messages(prompt: Prompt) -> list[Message]:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [dict(m) for m in prompt]


def render_chat(tokenizer, prompt: Prompt) -> str:
    """Chat messages -> the model's chat template (with the assistant turn opened);
    a plain string passes through when the tokenizer has no template."""
    if isinstance(prompt, str) and tokenizer.chat_template is None:
        return prompt
    return tokenizer.apply_chat_template(
        as_messages(prompt), tokenize=False, add_generation_prompt=True
    )
