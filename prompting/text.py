"""Text patterns and word splitting shared by datasets, tasks, rewards and miners.

One definition each, so that what a task calls a sentence, a reward calls a word and a
miner calls the passage stay the same thing.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

# A sentence ends at . ! or ? followed by space and a capital or an opening parenthesis.
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(])")
# A fenced code block (```python, ```py or bare ```); group 1 is the code.
FENCE = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.DOTALL)
# The parts of a challenge as the task templates lay them out (docs/protocol.md).
PASSAGE = re.compile(r"Passage:\s*\n(.*?)(?:\n\n|\Z)", re.DOTALL)
QUESTION = re.compile(r"Question:\s*(.*?)(?:\n\n|\Z)", re.DOTALL)
QUOTED = re.compile(r"\"(.+?)\"", re.DOTALL)
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# A number as tasks write it and miners state it: sign, thousands commas, decimals,
# exponent; VALUE is a number or a fraction of two (``3/4``).
NUMBER = r"[-+]?(?:\d[\d,]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
VALUE = rf"{NUMBER}(?:\s*/\s*{NUMBER})?"
_FRACTION = re.compile(rf"({NUMBER})\s*/\s*({NUMBER})")
# A generator's solution: one number, optionally with a unit (``5832 m^3``).
_SOLUTION = re.compile(rf"\s*({NUMBER})\s*(?:[a-zA-Z]+(?:\^\d)?)?\s*")


def words(text: str) -> list[str]:
    """Lower-cased words (letters and digits, an apostrophe suffix kept): the unit of
    every word count, overlap and ROUGE score."""
    return _WORD.findall(text.lower())


def number_value(token: str) -> float | None:
    """The value of a VALUE token (commas and a final period dropped), or None."""
    token = token.strip().rstrip(".").replace(",", "")
    match = _FRACTION.fullmatch(token)
    try:
        if match:
            return float(Fraction(match.group(1)) / Fraction(match.group(2)))
        return float(token)
    except (ValueError, ZeroDivisionError):
        return None


def solution_value(solution: str) -> float:
    """The number of a generator's solution string (units dropped); ValueError if the
    solution is not one number (say, an expression like ``16^{90}``). The math task
    carries it as the truth, so the reward never reads it back from text."""
    match = _SOLUTION.fullmatch(solution)
    value = number_value(match.group(1)) if match else None
    if value is None or not math.isfinite(value):
        raise ValueError(f"not a single number: {solution!r}")
    return value
