"""Challenges and the staged task interface.

A task first *drafts* a challenge from a source document (no model needed). Tasks
that use the validator's LLM name their ``stages`` (say, a question, then its
answer); while a draft has a stage left, ``next_prompt`` gives that stage's prompt,
and the validator generates the pending prompts of all drafts in flight in one
batched call and hands each text back through ``receive``. ``receive`` cleans it and
runs the stage's gate (``gates.py``): an accepted text moves the draft on, a rejected
one is asked for again in the next batch, up to ``MAX_RETRIES`` times, after which
the task *finishes* with its fallback built without the LLM. A challenge records its
task, source id, seed and every LLM text it was given (rejected ones too), so
``replay`` rebuilds it exactly. Every challenge is phrased in a persona's voice.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
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
    outputs: list[str] = field(default_factory=list)  # every LLM text received, in order
    accepted: list[str] = field(default_factory=list)  # cleaned texts that passed, by stage
    rejections: list[str] = field(default_factory=list)  # "stage/reason", in order
    tries: int = 0  # rejected tries of the current stage
    gave_up: bool = False  # a stage ran out of tries: the task's fallback is used

    @property
    def stage(self) -> str | None:
        """The LLM stage this draft waits on; None when it is done or gave up."""
        if self.gave_up or len(self.accepted) >= len(self.task.stages):
            return None
        return self.task.stages[len(self.accepted)]

    @property
    def complete(self) -> bool:
        """Every LLM stage produced an accepted text."""
        return bool(self.task.stages) and len(self.accepted) == len(self.task.stages)

    def gate_meta(self) -> dict[str, Any]:
        """How the LLM's texts fared: outcome and rejection counts (in every event)."""
        if not self.outputs:
            outcome = "no_llm"
        elif not self.complete:
            outcome = "fallback"
        else:
            outcome = "regenerated" if self.rejections else "first_try"
        return {"outcome": outcome, "rejections": dict(Counter(self.rejections))}


MAX_RETRIES = 2  # regenerations of a rejected stage before the fallback


class Task:
    name: str = "task"
    rewards: dict[str, float] = {}
    penalties: tuple[str, ...] = ("empty", "too_long", "echo", "refusal")
    stages: tuple[str, ...] = ()  # LLM stages, in order; none: the task needs no LLM
    # Whether a passage sentence quoted in an answer can carry the answer (a question
    # about the passage) or earns nothing because the task asks for text of one's own
    # (a summary): the reward models then see an answer without its copied passage text.
    quotes_answer: bool = True
    # New tokens a stage needs at most: a batch stops when its longest stage is done, so
    # a question is not given the room of an essay (--neuron.max_tokens caps them all).
    stage_tokens: dict[str, int] = {}

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
        """What to ask the validator's LLM next; None: the draft is ready to finish."""
        stage = draft.stage
        return self.stage_prompt(draft, stage) if self.use_llm and stage else None

    def receive(self, draft: Draft, text: str) -> None:
        """Take the LLM's text for the draft's current stage: clean, gate, move on or
        count the rejection (and give up after ``MAX_RETRIES`` regenerations)."""
        draft.outputs.append(text)
        stage = draft.stage
        cleaned, reason = self.check(draft, stage, text)
        if reason is None:
            draft.accepted.append(cleaned)
            draft.tries = 0
            return
        draft.rejections.append(f"{stage}/{reason}")
        draft.tries += 1
        draft.gave_up = draft.tries > MAX_RETRIES

    def stage_prompt(self, draft: Draft, stage: str) -> Prompt:
        """The prompt of ``stage`` for this draft (tasks with stages override)."""
        raise NotImplementedError

    def check(self, draft: Draft, stage: str, text: str) -> tuple[str, str | None]:
        """(cleaned text, rejection reason or None) for the LLM's text of ``stage``."""
        raise NotImplementedError

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
            meta={**meta, **voice.meta(), **draft.gate_meta()},
        )


def user(content: str) -> list[dict]:
    return [{"role": "user", "content": content}]


def few_shot(examples: Sequence[tuple[str, str]], content: str) -> list[dict]:
    """A chat that shows the model worked (request, reply) pairs, then asks ``content``."""
    messages: list[dict] = []
    for request, reply in examples:
        messages += [{"role": "user", "content": request}, {"role": "assistant", "content": reply}]
    return messages + user(content)
