"""Exact numeric answers for math: parse what a miner wrote, compare with the truth."""

from __future__ import annotations

import math
import re
from fractions import Fraction

_NUMBER = r"[-+]?(?:\d[\d,]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_FRACTION = re.compile(rf"({_NUMBER})\s*/\s*({_NUMBER})")
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_ANSWER_IS = re.compile(r"answer\s*(?:is|:|=)\s*\$?\s*([^\s$]+)", re.IGNORECASE)
_ANY_NUMBER = re.compile(_NUMBER)


def _to_float(token: str) -> float | None:
    token = token.strip().rstrip(".").replace(",", "")
    match = _FRACTION.fullmatch(token)
    try:
        if match:
            return float(
                Fraction(match.group(1).replace(",", ""))
                / Fraction(match.group(2).replace(",", ""))
            )
        return float(token)
    except (ValueError, ZeroDivisionError):
        return None


def parse_answer(text: str) -> float | None:
    """The number a completion gives as its answer.

    Order of trust: ``\\boxed{..}``, "the answer is ..", a fraction, else the last
    number in the text (chain-of-thought puts the result last).
    """
    for pattern in (_BOXED, _ANSWER_IS):
        found = pattern.findall(text)
        if found:
            value = _to_float(found[-1].strip("$ "))
            if value is not None:
                return value
    fractions = _FRACTION.findall(text)
    if fractions:
        value = _to_float(f"{fractions[-1][0]}/{fractions[-1][1]}")
        if value is not None:
            return value
    numbers = _ANY_NUMBER.findall(text)
    return _to_float(numbers[-1]) if numbers else None


def numeric_reward(completion: str, reference: str, rel_tol: float = 1e-3) -> float:
    """1 when the parsed answer matches the reference within rel_tol (or 0.01 absolute)."""
    truth, answer = parse_answer(reference), parse_answer(completion)
    if truth is None or answer is None or not math.isfinite(answer):
        return 0.0
    return 1.0 if math.isclose(answer, truth, rel_tol=rel_tol, abs_tol=1e-2) else 0.0
