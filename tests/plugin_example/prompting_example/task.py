"""A task: write the words of a sentence in reverse order.

Its one LLM stage asks the validator's model for the sentence; the reference is
computed, so the reward needs no model.
"""

from __future__ import annotations

from prompting.tasks.base import Challenge, Draft, Task, user

WORDS = "river stone cloud lantern meadow copper violet harbor candle summit".split()


class ReverseTask(Task):
    name = "example_reverse"
    rewards = {"example_reversed": 1.0}
    penalties = ("empty",)
    stages = ("sentence",)

    def draft(self, seed: int) -> Draft:
        words = self.rng(seed).sample(WORDS, 5)
        return Draft(self, seed, " ".join(words))

    def stage_prompt(self, draft: Draft, stage: str):
        return user(f"Repeat these words as they are:\n{draft.document}")

    def check(self, draft: Draft, stage: str, text: str) -> tuple[str, str | None]:
        return text.strip(), None if text.strip() else "empty"

    def finish(self, draft: Draft) -> Challenge:
        sentence = draft.accepted[0] if draft.accepted else draft.document
        return Challenge(
            task=self.name,
            source_id=f"words:{draft.seed}",
            seed=draft.seed,
            messages=user(f"Write these words in reverse order:\n{sentence}"),
            reference=" ".join(reversed(sentence.split())),
            rewards=dict(self.rewards),
            penalties=tuple(self.penalties),
            llm_outputs=list(draft.outputs),
            meta=draft.gate_meta(),
        )
