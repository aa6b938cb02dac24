"""The fluency judge: would a reader accept this text as a reply to the challenge?

The validator's own model reads each answer after the chat-formatted challenge
(teacher-forced, ``LLM.score``) and the judge takes, over the answer's first
``READ_TOKENS`` tokens, the mean surprisal beyond what the model expected at each
position (``surprise_bound``: -log p minus the entropy of its next-token
distribution there). Mean log-probability alone cannot be the measure: a small model
finds a correct answer in words other than its own improbable (a hand-written answer
reads at -3 to -4 nats per token, the model's own at -1), so it would reward sounding
like the validator's model. Excess surprise forgives a word choice where the model was
unsure anyway and counts a word where it was sure of another: words out of order,
fillers between copied words, a copy with words swapped out. It is a gate, not a reward:
up to ``FLUENT`` nothing is taken, rising to everything at ``NONSENSE``. The constants
are measured on the benchmark line-up (``scripts/benchmark_rewards.py``); a 135M reader
cannot tell a third of an answer's words swapped from a terse hand-written reply, so
the gate is set to spare the second, and the echo and degenerate penalties catch
copies and scrambles by their form.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from prompting.llms.base import Scored

READ_TOKENS = 64  # what the judge reads of each answer: the cost of a step stays bounded
MIN_TOKENS = 4  # a phrase, a number, a name: too short to judge
# Excess surprise (nats per token, ``surprise_bound``) up to which an answer reads as
# prose, and at which it reads as no reply at all. On the recorded line-up (SmolLM2,
# 64 tokens): the model's answers -1.4 to -0.7, passage sentences -0.7 to 0.1, answers
# to other challenges up to -0.1; hand-written answers of the task templates up to 1.2
# (short replies to open requests, in words the small model would not pick); a third of
# the words replaced 0.8 (median), a stock paragraph 0.8, shuffled passages 1.7-2.0.
FLUENT = 1.25
NONSENSE = 2.0


def surprise_bound(read: Scored) -> float:
    """The mean excess surprise less one standard error: the judge acts on what a
    reading shows with some confidence, so a short answer with one odd word is not
    taken for word salad (NaN without entropies or with under two tokens)."""
    if read.entropies is None or read.tokens < 2:
        return float("nan")
    excess = [-(lp + h) for lp, h in zip(read.logprobs, read.entropies)]
    return statistics.fmean(excess) - statistics.stdev(excess) / math.sqrt(len(excess))


def fluency_penalty(read: Scored) -> float:
    """0 for prose, rising to 1 for text no reader would accept; 0 for answers too short
    to judge (and for an empty one, which the ``empty`` penalty handles) and where the
    backend gave no entropies."""
    bound = surprise_bound(read)
    if read.tokens < MIN_TOKENS or math.isnan(bound):
        return 0.0
    return min(1.0, max(0.0, (bound - FLUENT) / (NONSENSE - FLUENT)))


def fluency_penalties(readings: Sequence[Scored] | None, n: int) -> list[float]:
    """One penalty per answer; none without readings (no model to read with)."""
    if readings is None:
        return [0.0] * n
    return [fluency_penalty(r) for r in readings]
