"""Open instructions: the validator's LLM writes a request a user might send about a
passage's subject, in the challenge's persona voice, then answers that same request;
its answer is the reference, judged by relevance and rouge.

Two LLM stages, each batched with the other drafts in flight. Without a real model
(or when the written request is unusable after cleaning) the request comes from a
template about the passage's first sentence and the reference is the passage itself.
"""

from __future__ import annotations

from prompting.datasets.offline import _SENTENCE_END
from prompting.llms.base import Prompt
from prompting.rewards.text import words
from prompting.tasks import cleaners
from prompting.tasks import templates as t
from prompting.tasks.base import Challenge, Draft, Task, user

MIN_WORDS, MAX_WORDS = 4, 80  # a usable request's length


class GenericInstructionTask(Task):
    name = "generic_instruction"
    rewards = {"relevance": 0.6, "rouge": 0.4}
    penalties = ("empty", "too_long", "echo", "refusal", "diversity")

    def _writer(self, draft: Draft) -> str:
        asker = self.voice(draft.seed).describe()
        return t.INSTRUCTION_WRITER.format(asker=asker, passage=draft.document.text)

    def _instruction(self, draft: Draft) -> str | None:
        """The LLM's request after cleaning, or None when there is none worth sending."""
        if not draft.outputs:
            return None
        text = cleaners.clean(draft.outputs[0], cleaners.INSTRUCTION, self._writer(draft))
        return text if MIN_WORDS <= len(words(text)) <= MAX_WORDS else None

    def next_prompt(self, draft: Draft) -> Prompt | None:
        if not self.use_llm:
            return None
        if not draft.outputs:
            return user(self._writer(draft))
        instruction = self._instruction(draft)
        if len(draft.outputs) == 1 and instruction is not None:
            return user(self.voice(draft.seed).phrase(instruction))  # what the miners get
        return None

    def finish(self, draft: Draft) -> Challenge:
        doc = draft.document
        instruction = self._instruction(draft)
        if instruction is not None and len(draft.outputs) == 2:
            reference = cleaners.clean(draft.outputs[1], cleaners.TEXT)
            if len(words(reference)) >= 5:
                return self.challenge(draft, instruction, reference, doc.text, kind="llm")
        sentence = _SENTENCE_END.split(doc.text)[0]
        template = self.rng(draft.seed).choice(t.INSTRUCTIONS)
        return self.challenge(
            draft, template.format(sentence=sentence), doc.text, doc.text, kind="template"
        )
