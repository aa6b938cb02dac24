"""Penalties: each in [0, 1]; the stack multiplies the reward by (1 - penalty)."""

from __future__ import annotations

import re

from prompting.rewards.code import extract_code, parses
from prompting.rewards.exact import parse_answer
from prompting.rewards.text import rouge_l

REFUSAL = re.compile(
    r"\b(i'?m sorry|i am sorry|i apologi[sz]e|i can(?:no|')t (?:help|assist|answer|do)|"
    r"as an ai|i am unable|i'm unable|i won'?t be able)\b",
    re.IGNORECASE,
)
TOO_LONG_FACTOR = 8  # completions this many times the reference's length are penalized
TOO_LONG_FLOOR = 400  # characters always allowed


def empty(completion: str, **_) -> float:
    return 1.0 if not completion.strip() else 0.0


def too_long(completion: str, reference: str, **_) -> float:
    limit = max(TOO_LONG_FLOOR, TOO_LONG_FACTOR * len(reference))
    return min(1.0, max(0.0, (len(completion) - limit) / limit))


def echo(completion: str, challenge: str, **_) -> float:
    """Reproducing the challenge: ROUGE-L recall of the challenge by the completion."""
    _, recall, _ = rouge_l(completion, challenge)
    return min(1.0, max(0.0, (recall - 0.5) / 0.3))


def refusal(completion: str, **_) -> float:
    return 1.0 if REFUSAL.search(completion[:500]) else 0.0


def math_format(completion: str, **_) -> float:
    return 0.0 if parse_answer(completion) is not None else 1.0


def code_format(completion: str, **_) -> float:
    return 0.0 if parses(extract_code(completion)) else 0.5


PENALTIES = {
    "empty": empty,
    "too_long": too_long,
    "echo": echo,
    "refusal": refusal,
    "math_format": math_format,
    "code_format": code_format,
}
