"""A reward (the share of words in the reference's places) and a penalty (shouting)."""

from __future__ import annotations

from prompting.rewards.models import RewardModel, Step


class ReversedWords(RewardModel):
    name = "example_reversed"

    def score(self, step: Step) -> list[float]:
        want = step.challenge.reference.split()
        return [
            sum(a == b for a, b in zip(c.split(), want)) / max(len(want), 1)
            for c in step.completions
        ]


class Shouting(RewardModel):
    """A penalty: 1 for an answer written in capitals."""

    name = "example_shouting"

    def score(self, step: Step) -> list[float]:
        return [float(c.isupper()) for c in step.completions]
