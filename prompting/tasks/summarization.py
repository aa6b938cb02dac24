"""Summarize a passage; the reference is the validator LLM's summary.

With the tiny CPU model the reference is the passage's lead (its first sentences),
the classic extractive baseline, so rewards stay meaningful without a real model.
"""

from __future__ import annotations

from prompting.datasets.offline import _SENTENCE_END
from prompting.rewards.text import words
from prompting.tasks import templates as t
from prompting.tasks.base import Challenge, Draft, Task, user

LEAD_SENTENCES = 2


class SummarizationTask(Task):
    name = "summarization"
    rewards = {"rouge": 0.4, "relevance": 0.6}
    penalties = ("empty", "too_long", "echo", "refusal", "diversity")

    def draft(self, seed: int) -> Draft:
        doc = self.passages.get(self.rng(seed))
        prompt = user(t.SUMMARY_WRITER.format(passage=doc.text)) if self.use_llm else None
        return Draft(self, seed, doc, prompt)

    def finish(self, draft: Draft, llm_output: str | None) -> Challenge:
        doc = draft.document
        if llm_output and len(words(llm_output)) >= 5:
            reference, kind = llm_output.strip(), "llm"
        else:
            reference = " ".join(_SENTENCE_END.split(doc.text)[:LEAD_SENTENCES])
            kind = "lead"
        return self.challenge(
            draft,
            user(t.SUMMARY_CHALLENGE.format(passage=doc.text)),
            reference,
            doc.text,
            llm_output,
            kind=kind,
        )
