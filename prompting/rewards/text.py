"""ROUGE-L and the word tokenizer shared by the text rewards and penalties."""

from __future__ import annotations

import re

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def lcs_length(a: list[str], b: list[str]) -> int:
    """Longest common subsequence, O(len(a)*len(b)) time, O(len(b)) memory."""
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, 1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def rouge_l(candidate: str, reference: str, max_words: int = 2000) -> tuple[float, float, float]:
    """ROUGE-L (precision, recall, F1) on lower-cased words; inputs cut at max_words."""
    c, r = words(candidate)[:max_words], words(reference)[:max_words]
    if not c or not r:
        return 0.0, 0.0, 0.0
    lcs = lcs_length(c, r)
    if lcs == 0:
        return 0.0, 0.0, 0.0
    p, rec = lcs / len(c), lcs / len(r)
    return p, rec, 2 * p * rec / (p + rec)
