"""Reference answer strategies, good and deliberately bad, for the local subnet.

``retrieval`` and ``model`` try to answer; ``random``, ``echo``, ``empty`` and
``slow`` are what hostile or broken miners do, and ``restate``, ``keywords``,
``lead``, ``copy``, ``numbers``, ``appended``, ``shuffle``, ``reworded``, ``interleaved``,
``reordered``, ``padded_quote``, ``canned``, ``skipping``, ``chunked``, ``canned_quote``,
``patchwork`` and ``patchwork_skipping`` are the cheap tricks of the reward benchmark,
so the scoreboard can be seen to tell them apart.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import random
import re
from collections.abc import Callable

from prompting.miner import adversarial
from prompting.miner.base import Strategy
from prompting.protocol import PromptRequest
from prompting.rewards.dates import parse_dates
from prompting.text import FENCE, PASSAGE, QUESTION, QUOTED, SENTENCE_END


def prompt_text(request: PromptRequest) -> str:
    return "\n".join(m.content for m in request.messages if m.role == "user")


def retrieval(embedder) -> Callable[[PromptRequest], str]:
    """Answer from the challenge itself: the code block for debugging, the passage
    sentence closest to the question for qa, the most central sentences for summaries."""

    def answer(request: PromptRequest) -> str:
        text = prompt_text(request)
        code = FENCE.search(text)
        if code:
            return f"```python\n{code.group(1).strip()}\n```"
        found = PASSAGE.search(text)
        passage = found.group(1) if found else text.split("\n\n", 1)[-1]
        sentences = [s.strip() for s in SENTENCE_END.split(passage) if len(s.split()) >= 4]
        if not sentences:
            return passage[:500]
        if "Summarize" in text:
            vectors = embedder.encode([passage, *sentences])
            scores = vectors[1:] @ vectors[0]
            top = sorted(sorted(range(len(sentences)), key=lambda i: -scores[i])[:2])
            return " ".join(sentences[i] for i in top)
        asked = QUESTION.search(text)
        question = (
            asked.group(1) if asked else (QUOTED.findall(text) or [text.split("\n", 1)[0]])[0]
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
reworded = _from_text(adversarial.reworded)
interleaved = _from_text(adversarial.interleaved)
reordered = _from_text(adversarial.reordered)
padded_quote = _from_text(adversarial.padded_quote)
canned = _from_text(adversarial.canned)
skipping = _from_text(adversarial.skipping)
chunked = _from_text(adversarial.chunked)
canned_quote = _from_text(adversarial.canned_quote)
patchwork = _from_text(adversarial.patchwork)
patchwork_skipping = _from_text(adversarial.patchwork_skipping)


async def slow(request: PromptRequest) -> str:
    await asyncio.sleep(request.timeout + 2.0)
    return prompt_text(request)


# --- the strategies as registry parts (prompting.registry.STRATEGIES) ----------------


class Retrieval(Strategy):
    """``retrieval``: the passage's best sentence by the relevance embedder."""

    name = "retrieval"

    def __init__(self, embedder):
        self._answer = retrieval(embedder)

    @classmethod
    def from_config(cls, config) -> Retrieval:
        from prompting.rewards.relevance import shared_embedder

        r = config.reward
        return cls(shared_embedder(r.relevance_model, r.pooling, r.device))

    def answer(self, request: PromptRequest) -> str:
        return self._answer(request)


class Model(Strategy):
    """``model``: the miner's own language model (any backend, ``--neuron.*``)."""

    name = "model"

    def __init__(self, llm, sampling):
        self._answer = model(llm, sampling)

    @classmethod
    def from_config(cls, config) -> Model:
        import logging

        from prompting.llms import Sampling, load_llm, preflight

        for warning in preflight.check(config):
            logging.getLogger("miner").warning(warning)
        return cls(load_llm(config), Sampling.from_config(config))

    def answer(self, request: PromptRequest) -> str:
        return self._answer(request)


class RandomText(Strategy):
    """``random``: words drawn from the documentation corpus (``--neuron.seed``)."""

    name = "random"

    def __init__(self, seed: int | None = None):
        self._answer = random_text(seed)

    @classmethod
    def from_config(cls, config) -> RandomText:
        return cls(config.neuron.seed)

    def answer(self, request: PromptRequest) -> str:
        return self._answer(request)


def _part(name: str, function: Callable) -> type[Strategy]:
    """A strategy class around a module-level answer function (sync or async)."""
    if inspect.iscoroutinefunction(function):

        async def answer(self, request: PromptRequest) -> str:
            return await function(request)

    else:

        def answer(self, request: PromptRequest) -> str:
            return function(request)

    cls_name = name.title().replace("_", "")
    return type(
        cls_name, (Strategy,), {"name": name, "answer": answer, "__doc__": function.__doc__}
    )


Echo = _part("echo", echo)
Empty = _part("empty", empty)
Slow = _part("slow", slow)
Restate = _part("restate", restate)
Keywords = _part("keywords", keywords)
Lead = _part("lead", lead)
Copy = _part("copy", copy)
Numbers = _part("numbers", numbers)
Appended = _part("appended", appended)
Shuffle = _part("shuffle", shuffle)
Reworded = _part("reworded", reworded)
Interleaved = _part("interleaved", interleaved)
Reordered = _part("reordered", reordered)
PaddedQuote = _part("padded_quote", padded_quote)
Canned = _part("canned", canned)
Skipping = _part("skipping", skipping)
Chunked = _part("chunked", chunked)
CannedQuote = _part("canned_quote", canned_quote)
Patchwork = _part("patchwork", patchwork)
PatchworkSkipping = _part("patchwork_skipping", patchwork_skipping)
