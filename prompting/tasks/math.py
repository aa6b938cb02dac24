"""Generated math problems with exact answers; no LLM needed."""

from __future__ import annotations

from prompting.datasets.offline import dataset
from prompting.tasks import templates as t
from prompting.tasks.base import Challenge, Draft, Task


class MathTask(Task):
    name = "math"
    rewards = {"exact": 1.0}
    penalties = ("empty", "too_long", "refusal", "math_format")

    def draft(self, seed: int) -> Draft:
        return Draft(self, seed, dataset("math").get(self.rng(seed)))

    def finish(self, draft: Draft) -> Challenge:
        doc = draft.document
        return self.challenge(draft, t.MATH_CHALLENGE.format(problem=doc.text), doc.title, doc.text)
