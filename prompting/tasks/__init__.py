"""Tasks by name, weighted sampling, and the batched build of a step's challenges."""

from __future__ import annotations

import random
from collections.abc import Sequence

from prompting.llms.base import LLM, Sampling
from prompting.tasks.base import Challenge, Draft, Task
from prompting.tasks.debugging import DebuggingTask
from prompting.tasks.math import MathTask
from prompting.tasks.qa import QATask
from prompting.tasks.summarization import SummarizationTask

TASKS: dict[str, type[Task]] = {
    cls.name: cls for cls in (QATask, SummarizationTask, MathTask, DebuggingTask)
}

__all__ = ["TASKS", "Challenge", "Draft", "Task", "TaskSampler", "build_challenges", "replay"]


class TaskSampler:
    """Picks (task, seed) pairs by the configured weights from one seeded stream."""

    def __init__(
        self,
        weights: dict[str, float],
        seed: int | None = None,
        use_llm: bool = False,
        passages=None,
    ):
        self.names = [n for n, w in weights.items() if w > 0]
        self.weights = [weights[n] for n in self.names]
        self.rng = random.Random(seed)
        self.tasks = {n: TASKS[n](use_llm=use_llm, passages=passages) for n in self.names}

    def sample(self) -> tuple[Task, int]:
        name = self.rng.choices(self.names, self.weights)[0]
        return self.tasks[name], self.rng.randrange(2**31)


def build_challenges(
    drafts: Sequence[Draft], llm: LLM | None, sampling: Sampling
) -> list[Challenge]:
    """Finish drafts; every draft needing LLM text is generated in one batched call."""
    needing = [d for d in drafts if d.llm_prompt is not None]
    texts: dict[int, str] = {}
    if needing and llm is not None:
        generations = llm.generate([d.llm_prompt for d in needing], sampling)
        texts = {id(d): g.text for d, g in zip(needing, generations)}
    return [d.task.finish(d, texts.get(id(d))) for d in drafts]


def replay(challenge: Challenge, passages=None) -> Challenge:
    """Rebuild a challenge from its task, seed and recorded LLM text (``passages``: the
    dataset it was drawn from, if not the offline default)."""
    task = TASKS[challenge.task](use_llm=challenge.llm_output is not None, passages=passages)
    return task.finish(task.draft(challenge.seed), challenge.llm_output)
