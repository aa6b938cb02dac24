"""Reward models and penalties as parts of the registry (``prompting.registry.REWARDS``).

Each is a :class:`RewardModel`: it scores one step's completions, one value in [0, 1]
each. A task names the ones it uses: in ``Task.rewards`` (weighted, summed) or in
``Task.penalties`` (each value ``p`` keeps ``1 - p`` of the reward); ``--reward.penalties``
adds penalties to every task. The classes here only adapt the scoring functions of
this package (``text``, ``relevance``, ``dates``, ``exact``, ``code``, ``penalties``) to
the one interface; the math stays in those modules.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from prompting.rewards import penalties as pen

if TYPE_CHECKING:
    from prompting.llms.base import Scored
    from prompting.tasks.base import Challenge


@dataclass(frozen=True)
class Step:
    """What a reward model sees of one step."""

    challenge: Challenge
    completions: list[str]
    reference: str  # the reference less its runs of the question's words
    beyond: list[str]  # each completion less its runs of the question's words
    # What the challenge alone hands a miner: what was asked, then (a shown passage's)
    # lead and bag of words (``stack.passage_baselines``): credit counts beyond them.
    baselines: list[str]
    # [reference, *baselines, *the sentences of every answer] embedded (each sentence
    # less its runs of the question's words), when a model of the step uses_embeddings
    vectors: np.ndarray | None = None
    latencies: Sequence[float] | None = None  # seconds each answer took to arrive
    # each completion as the validator's model read it after the challenge, when a model
    # of the step uses_reading and the stack has a reader
    readings: Sequence[Scored] | None = None
    # per completion, the word count of each of its sentences (rows of ``vectors``)
    sentences: Sequence[Sequence[int]] = ()


class RewardModel(abc.ABC):
    """One score per completion, each in [0, 1] (values outside are clipped)."""

    name: str = "reward"
    # Whether ``score`` reads ``Step.vectors``: the stack embeds a step's texts in one
    # call only when a model of that step needs them.
    uses_embeddings: bool = False
    # Whether ``score`` reads ``Step.readings``: the stack has its model read a step's
    # answers in one batched call only when a model of that step needs them.
    uses_reading: bool = False

    @abc.abstractmethod
    def score(self, step: Step) -> Sequence[float]:
        """The value of each of ``step.completions``, in order."""


class Rouge(RewardModel):
    name = "rouge"

    def score(self, step: Step) -> list[float]:
        from prompting.rewards.text import PASSAGE_ROUGE_SHARE, beyond_baseline, rouge_l

        base = max((rouge_l(b, step.reference)[2] for b in step.baselines[1:]), default=0.0)
        return [
            beyond_baseline(rouge_l(c, step.reference)[2], PASSAGE_ROUGE_SHARE * base)
            for c in step.beyond
        ]


class Relevance(RewardModel):
    name = "relevance"
    uses_embeddings = True

    def score(self, step: Step) -> Sequence[float]:
        from prompting.rewards.relevance import (
            PASSAGE_SHARE,
            QUESTION_SHARE,
            relevance_beyond_baseline,
        )

        shares = [QUESTION_SHARE] + [PASSAGE_SHARE] * (len(step.baselines) - 1)
        per_sentence = relevance_beyond_baseline(step.vectors, shares)
        out, at = [], 0
        for counts in step.sentences:  # each answer: its sentences' mean, by words
            values = per_sentence[at : at + len(counts)]
            at += len(counts)
            total = sum(counts)
            out.append(float(np.dot(values, counts)) / total if total else 0.0)
        return out


class Date(RewardModel):
    name = "date"

    def score(self, step: Step) -> list[float]:
        from prompting.rewards.dates import date_reward

        return [date_reward(c, step.challenge.reference) for c in step.completions]


class Exact(RewardModel):
    name = "exact"

    def score(self, step: Step) -> list[float]:
        from prompting.rewards.exact import numeric_reward

        return [numeric_reward(c, step.challenge.meta["answer"]) for c in step.completions]


class CodeFix(RewardModel):
    name = "code_fix"

    def score(self, step: Step) -> list[float]:
        from prompting.rewards.code import fix_reward

        c = step.challenge
        return [fix_reward(x, c.reference, c.context) for x in step.completions]


class PerCompletion(RewardModel):
    """A penalty computed from each completion alone (with the challenge's reference,
    text and passage): ``function(completion=, reference=, challenge=, passage=) -> float``."""

    function: Callable[..., float]

    def score(self, step: Step) -> list[float]:
        c = step.challenge
        return [
            type(self).function(
                completion=x, reference=c.reference, challenge=c.prompt_text, passage=c.context
            )
            for x in step.completions
        ]


def _penalty(name: str, function: Callable[..., float]) -> type[PerCompletion]:
    return type(
        f"{name.title().replace('_', '')}Penalty",
        (PerCompletion,),
        {"name": name, "function": staticmethod(function), "__doc__": function.__doc__},
    )


EmptyPenalty = _penalty("empty", pen.empty)
TooLongPenalty = _penalty("too_long", pen.too_long)
EchoPenalty = _penalty("echo", pen.echo)
DegeneratePenalty = _penalty("degenerate", pen.degenerate)
RefusalPenalty = _penalty("refusal", pen.refusal)
MathFormatPenalty = _penalty("math_format", pen.math_format)
CodeFormatPenalty = _penalty("code_format", pen.code_format)


class DiversityPenalty(RewardModel):
    """Near-copies of an answer that arrived earlier (``diversity.duplicate_penalties``)."""

    name = "diversity"

    def score(self, step: Step) -> Sequence[float]:
        from prompting.rewards.diversity import duplicate_penalties

        return duplicate_penalties(step.completions, step.latencies)


class FluencyPenalty(RewardModel):
    """Text no reader would accept as a reply, as the validator's model reads it
    (``fluency``); nothing without a model to read with."""

    name = "fluency"
    uses_reading = True

    def score(self, step: Step) -> list[float]:
        from prompting.rewards.fluency import fluency_penalties

        return fluency_penalties(step.readings, len(step.completions))
