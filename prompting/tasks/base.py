"""Challenges and the two-phase task interface.

A task first *drafts* a challenge from a source document (no model needed), naming
the prompt its reference or question needs from the validator's LLM, if any; the
validator generates all drafts' prompts of a step in one batched call; then the
task *finishes* each draft with that text. A challenge records its task, source id,
seed and the LLM text it used, so ``replay`` rebuilds it exactly.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any

from prompting.llms.base import Prompt


@dataclass
class Challenge:
    task: str
    source_id: str
    seed: int
    messages: list[dict]  # what the miner gets
    reference: str  # what the reward stack compares with
    context: str = ""  # the passage / corrupted code the challenge is about
    rewards: dict[str, float] = field(default_factory=dict)
    penalties: tuple[str, ...] = ()
    llm_output: str | None = None  # the validator LLM's text this challenge used
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt_text(self) -> str:
        return "\n".join(m["content"] for m in self.messages if m["role"] == "user")

    @property
    def challenge_id(self) -> str:
        return f"{self.task}:{self.source_id}:{self.seed}"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Draft:
    task: Task
    seed: int
    document: Any
    llm_prompt: Prompt | None = None  # None: the task needs no LLM text
    state: dict[str, Any] = field(default_factory=dict)


class Task:
    name: str = "task"
    rewards: dict[str, float] = {}
    penalties: tuple[str, ...] = ("empty", "too_long", "echo", "refusal")

    def __init__(self, use_llm: bool = False, passages=None):
        self.use_llm = use_llm
        self._passages = passages  # None: the offline pydoc corpus

    @property
    def passages(self):
        """Where passage tasks take their text (``--neuron.dataset``)."""
        if self._passages is None:
            from prompting.datasets.offline import dataset

            self._passages = dataset("pydoc")
        return self._passages

    def draft(self, seed: int) -> Draft:
        raise NotImplementedError

    def finish(self, draft: Draft, llm_output: str | None) -> Challenge:
        raise NotImplementedError

    def rng(self, seed: int) -> random.Random:
        return random.Random(f"{self.name}:{seed}")

    def challenge(
        self,
        draft: Draft,
        messages: list[dict],
        reference: str,
        context: str = "",
        llm_output: str | None = None,
        **meta,
    ) -> Challenge:
        return Challenge(
            task=self.name,
            source_id=draft.document.id,
            seed=draft.seed,
            messages=messages,
            reference=reference,
            context=context,
            rewards=dict(self.rewards),
            penalties=tuple(self.penalties),
            llm_output=llm_output,
            meta=meta,
        )


def user(content: str) -> list[dict]:
    return [{"role": "user", "content": content}]
