"""Tasks by name, weighted sampling, and the batched build of a step's challenges.

``TASKS`` is the registry (``prompting.registry``): the project's tasks and those of
installed plug-ins, each a ``Task`` subclass, imported when first named."""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import replace

from prompting.llms.base import LLM, Sampling
from prompting.registry import TASKS
from prompting.tasks.base import MAX_RETRIES, Challenge, Draft, Task

log = logging.getLogger(__name__)
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
        from prompting.config import LEFT_OUT_BY_DEFAULT

        self.names = [n for n, w in weights.items() if w > 0]
        for name, why in LEFT_OUT_BY_DEFAULT.items():
            if name not in self.names:
                log.info("task %s is not sampled: %s", name, why)
        self.weights = [weights[n] for n in self.names]
        self.rng = random.Random(seed)
        self.tasks = {n: TASKS[n](use_llm=use_llm, passages=passages) for n in self.names}

    def sample(self) -> tuple[Task, int]:
        name = self.rng.choices(self.names, self.weights)[0]
        return self.tasks[name], self.rng.randrange(2**31)


def build_challenges(
    drafts: Sequence[Draft], llm: LLM | None, sampling: Sampling | None = None
) -> list[Challenge]:
    """Finish drafts. Each round generates every pending prompt of every draft in one
    batched call, so drafts of concurrent steps, later stages and regenerations of
    rejected texts share batches. Each round draws a new seed: a retry with the seed
    that wrote the rejected text could write it again."""
    sampling = sampling or Sampling()
    # Batched LLM rounds this build may take: every stage of the longest task, each
    # tried up to 1 + MAX_RETRIES times.
    rounds = max((len(d.task.stages) for d in drafts), default=0) * (1 + MAX_RETRIES)
    for round_ in range(rounds if llm is not None else 0):
        # (draft, its next prompt) for every draft that still waits for the model
        waiting = [(d, p) for d in drafts if (p := d.task.next_prompt(d)) is not None]
        if not waiting:
            break
        cap = max(d.task.stage_tokens.get(d.stage, sampling.max_tokens) for d, _ in waiting)
        params = replace(sampling, max_tokens=min(sampling.max_tokens, cap))
        if sampling.seed is not None:
            params = replace(params, seed=sampling.seed + round_)
        generations = llm.generate([p for _, p in waiting], params)
        for (draft, _), generation in zip(waiting, generations):
            draft.task.receive(draft, generation.text)
    return [d.task.finish(d) for d in drafts]


def replay(challenge: Challenge, passages=None) -> Challenge:
    """Rebuild a challenge from its task, seed and recorded LLM texts (``passages``: the
    dataset it was drawn from, if not the offline default)."""
    task = TASKS[challenge.task](use_llm=bool(challenge.llm_outputs), passages=passages)
    draft = task.draft(challenge.seed)
    for text in challenge.llm_outputs:
        task.receive(draft, text)
    return task.finish(draft)
