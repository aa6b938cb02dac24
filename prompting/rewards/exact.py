"""Exact numeric answers for math: the number a miner states, compared with the truth.

The truth is a number carried from the generator (``Challenge.meta["answer"]``), never
read back from text. A completion's answer is the one it *states*: ``\\boxed{..}`` or
"the answer is ..", as the challenge asks; a bare number counts only when it is the
whole answer. Numbers elsewhere (working, appended "scores", units such as ``m^3``)
are not answers, and a completion that states two different answers states none.
"""

from __future__ import annotations

import math
import re

from prompting.text import VALUE as _VALUE  # the number grammar
from prompting.text import number_value as _to_float

_BOXED = re.compile(rf"\\boxed\{{\s*({_VALUE})")
_ANSWER_IS = re.compile(
    rf"answer(?:\s+(?:to|for|of)\s[^.:=\n]{{0,60}}?)?\s*(?:is|:|=)\s*"
    rf"(?:about|approximately|≈|~)?\s*\$?\s*({_VALUE})",
    re.IGNORECASE,
)
_ONLY = re.compile(rf"\s*\$?\s*({_VALUE})\s*\$?\s*\.?\s*")


def parse_answer(text: str) -> float | None:
    """The number a completion states as its answer, or None (no stated answer, or
    two different ones)."""
    for pattern in (_BOXED, _ANSWER_IS):
        stated = {v for v in (_to_float(m) for m in pattern.findall(text)) if v is not None}
        if len(stated) == 1:
            return stated.pop()
        if stated:
            return None
    only = _ONLY.fullmatch(text)
    return _to_float(only.group(1)) if only else None


def numeric_reward(completion: str, truth: float, rel_tol: float = 1e-3) -> float:
    """1 when the stated answer matches the truth within rel_tol (or 0.01 absolute)."""
    answer = parse_answer(completion)
    if answer is None or not math.isfinite(answer):
        return 0.0
    return 1.0 if math.isclose(answer, truth, rel_tol=rel_tol, abs_tol=1e-2) else 0.0
