"""Ranking fidelity: does the reward stack put answers of known quality in their order?

Each challenge gets a graded honest line-up built from the model's own answer, best
first: the answer whole; cut to its first half; a third of its words replaced by other
words of the passage; the model's answer to a different challenge of the same task;
nothing. The measure is Kendall's tau (tau-b, ties counted) between the rewards and
that order, per challenge and of the means per grade, and how many steps the
validator's moving averages need before they rank the five in order for good.
"""

from __future__ import annotations

import random
import statistics
from collections import defaultdict
from collections.abc import Sequence

from prompting.text import words

GRADES = ("whole", "half", "third_replaced", "other_challenge", "empty")  # best first
REPLACED_SHARE = 1 / 3


def graded(answer: str, passage: str, other_answer: str, seed: str) -> dict[str, str]:
    """The five graded answers to one challenge (``other_answer``: the model's answer
    to a different challenge; ``seed``: makes the replacements repeatable)."""
    tokens = answer.split()
    rng = random.Random(seed)
    pool = words(passage) or ["the"]
    replaced = list(tokens)
    for i in rng.sample(range(len(tokens)), round(len(tokens) * REPLACED_SHARE)):
        replaced[i] = rng.choice(pool)
    return {
        "whole": answer,
        "half": " ".join(tokens[: len(tokens) // 2]),
        "third_replaced": " ".join(replaced),
        "other_challenge": other_answer,
        "empty": "",
    }


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b of two sequences: (concordant - discordant) pairs over the
    geometric mean of the pairs untied in each; 0 when either is constant."""
    concordant = discordant = ties_x = ties_y = 0
    n = len(x)
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = x[i] - x[j], y[i] - y[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                ties_x += 1
            elif dy == 0:
                ties_y += 1
            elif (dx > 0) == (dy > 0):
                concordant += 1
            else:
                discordant += 1
    pairs_x = concordant + discordant + ties_y  # pairs x does not tie
    pairs_y = concordant + discordant + ties_x
    if pairs_x == 0 or pairs_y == 0:
        return 0.0
    return (concordant - discordant) / (pairs_x * pairs_y) ** 0.5


TRUE_ORDER = [float(len(GRADES) - i) for i in range(len(GRADES))]  # whole highest


def steps_to_order(rewards: list[list[float]], alpha: float) -> int | None:
    """Steps of moving averages (``alpha``, from 0, one challenge per step, in the order
    given) after which the averages rank the grades strictly in order and stay so;
    None when they never settle."""
    avg = [0.0] * len(GRADES)
    settled = None
    for step, row in enumerate(rewards, 1):
        avg = [alpha * r + (1 - alpha) * a for r, a in zip(row, avg)]
        if all(avg[i] > avg[i + 1] for i in range(len(avg) - 1)):
            settled = settled or step
        else:
            settled = None
    return settled


def summarize(rows: list[dict], alpha: float, seed: int = 0) -> dict:
    """Per task, from rows of {"task", "challenge_id", "grade", "total"}: the mean tau per
    challenge, the tau of the means per grade, the means, and the steps the moving
    averages need (challenges in a seeded random order)."""
    by_task: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for row in rows:
        by_task[row["task"]][row["challenge_id"]][row["grade"]] = row["total"]
    out = {}
    for task, challenges in sorted(by_task.items()):
        table = [[c[g] for g in GRADES] for c in challenges.values()]
        taus = [kendall_tau_b(row, TRUE_ORDER) for row in table]
        means = [statistics.mean(col) for col in zip(*table)]
        order = list(range(len(table)))
        random.Random(seed).shuffle(order)
        out[task] = {
            "n": len(table),
            "tau_per_challenge": round(statistics.mean(taus), 3),
            "share_in_order": round(sum(t == 1.0 for t in taus) / len(taus), 3),
            "tau_of_means": round(kendall_tau_b(means, TRUE_ORDER), 3),
            "means": {g: round(m, 4) for g, m in zip(GRADES, means)},
            "steps_to_order": steps_to_order([table[i] for i in order], alpha),
        }
    return out
