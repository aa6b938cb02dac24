"""The reward stack: per task a weighted sum of reward models, then penalties.

``RewardStack.score(challenge, completions)`` returns per-completion totals in
[0, 1] plus every component and its compute time, for telemetry. Relevance embeds
the reference and all completions of a step in one call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from prompting.rewards import penalties as pen
from prompting.rewards.code import fix_reward
from prompting.rewards.dates import date_reward
from prompting.rewards.exact import numeric_reward
from prompting.rewards.text import rouge_l

if TYPE_CHECKING:
    from prompting.rewards.relevance import Embedder
    from prompting.tasks.base import Challenge

DUPLICATE_COSINE = 0.97  # completions this close to another miner's count as copies
DUPLICATE_PENALTY = 0.5


@dataclass
class RewardResult:
    totals: np.ndarray
    components: dict[str, list[float]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def for_index(self, i: int) -> dict[str, float]:
        return {name: values[i] for name, values in self.components.items()}


class RewardStack:
    def __init__(self, embedder_factory: Callable[[], Embedder] | None = None):
        self._embedder_factory = embedder_factory
        self._embedder: Embedder | None = None

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
        return "relevance" in challenge.rewards or "diversity" in challenge.penalties

    def score(self, challenge: Challenge, completions: list[str]) -> RewardResult:
        n = len(completions)
        result = RewardResult(totals=np.zeros(n))
        if n == 0:
            return result
        vectors = None
        if self._needs_embeddings(challenge):
            start = time.perf_counter()
            vectors = self.embedder.encode([challenge.reference, *completions])
            result.timings["embed"] = time.perf_counter() - start

        weighted = np.zeros(n)
        weight_sum = sum(challenge.rewards.values())
        for name, weight in challenge.rewards.items():
            start = time.perf_counter()
            values = np.asarray(self._reward(name, challenge, completions, vectors), dtype=float)
            values = np.clip(np.nan_to_num(values), 0.0, 1.0)
            result.timings[f"reward/{name}"] = time.perf_counter() - start
            result.components[name] = values.tolist()
            weighted += weight * values
        weighted /= max(weight_sum, 1e-12)

        keep = np.ones(n)
        for name in challenge.penalties:
            start = time.perf_counter()
            if name == "diversity":
                values = duplicate_penalties(completions, vectors)
            else:
                fn = pen.PENALTIES[name]
                values = np.array(
                    [
                        fn(
                            completion=c,
                            reference=challenge.reference,
                            challenge=challenge.prompt_text,
                        )
                        for c in completions
                    ]
                )
            result.timings[f"penalty/{name}"] = time.perf_counter() - start
            result.components[f"penalty/{name}"] = values.tolist()
            keep *= 1.0 - np.clip(values, 0.0, 1.0)
        result.totals = np.clip(weighted * keep, 0.0, 1.0)
        return result

    @staticmethod
    def _reward(name: str, challenge: Challenge, completions: list[str], vectors):
        if name == "rouge":
            return [rouge_l(c, challenge.reference)[2] for c in completions]
        if name == "relevance":
            from prompting.rewards.relevance import cosine_rewards

            return cosine_rewards(vectors)
        if name == "date":
            return [date_reward(c, challenge.reference) for c in completions]
        if name == "exact":
            return [numeric_reward(c, challenge.reference) for c in completions]
        if name == "code_fix":
            return [fix_reward(c, challenge.reference, challenge.context) for c in completions]
        raise KeyError(f"unknown reward model {name!r}")


def duplicate_penalties(completions: list[str], vectors: np.ndarray | None) -> np.ndarray:
    """Penalize a non-empty completion that (nearly) equals another miner's in the step."""
    n = len(completions)
    out = np.zeros(n)
    if n < 2:
        return out
    norm = [" ".join(c.lower().split()) for c in completions]
    sims = np.zeros((n, n))
    if vectors is not None and vectors.shape[1]:
        comp = vectors[1:]
        sims = comp @ comp.T
    for i in range(n):
        if not norm[i]:
            continue
        for j in range(n):
            if i != j and norm[j] and (norm[i] == norm[j] or sims[i, j] >= DUPLICATE_COSINE):
                out[i] = DUPLICATE_PENALTY
                break
    return out
