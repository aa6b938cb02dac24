"""The diversity penalty: a near-copy of an answer that arrived earlier loses most of its
reward."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from prompting.rewards.text import lcs_length
from prompting.text import words

DUPLICATE_SIMILARITY = 0.8  # longest common word subsequence / longer length
DUPLICATE_MIN_WORDS = 8
# What a late near-copy loses. At 0.5 a copier of the best answer (``near_copy``, every
# seventh word dropped) was the best cheap strategy on summaries and open requests: its
# edits dodge the copy checks that the original pays, so half its reward matched the
# model's whole (recorded line-up, 2026-12-07). Independent answers never come this close
# (``DUPLICATE_SIMILARITY``); two miners sampling one model greedily can, and the later
# one pays: the price of keeping copying unprofitable.
DUPLICATE_PENALTY = 0.8


def duplicate_penalties(
    completions: list[str], latencies: Sequence[float] | None = None
) -> np.ndarray:
    """Penalize a completion that is a near-copy of one that arrived earlier.

    Copying is what is punished, not agreement: two answers count as copies only when
    their word sequences nearly coincide (``DUPLICATE_SIMILARITY``), which independently
    written answers do not, however close in meaning; and the first to arrive keeps its
    reward, since a copier can only answer after the miner it copies."""
    n = len(completions)
    out = np.zeros(n)
    order = sorted(range(n), key=lambda i: latencies[i] if latencies is not None else i)
    seen: list[list[str]] = []
    for i in order:
        w = words(completions[i])
        if not w:
            continue
        if any(_near_copy(w, other) for other in seen):
            out[i] = DUPLICATE_PENALTY
        seen.append(w)
    return out


def _near_copy(a: list[str], b: list[str]) -> bool:
    if min(len(a), len(b)) < DUPLICATE_MIN_WORDS:
        return False  # short answers ("March 3, 2027", "42") agree by being right
    longer = max(len(a), len(b))
    if min(len(a), len(b)) < DUPLICATE_SIMILARITY * longer:
        return False  # cheap bounds first: the LCS can be no longer than the shorter text
    shared = sum((Counter(a) & Counter(b)).values())
    if shared < DUPLICATE_SIMILARITY * longer:
        return False  # ... nor than the words the two have in common
    return a == b or lcs_length(a, b) / max(len(a), len(b)) >= DUPLICATE_SIMILARITY
