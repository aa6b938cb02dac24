"""Reference answer strategies, good and deliberately bad, for the local subnet.

``retrieval`` and ``model`` try to answer; ``random``, ``echo``, ``empty`` and
``slow`` are what hostile or broken miners do, and ``restate``, ``keywords``,
``lead``, ``copy``, ``numbers``, ``appended`` and ``shuffle`` are the cheap tricks of the reward
benchmark, so the scoreboard can be seen to tell them apart.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import re
from collections.abc import Callable

from prompting.datasets.offline import _SENTENCE_END
from prompting.miner import adversarial
from prompting.protocol import PromptRequest
from prompting.rewards.code import _FENCE
from prompting.rewards.dates import parse_dates

_PASSAGE = re.compile(r"Passage:\s*\n(.*?)(?:\n\n|\Z)", re.DOTALL)
_QUESTION = re.compile(r"Question:\s*(.*?)(?:\n\n|\Z)", re.DOTALL)
_QUOTED = re.compile(r"\"(.+?)\"", re.DOTALL)


def prompt_text(request: PromptRequest) -> str:
    return "\n".join(m.content for m in request.messages if m.role == "user")


def retrieval(embedder) -> Callable[[PromptRequest], str]:
    """Answer from the challenge itself: the code block for debugging, the passage
    sentence closest to the question for qa, the most central sentences for summaries."""

    def answer(request: PromptRequest) -> str:
        text = prompt_text(request)
        code = _FENCE.search(text)
        if code:
            return f"```python\n{code.group(1).strip()}\n```"
        found = _PASSAGE.search(text)
        passage = found.group(1) if found else text.split("\n\n", 1)[-1]
        sentences = [s.strip() for s in _SENTENCE_END.split(passage) if len(s.split()) >= 4]
        if not sentences:
            return passage[:500]
        if "Summarize" in text:
            vectors = embedder.encode([passage, *sentences])
            scores = vectors[1:] @ vectors[0]
            top = sorted(sorted(range(len(sentences)), key=lambda i: -scores[i])[:2])
            return " ".join(sentences[i] for i in top)
        asked = _QUESTION.search(text)
        question = (
            asked.group(1) if asked else (_QUOTED.findall(text) or [text.split("\n", 1)[0]])[0]
        )
        if re.search(r"\b(when|date)\b", question, re.IGNORECASE):  # keep dated sentences
            dated = [s for s in sentences if parse_dates(s, 2000)]
            sentences = dated or sentences
        vectors = embedder.encode([question, *sentences])
        scores = vectors[1:] @ vectors[0] + [_overlap(question, s) for s in sentences]
        return sentences[int(scores.argmax())]

    return answer


def _overlap(question: str, sentence: str) -> float:
    """Share of the question's longer words that the sentence contains."""
    asked = {w for w in re.findall(r"\w+", question.lower()) if len(w) > 3}
    have = set(re.findall(r"\w+", sentence.lower()))
    return len(asked & have) / len(asked) if asked else 0.0


def model(llm, sampling) -> Callable[[PromptRequest], str]:
    def answer(request: PromptRequest) -> str:
        messages = [m.model_dump() for m in request.messages]
        params = sampling
        if request.max_tokens is not None:  # an organic user's choice, never above ours
            params = dataclasses.replace(
                params, max_tokens=min(request.max_tokens, params.max_tokens)
            )
        if request.temperature is not None:
            params = dataclasses.replace(params, temperature=request.temperature)
        return llm.generate([messages], params)[0].text

    return answer


def random_text(seed: int | None = None) -> Callable[[PromptRequest], str]:
    from prompting.datasets.offline import dataset

    vocab = sorted({w for d in dataset("pydoc").documents[:50] for w in d.text.split()})
    rng = random.Random(seed)

    def answer(request: PromptRequest) -> str:
        return " ".join(rng.choices(vocab, k=rng.randint(20, 60)))

    return answer


def echo(request: PromptRequest) -> str:
    return prompt_text(request)


def empty(request: PromptRequest) -> str:
    return ""


def _from_text(fn: Callable[[str], str]) -> Callable[[PromptRequest], str]:
    def answer(request: PromptRequest) -> str:
        return fn(prompt_text(request))

    answer.__doc__ = fn.__doc__
    return answer


# The cheap strategies of the reward benchmark, as local miners (prompting/miner/adversarial.py).
restate = _from_text(adversarial.restate)
keywords = _from_text(adversarial.keywords)
lead = _from_text(adversarial.lead)
copy = _from_text(adversarial.copy)
numbers = _from_text(adversarial.numbers)
appended = _from_text(adversarial.appended)
shuffle = _from_text(adversarial.shuffle)


async def slow(request: PromptRequest) -> str:
    await asyncio.sleep(request.timeout + 2.0)
    return prompt_text(request)
