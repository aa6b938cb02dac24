"""The fluency judge: would a reader accept this text as a reply to the challenge?

The validator's own model reads each answer after the chat-formatted challenge
(teacher-forced, ``LLM.score``) and the judge takes the mean log-probability per token
of the answer's first ``READ_TOKENS`` tokens. Word salad, copies with fillers between
the words and reworded copies with their articles dropped read as text no model would
write; prose of any source (the passage's own sentences, another model's answer, the
reference) reads as prose. The judge is a gate, not a reward: above ``FLUENT`` nothing
is taken, so sounding like the validator's model earns nothing over sounding like
anyone else; below it the penalty grows to 1 at ``NONSENSE``. The constants are
measured on the benchmark line-up (``scripts/benchmark_rewards.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from prompting.llms.base import Scored

READ_TOKENS = 64  # what the judge reads of each answer: the cost of a step stays bounded
MIN_TOKENS = 4  # a phrase, a number, a name: too short to judge
FLUENT = -2.0  # mean log-probability per token from which an answer reads as prose
NONSENSE = -3.5  # ... and at which it reads as no reply at all


def fluency_penalty(read: Scored) -> float:
    """0 for prose, rising to 1 for text no reader would accept; 0 for answers too short
    to judge (and for an empty one, which the ``empty`` penalty handles)."""
    if read.tokens < MIN_TOKENS or math.isnan(read.mean):
        return 0.0
    return min(1.0, max(0.0, (FLUENT - read.mean) / (FLUENT - NONSENSE)))


def fluency_penalties(readings: Sequence[Scored] | None, n: int) -> list[float]:
    """One penalty per answer; none without readings (no model to read with)."""
    if readings is None:
        return [0.0] * n
    return [fluency_penalty(r) for r in readings]
