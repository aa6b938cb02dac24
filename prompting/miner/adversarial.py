"""Cheap, dishonest answer strategies: what a miner without a model would try.

Each one reads only the challenge text a miner receives (no model, no reference),
and exists so the reward benchmark (``scripts/benchmark_rewards.py``) and the reward
regression test can show that an honest model outscores every one of them. They are
also available as local miner strategies, so the local subnet's scoreboard shows it.

``near_copy`` is the exception: it needs another miner's answer, which a copier would
get by querying that miner, so it is built from a given text and arrives later.
"""

from __future__ import annotations

import collections
import random
import re
from collections.abc import Callable

from prompting.rewards.text import FUNCTION_WORDS
from prompting.text import FENCE, PASSAGE, QUESTION, QUOTED, SENTENCE_END, words

_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")


def passage_of(text: str) -> str:
    """The passage (or code, or problem) a challenge is about, as a miner can find it."""
    code = FENCE.search(text)
    if code:
        return code.group(1)
    found = PASSAGE.search(text)
    return found.group(1) if found else text.split("\n\n", 1)[-1]


def question_of(text: str) -> str:
    """The question or request, as a miner can find it: after "Question:", else the
    quoted sentence, else the first line."""
    asked = QUESTION.search(text)
    if asked:
        return asked.group(1).strip()
    quoted = QUOTED.findall(text)
    return (quoted[0] if quoted else text.strip().split("\n", 1)[0]).strip()


def sentences_of(text: str) -> list[str]:
    return [s.strip() for s in SENTENCE_END.split(text) if len(s.split()) >= 3]


def best_sentence(text: str) -> str:
    """The passage sentence sharing most words with the question (ties: the earlier)."""
    asked = {w for w in words(question_of(text)) if w not in FUNCTION_WORDS}
    candidates = sentences_of(passage_of(text)) or [passage_of(text)]
    return max(candidates, key=lambda s: len(asked & set(words(s))))


def restate(text: str) -> str:
    """The question restated, then the best-overlap sentence."""
    question = question_of(text).rstrip(" ?")
    return f"The answer to {question} is: {best_sentence(text)}"


def keywords(text: str, k: int = 60) -> str:
    """The k most frequent content words of the question and the passage, no sentence."""
    counts = collections.Counter(
        w for w in words(question_of(text) + " " + passage_of(text)) if w not in FUNCTION_WORDS
    )
    return " ".join(w for w, _ in counts.most_common(k))


SHUFFLE_WORDS = 80  # about the length of an honest answer of 96 tokens
LEAD_SENTENCES = 3  # Lead-3, the classic extractive summary baseline


def lead(text: str) -> str:
    """The passage's first three sentences."""
    return " ".join(sentences_of(passage_of(text))[:LEAD_SENTENCES]) or passage_of(text)


def copy(text: str) -> str:
    """The whole passage."""
    return passage_of(text)


def shuffle(text: str) -> str:
    """The passage's words in an order of their own (seeded by the text): every word on
    topic, no sentence; what an embedding of averaged tokens cannot tell from prose."""
    shuffled = passage_of(text).split()
    random.Random(len(text)).shuffle(shuffled)
    return " ".join(shuffled[:SHUFFLE_WORDS])


def numbers(text: str) -> str:
    """Every number in the challenge, in order."""
    return " ".join(_NUMBER.findall(text))


def appended(text: str) -> str:
    """The passage's lead with an answer and a "score" appended: noise for parsers that
    read the last number or a self-assessment."""
    found = _NUMBER.findall(text)
    return f"{lead(text)} The answer is {found[-1] if found else 1}. Score: 1.0"


def near_copy(answer: str) -> str:
    """Another miner's answer with every seventh word dropped and the case changed:
    what a copier sends to dodge an exact-match check."""
    kept = [w for i, w in enumerate(answer.split(" ")) if i % 7 != 6]
    out = " ".join(kept)
    return out[:1].lower() + out[1:]


# Families that dodge the surface checks (issue 26), each written to keep the passage's
# words while breaking the runs, order or share that echo and ROUGE look for.
_SYNONYMS = {
    "is": "remains",
    "are": "remain",
    "can": "may",
    "used": "employed",
    "use": "employ",
    "returns": "gives back",
    "return": "give back",
    "function": "routine",
    "functions": "routines",
    "value": "quantity",
    "values": "quantities",
    "object": "item",
    "objects": "items",
    "also": "too",
    "when": "whenever",
    "should": "ought to",
    "must": "has to",
    "only": "solely",
    "each": "every",
    "new": "fresh",
    "called": "invoked",
    "data": "information",
    "number": "count",
    "create": "make",
    "creates": "makes",
    "following": "next",
    "example": "instance",
    "module": "package",
    "method": "operation",
    "methods": "operations",
}
_FILLERS = ("indeed", "truly", "notably", "really", "clearly")
_CANNED = (
    "This is a central idea in {a}. In short, {b} works together with {c}, and "
    "understanding {d} makes {e} much easier to apply in practice. The key point is "
    "that {f} and {g} are closely related, so anyone working with {h} should keep "
    "{i} in mind. Overall, {j} is an important part of the picture."
)
QUOTE_PAD = (
    "I hope this helps you understand the topic more clearly, and please let me know "
    "if you would like any further details or another example of how it works."
)


def reworded(text: str, k: int = SHUFFLE_WORDS) -> str:
    """The passage's sentences with articles dropped and common words swapped for
    synonyms: no six-word run left verbatim, every content word kept."""
    out: list[str] = []
    for token in passage_of(text).split():
        bare = token.lower().strip(".,;:!?()\"'")
        if bare in ("the", "a", "an"):
            continue
        if bare in _SYNONYMS:
            token = token.lower().replace(bare, _SYNONYMS[bare])
        out.append(token)
        if len(out) >= k:
            break
    return " ".join(out)


def interleaved(text: str, every: int = 4, k: int = SHUFFLE_WORDS) -> str:
    """The passage verbatim with a filler adverb after every ``every`` words."""
    out: list[str] = []
    for i, token in enumerate(passage_of(text).split()[:k]):
        out.append(token)
        if i % every == every - 1:
            out.append(_FILLERS[(i // every) % len(_FILLERS)])
    return " ".join(out)


def reordered(text: str, k: int = SHUFFLE_WORDS) -> str:
    """The passage's words shuffled, then walked so that no pair the degenerate check
    lists ("the of", "in and") is left: order no reader would accept, built to pass."""
    from prompting.rewards.penalties import misorder

    pool = passage_of(text).split()
    random.Random(len(text) + 1).shuffle(pool)
    out: list[str] = []
    while pool and len(out) < k:
        for j, token in enumerate(pool):  # the first word that makes no listed pair
            if not out or misorder([out[-1].lower(), token.lower().strip(".,;:")]) == 0:
                out.append(pool.pop(j))
                break
        else:
            out.append(pool.pop(0))
    return " ".join(out)


def padded_quote(text: str) -> str:
    """The best sentence verbatim, padded with canned politeness so that the quote
    stays under half of the answer."""
    return f"{best_sentence(text)} {QUOTE_PAD} {QUOTE_PAD}"


def canned(text: str) -> str:
    """A fluent stock paragraph with the prompt's most frequent content words slotted
    in: grammatical, on topic by its words, and saying nothing."""
    top = keywords(text, 10).split() or ["this"]
    slots = {name: top[i % len(top)] for i, name in enumerate("abcdefghij")}
    return _CANNED.format(**slots)


# Families found after the first five (2026-12-07): the passage kept in its order with
# stretches left out, which no run of six words or light edit shows, and the stock
# paragraph with the right sentence after it.
SKIP_KEEP, SKIP_LEAVE = 5, 3
CHUNK_WORDS = 5


def skipping(text: str, k: int = SHUFFLE_WORDS) -> str:
    """The passage in its order, ``SKIP_KEEP`` words kept and ``SKIP_LEAVE`` left out in
    turn: no six words in a row are copied, and the gaps are too wide for a light edit."""
    return " ".join(" ".join(_stretches(text)).split()[:k])


def _stretches(text: str) -> list[str]:
    """The passage in stretches of ``SKIP_KEEP`` words, ``SKIP_LEAVE`` left out between."""
    tokens = passage_of(text).split()
    step = SKIP_KEEP + SKIP_LEAVE
    return [" ".join(tokens[i : i + SKIP_KEEP]) for i in range(0, len(tokens), step)]


def chunked(text: str) -> str:
    """The opening ``CHUNK_WORDS`` words of every passage sentence, joined: a summary by
    deletion, every run shorter than a copy's."""
    return "; ".join(_openings(text))


def _openings(text: str) -> list[str]:
    """The opening ``CHUNK_WORDS`` words of every passage sentence."""
    return [" ".join(s.split()[:CHUNK_WORDS]) for s in sentences_of(passage_of(text))]


def canned_quote(text: str) -> str:
    """The stock paragraph (``canned``), then the passage's best sentence."""
    return f"{canned(text)} {best_sentence(text)}"


# Found 2026-12-07 (third session): the extract's pieces put in reverse order with a
# linking word before each, which the in-order alignment of the extract rule misses.
LINKS = ("Moreover,", "Also,", "Further,", "Besides,", "Likewise,", "Then,")


def _linked(pieces: list[str]) -> str:
    """The pieces last first, each a sentence opened by a linking word."""
    out = [p.rstrip(".,;:") for p in reversed(pieces)]
    return " ".join(
        f"{LINKS[i % len(LINKS)]} {p[0].lower()}{p[1:]}." for i, p in enumerate(x for x in out if x)
    )


def patchwork(text: str) -> str:
    """``chunked``'s sentence openings, last first, each after a linking word."""
    return _linked(_openings(text))


def patchwork_skipping(text: str, k: int = SHUFFLE_WORDS) -> str:
    """``skipping``'s stretches of the passage, last first, each after a linking word."""
    return " ".join(_linked(_stretches(text)).split()[:k])


CHEAP: dict[str, Callable[[str], str]] = {
    "restate": restate,
    "keywords": keywords,
    "lead": lead,
    "copy": copy,
    "numbers": numbers,
    "appended": appended,
    "shuffle": shuffle,
    "reworded": reworded,
    "interleaved": interleaved,
    "reordered": reordered,
    "padded_quote": padded_quote,
    "canned": canned,
    "skipping": skipping,
    "chunked": chunked,
    "canned_quote": canned_quote,
    "patchwork": patchwork,
    "patchwork_skipping": patchwork_skipping,
}
