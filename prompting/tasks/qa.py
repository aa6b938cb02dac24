"""Question answering about a passage.

With a real model the validator's LLM writes the question and its answer from the
passage. With the tiny CPU model (whose text is noise) and whenever the LLM's reply
cannot be parsed, the task builds a cloze instead: a key phrase of one sentence is
blanked and that phrase is the reference, so scores still mean something.
"""

from __future__ import annotations

import re

from prompting.datasets.offline import _SENTENCE_END
from prompting.llms.base import Prompt
from prompting.rewards.text import words
from prompting.tasks import cleaners
from prompting.tasks import templates as t
from prompting.tasks.base import Challenge, Draft, Task, user

_B = r"(?:\*\*)?"  # markdown bold around a label
_QA = re.compile(
    rf"Question{_B}\s*:{_B}\s*(.+?)\s*{_B}Answer{_B}\s*:{_B}\s*(.+)", re.DOTALL | re.IGNORECASE
)
STOPWORDS = frozenset(
    "the a an and or of to in on for with by is are was were be been this that these those "
    "it its as at from which when if then than not no can may must will would should into "
    "such also only any all each other more most some there their they them has have had "
    "used using use does do".split()
)


def key_phrase(sentence: str, rng) -> str | None:
    """A 1-3 word run of content words, preferring longer words; None if there is none."""
    tokens = sentence.split()
    runs, run = [], []
    for tok in tokens:
        word = tok.strip(".,;:!?()\"'“”")
        if word.isalpha() and len(word) >= 4 and word.lower() not in STOPWORDS and word == tok:
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
    penalties = ("empty", "too_long", "echo", "refusal", "diversity")

    def _writer(self, draft: Draft) -> str:
        asker = self.voice(draft.seed).describe()
        return t.QA_WRITER.format(passage=draft.document.text, asker=asker)

    def next_prompt(self, draft: Draft) -> Prompt | None:
        if not self.use_llm or draft.outputs:
            return None
        return user(self._writer(draft))

    def finish(self, draft: Draft) -> Challenge:
        doc = draft.document
        raw = ""
        if draft.outputs:  # labels stay: the parse below needs them
            steps = ("special_tokens", "prompt_echo", "preamble")
            raw = cleaners.clean(draft.outputs[0], steps, self._writer(draft))
        match = _QA.search(raw)
        if match:
            question = cleaners.clean(match.group(1), cleaners.QUESTION)
            answer = cleaners.clean(match.group(2), cleaners.TEXT)
            if len(words(question)) >= 3 and words(answer):
                return self.challenge(
                    draft,
                    t.QA_CHALLENGE.format(passage=doc.text, question=question),
                    answer,
                    doc.text,
                    kind="llm",
                    question=question,
                )
        return self._cloze(draft)

    def _cloze(self, draft: Draft) -> Challenge:
        doc, rng = draft.document, self.rng(draft.seed)
        sentences = [s for s in _SENTENCE_END.split(doc.text) if len(words(s)) >= 6]
        rng.shuffle(sentences)
        for sentence in sentences or [doc.text]:
            phrase = key_phrase(sentence, rng)
            if phrase:
                break
        else:
            phrase = words(doc.text)[0]
            sentence = doc.text
        blanked = sentence.replace(phrase, t.BLANK, 1)
        return self.challenge(
            draft,
            t.CLOZE_CHALLENGE.format(sentence=blanked, passage=doc.text),
            phrase,
            doc.text,
            kind="cloze",
            question=blanked,
        )
