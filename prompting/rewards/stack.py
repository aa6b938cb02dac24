"""The reward stack: per task a weighted sum of reward models, then penalties.

``RewardStack.score(challenge, completions)`` returns per-completion totals in
[0, 1] plus every component and its compute time, for telemetry. Relevance embeds
the reference and all completions of a step in one call.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from prompting.registry import REWARDS
from prompting.rewards.models import RewardModel, Step
from prompting.rewards.penalties import ASKED_RUN, COPY_RUN, EDIT_GAP
from prompting.rewards.text import FUNCTION_WORDS, without_copies, without_runs
from prompting.text import SENTENCE_END, words

if TYPE_CHECKING:
    from prompting.llms.base import Prompt, Scored
    from prompting.rewards.relevance import Embedder
    from prompting.tasks.base import Challenge


class Reader(Protocol):
    """What reads answers for the fluency judge: ``LLM.score``."""

    def score(
        self, prompts: Sequence[Prompt], continuations: Sequence[str], max_tokens: int | None
    ) -> list[Scored]: ...


@dataclass
class RewardResult:
    totals: np.ndarray
    components: dict[str, list[float]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def for_index(self, i: int) -> dict[str, float]:
        return {name: values[i] for name, values in self.components.items()}


class RewardStack:
    """Scores steps with the reward models and penalties each challenge names (by their
    names in ``prompting.registry.REWARDS``), plus ``extra_penalties`` on every step
    (``--reward.penalties``)."""

    def __init__(
        self,
        embedder_factory: Callable[[], Embedder] | None = None,
        extra_penalties: Sequence[str] = (),
        reader: Reader | None = None,
    ):
        """``reader``: the validator's model (any object with ``LLM.score``), which reads
        the answers for the fluency judge; None: nothing is read and that judge is off
        (the tiny random model, whose reading means nothing)."""
        self.reader = reader
        self._embedder_factory = embedder_factory
        self._embedder: Embedder | None = None
        self.extra_penalties = tuple(extra_penalties)
        self._models: dict[str, RewardModel] = {}

    def model(self, name: str) -> RewardModel:
        """The reward model or penalty ``name``, made once per stack."""
        if name not in self._models:
            self._models[name] = REWARDS[name]()
        return self._models[name]

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            if self._embedder_factory is None:
                from prompting.rewards.relevance import shared_embedder

                self._embedder = shared_embedder()
            else:
                self._embedder = self._embedder_factory()
        return self._embedder

    def _needs_embeddings(self, challenge: Challenge) -> bool:
        return any(self.model(name).uses_embeddings for name in challenge.rewards)

    def _run(self, name: str, step: Step, result: RewardResult, key: str) -> np.ndarray:
        """One reward model's or penalty's values for the step, timed under ``key``."""
        start = time.perf_counter()
        values = np.asarray(self.model(name).score(step), dtype=float)
        result.timings[key] = time.perf_counter() - start
        return values

    def _read(self, step: Step, which: Sequence[int], result: RewardResult) -> Step:
        """The step with ``which`` answers read by the validator's model (one batched
        call, one prompt object so that the backend renders the challenge once); the
        others get an empty reading, which no judge acts on."""
        from prompting.llms.base import Scored
        from prompting.rewards.fluency import READ_TOKENS

        readings = [Scored([]) for _ in step.completions]
        which = list(which)
        result.timings["read"] = 0.0
        if which:
            start = time.perf_counter()
            prompts = [step.challenge.messages] * len(which)
            texts = [step.completions[i] for i in which]
            for i, read in zip(which, self.reader.score(prompts, texts, READ_TOKENS)):
                readings[i] = read
            result.timings["read"] = time.perf_counter() - start
        result.timings["read_answers"] = float(len(which))
        return dataclasses.replace(step, readings=readings)

    def score(
        self,
        challenge: Challenge,
        completions: list[str],
        latencies: Sequence[float] | None = None,
    ) -> RewardResult:
        """Score one step's completions (``latencies``: seconds each took to arrive, which
        tells a copy from its original; None: the order given)."""
        n = len(completions)
        result = RewardResult(totals=np.zeros(n))
        if n == 0:
            return result
        asked = asked_text(challenge)
        # What an answer says beyond restating the question: the reward models see the
        # reference and every completion without their runs of the question's words.
        reference = without_runs(challenge.reference, asked, ASKED_RUN)
        passage = shown_passage(challenge)
        own = passage and not quotes_answer(challenge)  # a summary: its own words only

        def said(text: str) -> str:
            text = without_runs(text, asked, ASKED_RUN)
            return without_copies(text, passage, COPY_RUN, EDIT_GAP) if own else text

        # Relevance reads an answer sentence by sentence: padding that says nothing (a
        # quote wrapped in pleasantries, a stock paragraph) earns nothing of its own. The
        # whole answer is its sentences' words (stripped once, not twice).
        sentences = [[said(x) for x in SENTENCE_END.split(c)] for c in completions]
        beyond = [" ".join(x for x in answer if x) for answer in sentences]
        baselines = [asked, *passage_baselines(passage)]
        vectors = None
        if self._needs_embeddings(challenge):
            start = time.perf_counter()
            flat = [x for answer in sentences for x in answer]
            vectors = self.embedder.encode([reference, *baselines, *flat])
            result.timings["embed"] = time.perf_counter() - start

        step = Step(
            challenge,
            completions,
            reference,
            beyond,
            baselines,
            vectors,
            latencies,
            sentences=[[len(x.split()) for x in answer] for answer in sentences],
        )
        extra = [p for p in self.extra_penalties if p not in challenge.penalties]
        penalties = (*challenge.penalties, *extra)
        reads = self.reader is not None and any(
            self.model(m).uses_reading for m in (*challenge.rewards, *penalties)
        )
        if reads and any(self.model(m).uses_reading for m in challenge.rewards):
            step = self._read(step, range(n), result)  # a reward reads: every answer
            reads = False
        weighted = np.zeros(n)
        weight_sum = sum(challenge.rewards.values())
        for name, weight in challenge.rewards.items():
            values = self._run(name, step, result, f"reward/{name}")
            values = np.clip(np.nan_to_num(values), 0.0, 1.0)
            result.components[name] = values.tolist()
            weighted += weight * values
        weighted /= max(weight_sum, 1e-12)

        keep = np.ones(n)
        # penalties that read come last: only answers something is left of are read
        for name in sorted(penalties, key=lambda m: self.model(m).uses_reading):
            if reads and self.model(name).uses_reading:
                step = self._read(step, np.flatnonzero(weighted * keep > 0), result)
                reads = False
            values = self._run(name, step, result, f"penalty/{name}")
            result.components[f"penalty/{name}"] = values.tolist()
            keep *= 1.0 - np.clip(values, 0.0, 1.0)
        result.totals = np.clip(weighted * keep, 0.0, 1.0)
        return result


LEAD_SENTENCES = 2  # the passage's lead, as the summarization fallback takes it
BAG_WORDS = 60  # the passage's most frequent content words: a keyword list's reach


def quotes_answer(challenge: Challenge) -> bool:
    """Whether the challenge's task lets a quoted passage sentence answer
    (``Task.quotes_answer``; a task this process does not know: yes)."""
    from prompting.registry import TASKS, PluginError

    try:
        return TASKS[challenge.task].quotes_answer
    except PluginError:
        return True


def shown_passage(challenge: Challenge) -> str:
    """The passage when the challenge shows it to the miners, else ''."""
    c = challenge.context
    return c if c and c in challenge.prompt_text else ""


def passage_baselines(passage: str) -> list[str]:
    """What a miner gets from a shown passage without reading it: its lead and its bag
    of words. Similarity to the reference counts only beyond what these earn."""
    if not passage:
        return []
    lead = " ".join(SENTENCE_END.split(passage)[:LEAD_SENTENCES])
    counts = Counter(w for w in words(passage) if w not in FUNCTION_WORDS)
    return [lead, " ".join(w for w, _ in counts.most_common(BAG_WORDS))]


def asked_text(challenge: Challenge) -> str:
    """What the challenge says besides its passage: greeting, instruction, question."""
    return (
        challenge.prompt_text.replace(challenge.context, " ")
        if challenge.context
        else (challenge.prompt_text)
    )
