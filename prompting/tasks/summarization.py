"""Summarize a passage; the reference is the validator LLM's summary (one gated
stage, few-shot, asked exactly as the miners are).

With the tiny CPU model, or when the summary keeps failing its gate, the reference
is the passage's lead (its first sentences), the classic extractive baseline, so
rewards stay meaningful without a real model.
"""

from __future__ import annotations

from prompting.llms.base import Prompt
from prompting.tasks import cleaners, gates
from prompting.tasks import templates as t
from prompting.tasks.base import Challenge, Draft, Task, few_shot
from prompting.text import SENTENCE_END, words

LEAD_SENTENCES = 2
MIN_WORDS = 8  # a summary shorter than this says nothing


class SummarizationTask(Task):
    name = "summarization"
    rewards = {"rouge": 0.4, "relevance": 0.6}
    penalties = ("empty", "too_long", "echo", "degenerate", "refusal", "diversity", "fluency")

    stages = ("summary",)
    quotes_answer = False  # a summary is written: quoted passage text earns nothing
    stage_tokens = {"summary": 128}

    def stage_prompt(self, draft: Draft, stage: str) -> Prompt:
        examples = [(t.SUMMARY_CHALLENGE.format(passage=p), r) for p, r in t.SUMMARY_EXAMPLES]
        return few_shot(examples, t.SUMMARY_CHALLENGE.format(passage=draft.document.text))

    def check(self, draft: Draft, stage: str, text: str) -> tuple[str, str | None]:
        passage = draft.document.text
        summary = cleaners.clean(
            text, cleaners.REFERENCE, t.SUMMARY_CHALLENGE.format(passage=passage)
        )
        if len(words(summary)) < MIN_WORDS:
            return summary, "too_short"
        examples = [r for _, r in t.SUMMARY_EXAMPLES]
        return summary, gates.reference(summary, "", passage, examples)

    def finish(self, draft: Draft) -> Challenge:
        doc = draft.document
        if draft.complete:
            reference, kind = draft.accepted[0], "llm"
        else:
            reference = " ".join(SENTENCE_END.split(doc.text)[:LEAD_SENTENCES])
            kind = "lead"
        return self.challenge(
            draft, t.SUMMARY_CHALLENGE.format(passage=doc.text), reference, doc.text, kind=kind
        )
