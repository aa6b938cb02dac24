"""Generated math problems with exact answers; no LLM needed.

The reference is the generator's solution as written (``5832 m^3``); the reward uses
the number it carries, kept in ``meta["answer"]`` when the challenge is built.
"""

from __future__ import annotations

from prompting.datasets.offline import dataset
from prompting.tasks import templates as t
from prompting.tasks.base import Challenge, Draft, Task
from prompting.text import solution_value


class MathTask(Task):
    name = "math"
    rewards = {"exact": 1.0}
    penalties = ("empty", "too_long", "refusal", "math_format")

    def draft(self, seed: int) -> Draft:
        return Draft(self, seed, dataset("math").get(self.rng(seed)))

    def finish(self, draft: Draft) -> Challenge:
        doc = draft.document
        return self.challenge(
            draft,
            t.MATH_CHALLENGE.format(problem=doc.text),
            doc.title,
            doc.text,
            answer=solution_value(doc.title),  # the truth as a number, for the reward
        )
