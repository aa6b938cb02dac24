"""Challenges and the two-phase task interface.

A task first *drafts* a challenge from a source document (no model needed). While
its ``next_prompt`` names a prompt for the validator's LLM, the validator generates
the pending prompts of all drafts in flight in one batched call and appends each
text to its draft's ``outputs`` (a task may need several stages: an instruction,
then its reference answer). Then the task *finishes* each draft. A challenge
records its task, source id, seed and the LLM texts it used, so ``replay`` rebuilds
it exactly. Every challenge is phrased in a persona's voice (see ``personas``).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any

from prompting.llms.base import Prompt
from prompting.tasks.personas import Voice, voice_for


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
    llm_outputs: list[str] = field(default_factory=list)  # the validator LLM's texts, by stage
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
    state: dict[str, Any] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)  # the validator LLM's texts so far


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
        """One document of ``passages`` (the passage tasks); other sources override."""
        return Draft(self, seed, self.passages.get(self.rng(seed)))

    def next_prompt(self, draft: Draft) -> Prompt | None:
        """What to ask the validator's LLM next, given ``draft.outputs``; None: done."""
        return None

    def finish(self, draft: Draft) -> Challenge:
        raise NotImplementedError

    def voice(self, seed: int) -> Voice:
        return voice_for(self.name, seed)

    def rng(self, seed: int) -> random.Random:
        return random.Random(f"{self.name}:{seed}")

    def challenge(self, draft: Draft, request: str, reference: str, context: str = "", **meta):
        """The challenge whose user message is ``request`` in this seed's persona voice."""
        voice = self.voice(draft.seed)
        return Challenge(
            task=self.name,
            source_id=draft.document.id,
            seed=draft.seed,
            messages=user(voice.phrase(request)),
            reference=reference,
            context=context,
            rewards=dict(self.rewards),
            penalties=tuple(self.penalties),
            llm_outputs=list(draft.outputs),
            meta={**meta, **voice.meta()},
        )


def user(content: str) -> list[dict]:
    return [{"role": "user", "content": content}]
