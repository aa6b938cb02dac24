"""Summarize a passage; the reference is the validator LLM's summary.

With the tiny CPU model the reference is the passage's lead (its first sentences),
the classic extractive baseline, so rewards stay meaningful without a real model.
"""

from __future__ import annotations

from prompting.datasets.offline import _SENTENCE_END
from prompting.llms.base import Prompt
from prompting.rewards.text import words
from prompting.tasks import cleaners
from prompting.tasks import templates as t
from prompting.tasks.base import Challenge, Draft, Task, user

LEAD_SENTENCES = 2


class SummarizationTask(Task):
    name = "summarization"
    rewards = {"rouge": 0.4, "relevance": 0.6}
    penalties = ("empty", "too_long", "echo", "refusal", "diversity")

    def next_prompt(self, draft: Draft) -> Prompt | None:
        if not self.use_llm or draft.outputs:
            return None
        return user(t.SUMMARY_WRITER.format(passage=draft.document.text))

    def finish(self, draft: Draft) -> Challenge:
        doc = draft.document
        summary = cleaners.clean(draft.outputs[0], cleaners.TEXT) if draft.outputs else ""
        if len(words(summary)) >= 5:
            reference, kind = summary, "llm"
        else:
            reference = " ".join(_SENTENCE_END.split(doc.text)[:LEAD_SENTENCES])
            kind = "lead"
        return self.challenge(
            draft, t.SUMMARY_CHALLENGE.format(passage=doc.text), reference, doc.text, kind=kind
        )
