"""Quality gates on what the validator's LLM writes, whatever the model.

Cleaners (``cleaners.py``) repair what can be repaired; a gate then decides whether
the cleaned text may reach miners or the reward stack. A gate returns the reason it
rejects a text (a short name, counted per task in every step's event) or None. The
tasks regenerate a rejected text a bounded number of times, then fall back to a
challenge built without the LLM: a validator that scores miners against an echo or
an off-topic question scores noise.

Grounding is measured on content words (lower-cased, stopwords and a crude plural
``s`` dropped): the share of a text's content words that the passage also has.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from prompting.text import words

STOPWORDS = frozenset(
    "the a an and or of to in on for with by is are was were be been being this that "
    "these those it its as at from which when where who whom whose what why how if then "
    "than not no can could may might must will would should shall into such also only any "
    "all each other more most some there their they them has have had do does did done "
    "use used using you your i me my we our he she his her about between does doing "
    "passage text above following given question answer explain describe tell please "
    "example examples mean means meaning like just one two so very much many way ways".split()
)
# A line that starts with a label a chat model copies from its prompt or training.
_LABEL = re.compile(
    r"(?im)^\s*(?:\*\*)?(?:question|answer|passage|q|a|instruction|request|response|"
    r"reference|summary|user|assistant|system)(?:\*\*)?\s*[:：]"
)
# Words of the writer prompts; a text carrying them echoes its instructions.
_PROMPT_PHRASES = re.compile(
    r"(?i)\b(?:reply with|write one (?:question|request)|that the passage answers|"
    r"the passage above|using the passage|in two or three sentences)\b"
)
# A request opens with an imperative, or is a question (then its first sentence ends
# with "?"); a small model often writes a statement or an answer instead.
_IMPERATIVE = re.compile(
    r"(?i)^\s*(?:please|i(?:'d| would) like|i need|i want|help me|explain|describe|"
    r"compare|give|show|write|list|tell|summari[sz]e|suggest|recommend|outline|walk me|"
    r"create|provide|advise|illustrate|teach|define|discuss)\b"
)
_QUESTION_START = re.compile(
    r"(?i)^\s*(?:how|what|why|when|where|which|who|is|are|do|does|did|should|can|could|"
    r"would|will)\b[^.!?]*\?"
)
_SENTENCE = re.compile(r"[.!?](?:\s|$)")
MAX_REQUEST_SENTENCES = 2
# Share of content words found in the passage. The generic instruction's answer gets a
# lower bar: its miners see only the request, so its answer may reach beyond the passage.
MIN_GROUNDING = {"question": 0.5, "reference": 0.3, "open_reference": 0.2, "instruction": 0.25}
ECHO_RUN_WORDS = 10  # a verbatim run this long copied from the passage is an echo
MAX_QUESTION_WORDS = 40
MIN_REFERENCE_WORDS = 3
INSTRUCTION_WORDS = (4, 80)


def content_words(text: str) -> list[str]:
    out = []
    for w in words(text):
        if len(w) < 3 or w in STOPWORDS or w.isdigit():
            continue
        out.append(w[:-1] if len(w) > 4 and w.endswith("s") else w)
    return out


def grounding(text: str, passage: str) -> float:
    """Share of ``text``'s content words that ``passage`` also has (0 when it has none)."""
    mine = content_words(text)
    if not mine:
        return 0.0
    theirs = set(content_words(passage))
    return sum(w in theirs for w in mine) / len(mine)


def longest_shared_run(a: str, b: str) -> int:
    """Length in words of the longest run of words ``a`` copies verbatim from ``b``."""
    x, y = words(a), words(b)
    if not x or not y:
        return 0
    best, prev = 0, [0] * (len(y) + 1)
    for xi in x:
        cur = [0] * (len(y) + 1)
        for j, yj in enumerate(y, 1):
            if xi == yj:
                cur[j] = prev[j - 1] + 1
                best = max(best, cur[j])
        prev = cur
    return best


def repetitive(text: str) -> bool:
    """Degenerate loops ("match-all match-all match-all ..."): a word 4-gram three
    times or more, or a long text of few distinct words."""
    w = words(text)
    grams = Counter(zip(w, w[1:], w[2:], w[3:]))
    if grams and max(grams.values()) >= 3:
        return True
    return len(w) >= 12 and len(set(w)) / len(w) < 0.35


def common(text: str, examples: Iterable[str] = ()) -> str | None:
    """Failures of any LLM text: empty, a label, the writer prompt, a copied example,
    a degenerate loop."""
    if not text.strip():
        return "empty"
    if _LABEL.search(text):
        return "role_label"
    if _PROMPT_PHRASES.search(text):
        return "prompt_echo"
    norm = " ".join(words(text))
    if any(norm == " ".join(words(e)) for e in examples):
        return "example_copy"
    if repetitive(text):
        return "repetitive"
    return None


def _about(text: str, passage: str, kind: str) -> str | None:
    """A request of ``kind`` must be about the passage without copying it."""
    if longest_shared_run(text, passage) >= ECHO_RUN_WORDS:
        return "passage_echo"
    if grounding(text, passage) < MIN_GROUNDING[kind]:
        return "ungrounded"
    return None


def question(text: str, passage: str, examples: Iterable[str] = ()) -> str | None:
    """One question about the passage: ends with '?', only one, grounded, not a copy."""
    reason = common(text, examples)
    if reason:
        return reason
    if not text.rstrip().endswith("?"):
        return "not_a_question"
    if text.count("?") > 1:
        return "several_questions"
    if len(words(text)) < 3:
        return "too_short"
    if len(words(text)) > MAX_QUESTION_WORDS:
        return "too_long"
    return _about(text, passage, "question")


def reference(
    text: str,
    prompt: str,
    passage: str = "",
    examples: Iterable[str] = (),
    grounding_kind: str = "reference",
) -> str | None:
    """An answer to ``prompt`` (the request it answers): no labels, not the request
    repeated, grounded in ``passage`` when the task has one (``grounding_kind`` names
    the bar in MIN_GROUNDING)."""
    reason = common(text, examples)
    if reason:
        return reason
    if len(words(text)) < MIN_REFERENCE_WORDS:
        return "too_short"
    asked = words(prompt)
    if len(asked) >= 4 and longest_shared_run(text, prompt) >= max(4, int(0.8 * len(asked))):
        return "prompt_echo"
    if passage:
        have = len(words(passage))
        if have >= 40 and longest_shared_run(text, passage) >= 0.6 * have:
            return "passage_echo"
        if grounding(text, passage) < MIN_GROUNDING[grounding_kind]:
            return "ungrounded"
    return None


def instruction(text: str, passage: str, examples: Iterable[str] = ()) -> str | None:
    """A request a user would send about the passage's subject, not a copy of it."""
    reason = common(text, examples)
    if reason:
        return reason
    n = len(words(text))
    if n < INSTRUCTION_WORDS[0]:
        return "too_short"
    if n > INSTRUCTION_WORDS[1]:
        return "too_long"
    if not (_IMPERATIVE.search(text) or _QUESTION_START.search(text)):
        return "not_a_request"
    if len(_SENTENCE.findall(text)) > MAX_REQUEST_SENTENCES:
        return "not_a_request"
    return _about(text, passage, "instruction")
