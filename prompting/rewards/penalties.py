"""Penalties: each in [0, 1]; the stack multiplies the reward by (1 - penalty)."""

from __future__ import annotations

import re

from prompting.rewards.code import extract_code, parses
from prompting.rewards.exact import parse_answer
from prompting.rewards.text import (
    FUNCTION_WORDS,
    aligned_blocks,
    copied_mask,
    edited_copy,
    lcs_length,
)
from prompting.text import SENTENCE_END, words

# A refusal declines: "I can't help with that", "I'm unable to answer". An apology alone
# ("I'm sorry for the confusion, here is ...") or "as an AI" is not one: on the recorded
# line-up, 2 of the model's 48 answers apologised and then answered, and lost everything.
_DECLINING = "|".join(
    ("help", "assist", "answer", "do", "provide", "comply", "respond", "share", "say")
    + ("tell", "give", "offer", "write", "fulfill", "create", "generate", "discuss", "engage")
)
DECLINE = re.compile(
    r"\bi(?: am|'m)? ?(?:can(?:no|')t|unable to|not able to|won'?t(?: be able to)?"
    rf"|must decline to)\b(?: \w+)? (?:{_DECLINING})\b"
    r"|\b(?:outside|beyond) (?:of )?(?:what i know|my (?:knowledge|expertise|scope))",
    re.IGNORECASE,
)
APOLOGY = re.compile(
    r"\b(?:i'?m sorry|i am sorry|i apologi[sz]e|sorry)\b[^.!?\n,:;]*[.!?\n,:;]?", re.IGNORECASE
)
APOLOGY_ONLY_WORDS = 6  # an apology with fewer words besides it says nothing
TOO_LONG_FACTOR = 8  # completions this many times the reference's length are penalized
TOO_LONG_FLOOR = 400  # characters always allowed
COPY_RUN = 6  # a run of this many words shared with the passage counts as copied
ASKED_RUN = 3  # ... with the question or request: restating it (as the stack strips it)
COPY_FREE = 0.5  # share of an answer that may be quoted without penalty
COPY_FULL = 0.9  # share at which the whole reward is lost
# An answer may quote one passage sentence, the one that holds the answer, and a phrase
# of another; more of the passage is the passage handed back.
QUOTE_SENTENCES = 1.25
SENTENCE_QUOTED = 0.25  # a sentence counts as quoted from this share of its words
EDIT_GAP = 2  # words inserted or dropped between matched ones that still make a copy
# Share of an answer's words that, taken in the passage's order, make it an extract.
# Recorded line-up: the model's answers hold 31-67% passage words, in any order.
EXTRACT_SHARE = 0.9
# Share of an answer's words in runs of ``PATCH_RUN`` passage words, the runs in any
# order, that make it a patchwork of the passage (pieces reordered, a linking word
# between them). Recorded line-up: the model's own answers 0 to 0.4 on most challenges,
# 0.64 to 0.92 where it copied the passage; patchworks 0.8 to 0.85.
PATCH_RUN = 3
PATCHWORK_SHARE = 0.75
QUOTE_COST = 0.85  # of its reward that an answer made only of one quoted sentence loses
DEGENERATE_MIN_WORDS = 8
FUNCTION_SHARE_OK = 0.2  # English prose has about 0.4; a word list about 0 ...
FUNCTION_SHARE_NONE = 0.1  # ... random words of a technical text about 0.1
DISTINCT_TRIGRAMS_OK = 0.6  # share of distinct word trigrams below which text loops
DISTINCT_TRIGRAMS_NONE = 0.2  # ... and at which it says nothing
# Word order: pairs that prose almost never has ("the of", "in and", "a is"), per word.
# Measured on the recorded line-up: the model's answers at most 0.03 (median 0), the
# passage's words shuffled median 0.047.
MISORDER_OK = 0.02
MISORDER_NONE = 0.05
# A shown passage's words in an order of their own (recorded line-up: such answers are
# 100% passage words with an order of 0.22-0.38; the model's answers 31-67% passage words,
# order 0.31-0.85).
SCRAMBLED_SHARE = 0.9
ORDER_OK = 0.45
ORDER_NONE = 0.35
_ARTICLES = frozenset("the a an".split())
_PREPOSITIONS = frozenset("of in on for with by from at into about".split())
_NEVER_AFTER_PREPOSITION = frozenset(
    "of in on for with by from at into about and or but than if is are was were be been "
    "has have had will would should could may might can do does did".split()
)
_NEVER_AFTER_ARTICLE = _NEVER_AFTER_PREPOSITION | _ARTICLES
_CODE = re.compile(r"```.*?(?:```|\Z)|`[^`\n]*`", re.DOTALL)


def empty(completion: str, **_) -> float:
    return 1.0 if not completion.strip() else 0.0


def too_long(completion: str, reference: str, **_) -> float:
    limit = max(TOO_LONG_FLOOR, TOO_LONG_FACTOR * len(reference))
    return min(1.0, max(0.0, (len(completion) - limit) / limit))


def echo(completion: str, challenge: str, passage: str = "", **_) -> float:
    """The challenge handed back instead of an answer.

    Handed back: the answer's words copied in runs of ``ASKED_RUN`` words or more from
    what was asked (the request, the question), plus those copied from the passage
    (verbatim, with light edits: ``text.edited_copy``, as an extract: at least
    ``EXTRACT_SHARE`` of the answer the passage's words in its order, or as a patchwork:
    at least ``PATCHWORK_SHARE`` of it in short runs of the passage's words, in any
    order) once more than ``QUOTE_SENTENCES`` of its sentences are quoted. Up to
    ``COPY_FREE`` of an answer may be; an answer made of the passage's lead, of the whole
    passage (reworded, with fillers between its words or stretches left out too) or of
    the question restated loses everything.

    Quoted: one passage sentence (and a phrase), the one that carries the answer, is what
    a reader asking about a passage accepts; the reward models judge its content. An
    answer that is only such a quote (with the question restated around it) keeps
    ``1 - QUOTE_COST`` of its reward: the reader still has to find the answer in it, which
    a reply written for the question spares them."""
    answer = words(completion)
    if not answer:
        return 0.0
    shown = passage if passage and passage in challenge else ""
    source = words(shown)
    runs = copied_mask(answer, source, COPY_RUN)
    blocks = aligned_blocks(answer, source)  # one alignment for the edits and the extract
    edited, quoted_words = edited_copy(answer, source, COPY_RUN, EDIT_GAP, blocks)
    from_passage = [r or e for r, e in zip(runs, edited)]
    aligned = sum(i2 - i1 for i1, i2, _, _ in blocks)
    if len(answer) >= DEGENERATE_MIN_WORDS and aligned >= EXTRACT_SHARE * len(answer):
        # An extract: the passage's words in its order with stretches left out (five
        # words kept, three skipped; each sentence's opening), which no run or light
        # edit shows. All of it counts as copied, from the sentences it draws on.
        gap = len(source) + len(answer)  # any: the whole alignment is one chain
        from_passage, quoted_words = edited_copy(answer, source, 0, gap, blocks)
    elif len(answer) >= DEGENERATE_MIN_WORDS:
        # A patchwork: the same pieces put in an order of their own with linking words
        # between them ("Moreover, ..."), so that the alignment above finds one piece.
        pieces = copied_mask(answer, source, PATCH_RUN)
        if sum(pieces) >= PATCHWORK_SHARE * len(answer):
            drawn = copied_mask(source, answer, PATCH_RUN)  # the passage words it repeats
            from_passage = [f or p for f, p in zip(from_passage, pieces)]
            quoted_words = [q or d for q, d in zip(quoted_words, drawn)]
    asked = challenge.replace(shown, " ") if shown else challenge
    from_asked = copied_mask(answer, words(asked), ASKED_RUN)
    restated = sum(a and not p for a, p in zip(from_asked, from_passage)) / len(answer)
    quoted = sum(from_passage) / len(answer)
    if quoted_sentences(answer, shown, quoted_words) > QUOTE_SENTENCES:
        return _ramp(restated + quoted, COPY_FREE, COPY_FULL)
    # A quote is measured on content words: "The answer to ... is:" around it adds none
    # of its own, and function words must not dilute it below the quote's cost.
    content = [w not in FUNCTION_WORDS for w in answer]
    handed = sum((a or p) and c for a, p, c in zip(from_asked, from_passage, content))
    handed_share = handed / max(sum(content), 1)
    return max(
        _ramp(restated, COPY_FREE, COPY_FULL),
        QUOTE_COST * _ramp(max(restated + quoted, handed_share), COPY_FREE, 1.0),
    )


def _ramp(value: float, start: float, full: float) -> float:
    """0 up to ``start``, rising linearly to 1 at ``full``."""
    return min(1.0, max(0.0, (value - start) / (full - start)))


def quoted_sentences(answer: list[str], passage: str, quoted_words: list[bool]) -> float:
    """How many of the passage's sentences the answer repeats, each counted by the share
    of its words repeated (in runs of ``COPY_RUN`` words, of a shorter sentence whole, or
    within a lightly edited copy: ``quoted_words``, one flag per passage word); a share
    under ``SENTENCE_QUOTED`` (a phrase) does not count."""
    count, at = 0.0, 0
    for sentence in SENTENCE_END.split(passage):
        w = words(sentence)
        if not w:
            continue
        run = copied_mask(w, answer, min(COPY_RUN, len(w)))
        edited = quoted_words[at : at + len(w)]
        at += len(w)
        share = sum(r or e for r, e in zip(run, edited)) / len(w)
        count += share if share >= SENTENCE_QUOTED else 0.0
    return count


def scrambled(answer: list[str], passage: str) -> float:
    """The passage's words handed back in an order of their own: nearly every word of
    the answer is the passage's (``SCRAMBLED_SHARE``), but few follow the passage's
    order (their longest common subsequence with it, per word: ``ORDER_OK`` for prose
    that reuses the passage's terms, under ``ORDER_NONE`` for a shuffle, whatever the
    word pairs it steers around)."""
    source = words(passage)
    vocabulary = set(source)
    shared = [w for w in answer if w in vocabulary]
    if len(answer) < DEGENERATE_MIN_WORDS or len(shared) < SCRAMBLED_SHARE * len(answer):
        return 0.0
    order = lcs_length(shared, source) / len(shared)
    return min(1.0, max(0.0, (ORDER_OK - order) / (ORDER_OK - ORDER_NONE)))


def degenerate(completion: str, challenge: str = "", passage: str = "", **_) -> float:
    """Text that is not prose: a word list (few function words), words in no order
    (pairs such as "the of" that prose never has, or a shown passage's words out of its
    order: ``scrambled``; a shuffled passage, whose words an averaged embedding still
    finds on topic) or a loop (few distinct word trigrams).
    Code is not prose: fenced and inline code are left out of the first two. Short
    answers (a phrase, a name) are left alone."""
    w = words(completion)
    if len(w) < DEGENERATE_MIN_WORDS:
        return 0.0
    mixed = scrambled(w, passage) if passage and passage in challenge else 0.0
    trigrams = list(zip(w, w[1:], w[2:]))
    distinct = len(set(trigrams)) / len(trigrams)
    looping = (DISTINCT_TRIGRAMS_OK - distinct) / (DISTINCT_TRIGRAMS_OK - DISTINCT_TRIGRAMS_NONE)
    prose = words(_CODE.sub(" code ", completion))  # a word in its place keeps the order
    if len(prose) < DEGENERATE_MIN_WORDS:
        return min(1.0, max(0.0, looping))
    function_share = sum(x in FUNCTION_WORDS for x in prose) / len(prose)
    listing = (FUNCTION_SHARE_OK - function_share) / (FUNCTION_SHARE_OK - FUNCTION_SHARE_NONE)
    misordered = (misorder(prose) - MISORDER_OK) / (MISORDER_NONE - MISORDER_OK)
    return min(1.0, max(0.0, listing, misordered, looping, mixed))


def misorder(w: list[str]) -> float:
    """Word pairs prose does not have, per word: an article or preposition followed by
    a preposition, conjunction or auxiliary, or an article by an article."""
    bad = sum(
        (a in _ARTICLES and b in _NEVER_AFTER_ARTICLE)
        or (a in _PREPOSITIONS and b in _NEVER_AFTER_PREPOSITION)
        for a, b in zip(w, w[1:])
    )
    return bad / max(len(w), 1)


def refusal(completion: str, **_) -> float:
    """1 for an answer that declines (in its opening) or is an apology with nothing
    besides it; 0 for one that apologises and then answers."""
    opening = completion[:500]
    if DECLINE.search(opening):
        return 1.0
    if APOLOGY.search(opening) and len(words(APOLOGY.sub(" ", completion))) < APOLOGY_ONLY_WORDS:
        return 1.0
    return 0.0


def math_format(completion: str, **_) -> float:
    return 0.0 if parse_answer(completion) is not None else 1.0


def code_format(completion: str, **_) -> float:
    return 0.0 if parses(extract_code(completion)) else 0.5
