"""Question answering about a passage.

With a real model the validator's LLM works in two gated stages: it writes one
question the passage answers (few-shot), then answers that question from the
passage exactly as the miners are asked it; the answer is the reference. With the
tiny CPU model (whose text is noise), and when a stage keeps failing its gate, the
task builds a cloze instead: a key phrase of one sentence is blanked, in the quoted
sentence and in the passage alike, and that phrase is the reference, so scores still
mean something and no string search finds the answer.
"""

from __future__ import annotations

from prompting.llms.base import Prompt
from prompting.tasks import cleaners, gates
from prompting.tasks import templates as t
from prompting.tasks.base import Challenge, Draft, Task, few_shot
from prompting.text import SENTENCE_END, words

EXAMPLES = t.QUESTION_EXAMPLES


def key_phrase(sentence: str, rng) -> str | None:
    """A 1-3 word run of content words, preferring longer words; None if there is none."""
    tokens = sentence.split()
    runs, run = [], []
    for tok in tokens:
        word = tok.strip(".,;:!?()\"'“”")
        content = word.isalpha() and len(word) >= 4 and word.lower() not in gates.STOPWORDS
        if content and word == tok:
            run.append(word)
        else:
            if run:
                runs.append(run)
            run = []
    if run:
        runs.append(run)
    if not runs:
        return None
    best = max(len("".join(r[:3])) for r in runs)
    choices = [r[:3] for r in runs if len("".join(r[:3])) >= best * 0.6]
    return " ".join(rng.choice(choices))


class QATask(Task):
    name = "qa"
    rewards = {"rouge": 0.5, "relevance": 0.5}
    penalties = ("empty", "too_long", "echo", "degenerate", "refusal", "diversity", "fluency")

    stages = ("question", "answer")
    stage_tokens = {"question": 48, "answer": 96}

    def stage_prompt(self, draft: Draft, stage: str) -> Prompt:
        if stage == "question":
            examples = [(t.QUESTION_WRITER.format(passage=p), q) for p, q, _ in EXAMPLES]
            return few_shot(examples, t.QUESTION_WRITER.format(passage=draft.document.text))
        examples = [(t.QA_CHALLENGE.format(passage=p, question=q), a) for p, q, a in EXAMPLES]
        return few_shot(examples, self._asked(draft))

    def _asked(self, draft: Draft) -> str:
        """The challenge text miners get (before the persona's wording)."""
        return t.QA_CHALLENGE.format(passage=draft.document.text, question=draft.accepted[0])

    def check(self, draft: Draft, stage: str, text: str) -> tuple[str, str | None]:
        passage = draft.document.text
        if stage == "question":
            asked = t.QUESTION_WRITER.format(passage=passage)
            question = cleaners.clean(text, cleaners.QUESTION, asked)
            return question, gates.question(question, passage, [q for _, q, _ in EXAMPLES])
        answer = cleaners.clean(text, cleaners.REFERENCE, self._asked(draft))
        examples = [a for _, _, a in EXAMPLES]
        return answer, gates.reference(answer, draft.accepted[0], passage, examples)

    def finish(self, draft: Draft) -> Challenge:
        if draft.complete:
            question, answer = draft.accepted
            return self.challenge(
                draft,
                self._asked(draft),
                answer,
                draft.document.text,
                kind="llm",
                llm_request=question,
            )
        return self._cloze(draft)

    def _cloze(self, draft: Draft) -> Challenge:
        doc, rng = draft.document, self.rng(draft.seed)
        sentences = [s for s in SENTENCE_END.split(doc.text) if len(words(s)) >= 6]
        rng.shuffle(sentences)
        found = []  # (sentence, phrase); those whose phrase the rest of the passage lacks first
        for sentence in sentences or [doc.text]:
            phrase = key_phrase(sentence, rng)
            if phrase:
                found.append((sentence, phrase))
        # The blank stands in the passage too: a passage that still held the sentence
        # (or the phrase elsewhere) would be solved by a string search, not by reading.
        found.sort(key=lambda sp: sp[1].lower() in doc.text.replace(sp[0], " ").lower())
        sentence, phrase = found[0] if found else (doc.text, words(doc.text)[0])
        blanked = sentence.replace(phrase, t.BLANK, 1)
        passage = doc.text.replace(sentence, blanked, 1)
        return self.challenge(
            draft,
            t.CLOZE_CHALLENGE.format(sentence=blanked, passage=passage),
            phrase,
            passage,
            kind="cloze",
            question=blanked,
        )
