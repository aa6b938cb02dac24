"""Open instructions: the validator's LLM writes a request a user might send about a
passage's subject; miners get it in the challenge's persona voice, and the LLM answers
that same message; its answer is the reference, judged by relevance and rouge.

Two gated LLM stages (few-shot), each batched with the other drafts in flight.
Without a real model, or when a stage keeps failing its gate, the request comes from
a template about the passage's first sentence and the reference is the passage.
"""

from __future__ import annotations

from prompting.llms.base import Prompt
from prompting.tasks import cleaners, gates
from prompting.tasks import templates as t
from prompting.tasks.base import Challenge, Draft, Task, few_shot
from prompting.text import SENTENCE_END


class GenericInstructionTask(Task):
    name = "generic_instruction"
    rewards = {"relevance": 0.6, "rouge": 0.4}
    penalties = ("empty", "too_long", "echo", "degenerate", "refusal", "diversity", "fluency")

    stages = ("instruction", "answer")
    stage_tokens = {"instruction": 64, "answer": 160}

    def stage_prompt(self, draft: Draft, stage: str) -> Prompt:
        if stage == "instruction":
            writer = t.INSTRUCTION_WRITER.format
            examples = [(writer(passage=p), r) for p, r, _ in t.INSTRUCTION_EXAMPLES]
            return few_shot(examples, writer(passage=draft.document.text))
        examples = [(r, a) for _, r, a in t.INSTRUCTION_EXAMPLES]
        return few_shot(examples, self._asked(draft))

    def _asked(self, draft: Draft) -> str:
        """What the miners get: the accepted request in the persona's voice."""
        return self.voice(draft.seed).phrase(draft.accepted[0])

    def check(self, draft: Draft, stage: str, text: str) -> tuple[str, str | None]:
        passage = draft.document.text
        if stage == "instruction":
            writer = t.INSTRUCTION_WRITER.format(passage=passage)
            request = cleaners.clean(text, cleaners.INSTRUCTION, writer)
            examples = [r for _, r, _ in t.INSTRUCTION_EXAMPLES]
            return request, gates.instruction(request, passage, examples)
        answer = cleaners.clean(text, cleaners.REFERENCE, self._asked(draft))
        examples = [a for _, _, a in t.INSTRUCTION_EXAMPLES]
        reason = gates.reference(answer, draft.accepted[0], passage, examples, "open_reference")
        return answer, reason

    def finish(self, draft: Draft) -> Challenge:
        doc = draft.document
        if draft.complete:
            request, answer = draft.accepted
            return self.challenge(draft, request, answer, doc.text, kind="llm", llm_request=request)
        sentence = SENTENCE_END.split(doc.text)[0]
        template = self.rng(draft.seed).choice(t.INSTRUCTIONS)
        return self.challenge(
            draft, template.format(sentence=sentence), doc.text, doc.text, kind="template"
        )
