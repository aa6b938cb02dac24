"""What the validator's model read of each benchmark answer, kept on disk.

Reading (teacher-forced log-probabilities, ``LLM.score``) is the costly part of scoring
a benchmark on a CPU; the numbers of a given (challenge, answer) pair never change, so
they are read once, on whatever machine has the model loaded (a GPU run fills the file),
and every later scoring run with other reward constants replays them.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections.abc import Callable, Sequence

from prompting.llms.base import LLM, Prompt, Scored
from prompting.rewards.fluency import READ_TOKENS

STORE_TOKENS = READ_TOKENS  # tokens read and kept per answer: what the judge reads


def key(prompt: Prompt, continuation: str) -> str:
    text = prompt if isinstance(prompt, str) else json.dumps(list(prompt), sort_keys=True)
    return hashlib.sha256(f"{text}\0{continuation}".encode()).hexdigest()[:24]


class CachedReader:
    """Answers ``score`` from the file, reading what it lacks with the model that
    ``load`` returns (called at most once, on the first miss)."""

    def __init__(self, path: str, load: Callable[[], LLM] | None = None):
        self.path = path
        self._load = load
        self._llm: LLM | None = None
        self.cache: dict[str, list[float]] = {}
        self.misses = 0
        if os.path.exists(path):
            with gzip.open(path, "rt") as f:
                self.cache = json.load(f)

    def score(
        self,
        prompts: Sequence[Prompt],
        continuations: Sequence[str],
        max_tokens: int | None = None,
    ) -> list[Scored]:
        keys = [key(p, c) for p, c in zip(prompts, continuations)]
        missing = [i for i, k in enumerate(keys) if k not in self.cache]
        if missing:
            if self._llm is None:
                if self._load is None:
                    raise KeyError(f"{len(missing)} answers were never read into {self.path}")
                self._llm = self._load()
            read = self._llm.score(
                [prompts[i] for i in missing], [continuations[i] for i in missing], STORE_TOKENS
            )
            for i, scored in zip(missing, read):
                self.cache[keys[i]] = [
                    [round(x, 4) for x in scored.logprobs],
                    None if scored.entropies is None else [round(x, 4) for x in scored.entropies],
                ]
            self.misses += len(missing)
        cut = STORE_TOKENS if max_tokens is None else max_tokens
        return [Scored(*self.cache[k]).cut(cut) for k in keys]

    def save(self) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        with gzip.open(self.path + ".tmp", "wt") as f:
            json.dump(self.cache, f)
        os.replace(self.path + ".tmp", self.path)

    def close(self) -> None:
        if self._llm is not None:
            self._llm.close()
            self._llm = None
