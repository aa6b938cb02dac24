"""The adversarial line-up: an honest model's answers beside cheap strategies, scored
by the real reward stack as one validator step would score them.

Used by ``scripts/benchmark_rewards.py`` (which generates the challenges and the
honest answers with a real model) and by the reward regression test (which replays
recorded ones). A reward change is right when the honest model leads every cheap
strategy here and the graded honest line-up (``fidelity``) comes out in order.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass

from prompting.evaluation import fidelity
from prompting.miner import adversarial
from prompting.rewards.stack import RewardStack, asked_text
from prompting.rewards.text import FUNCTION_WORDS
from prompting.tasks.base import Challenge
from prompting.text import words

HONEST = "model"
HEURISTIC = "retrieval"  # an honest extractive answer, reported beside the model
# Cheap strategies that state no single answer: on tasks with one right answer (math,
# dates, code) they must earn (almost) nothing.
NO_ANSWER = (
    "keywords",
    "copy",
    "lead",
    "numbers",
    "appended",
    "shuffle",
    "reworded",
    "interleaved",
    "reordered",
    "canned",
)
CHEAP = (*adversarial.CHEAP, "near_copy")
# Seconds after the step starts at which each answer arrives: the copier can only send
# after the miner it copies has answered.
LATENCY = {HONEST: 2.0, HEURISTIC: 0.3, "near_copy": 2.5}
CHEAP_LATENCY = 0.1


@dataclass
class Record:
    """One challenge and the honest model's answer to it, as the model miner wrote it."""

    challenge: Challenge
    honest: str

    def to_dict(self) -> dict:
        return {"challenge": self.challenge.to_dict(), "honest": self.honest}

    @classmethod
    def from_dict(cls, d: dict) -> Record:
        """The recorded challenge with today's reward models and penalties of its task,
        so a reward change is measured on the same challenges and answers."""
        from prompting.tasks import TASKS

        c = dict(d["challenge"])
        task = TASKS[c["task"]]
        c["rewards"], c["penalties"] = dict(task.rewards), tuple(task.penalties)
        return cls(Challenge(**c), d["honest"])


def answers(record: Record, retrieval=None) -> dict[str, str]:
    """Every strategy's answer to one challenge (``retrieval``: the miner strategy's
    callable, or None to leave it out)."""
    text = record.challenge.prompt_text
    out = {HONEST: record.honest}
    if retrieval is not None:
        from prompting.protocol import ChatMessage, PromptRequest

        request = PromptRequest(
            task=record.challenge.task,
            challenge_id=record.challenge.challenge_id,
            messages=[ChatMessage(**m) for m in record.challenge.messages],
            timeout=10.0,
            step=0,
        )
        out[HEURISTIC] = retrieval(request)
    for name, fn in adversarial.CHEAP.items():
        out[name] = fn(text)
    out["near_copy"] = adversarial.near_copy(record.honest)
    return out


def score(stack: RewardStack, records: list[Record], retrieval=None) -> list[dict]:
    """One row per (challenge, strategy): task, strategy, total and every component."""
    rows = []
    for record in records:
        named = answers(record, retrieval)
        names = list(named)
        latencies = [LATENCY.get(n, CHEAP_LATENCY) for n in names]
        result = stack.score(record.challenge, [named[n] for n in names], latencies)
        for i, name in enumerate(names):
            rows.append(
                {
                    "task": record.challenge.task,
                    "challenge_id": record.challenge.challenge_id,
                    "strategy": name,
                    "total": float(result.totals[i]),
                    "components": result.for_index(i),
                    "holds_answer": holds_answer(named[name], record.challenge),
                }
            )
    return rows


HOLDS_SHARE = 0.5  # of the reference's own content words an answer must contain


def holds_answer(answer: str, challenge: Challenge) -> bool:
    """Whether ``answer`` contains the reference's answer, judged by content: at least
    ``HOLDS_SHARE`` of the reference's content words that the question does not already
    say (a quoted passage sentence holds a right answer however the reference words it)."""
    asked = set(words(asked_text(challenge)))
    own = {w for w in words(challenge.reference) if w not in FUNCTION_WORDS and w not in asked}
    return bool(own) and len(own & set(words(answer))) >= HOLDS_SHARE * len(own)


def graded_answers(records: list[Record]) -> dict[str, dict[str, str]]:
    """The graded honest line-up (``fidelity.GRADES``) of every record, by challenge id;
    the "other challenge" answer is the next record's of the same task."""
    by_task: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        by_task[record.challenge.task].append(record)
    out = {}
    for same in by_task.values():
        for i, record in enumerate(same):
            other = same[(i + 1) % len(same)].honest if len(same) > 1 else ""
            c = record.challenge
            out[c.challenge_id] = fidelity.graded(
                record.honest, c.context or c.prompt_text, other, c.challenge_id
            )
    return out


def score_graded(stack: RewardStack, records: list[Record]) -> list[dict]:
    """One row per (challenge, grade): each challenge's graded line-up scored as one
    step of its own (its "whole" answer is the honest one: beside it, a copy)."""
    rows = []
    graded = graded_answers(records)
    for record in records:
        c = record.challenge
        named = graded[c.challenge_id]
        result = stack.score(c, list(named.values()), [2.0] * len(named))
        for i, grade in enumerate(named):
            rows.append(
                {
                    "task": c.task,
                    "challenge_id": c.challenge_id,
                    "grade": grade,
                    "total": float(result.totals[i]),
                }
            )
    return rows


def summarize(rows: list[dict]) -> dict:
    """Per task: mean total and components per strategy, the honest model's margin over
    the best cheap strategy (absolute and relative), the share of challenges on which
    any strategy scored above 0, and where the retrieval heuristic's quote holds the
    reference's answer (``holds_answer``), its mean beside the model's on those."""
    by_task: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        by_task[row["task"]][row["strategy"]].append(row)
    out = {}
    for task, strategies in sorted(by_task.items()):
        means = {}
        for name, items in strategies.items():
            components: dict[str, list[float]] = defaultdict(list)
            for item in items:
                for key, value in item["components"].items():
                    components[key].append(value)
            means[name] = {
                "mean": round(statistics.mean(i["total"] for i in items), 4),
                "n": len(items),
                "components": {k: round(statistics.mean(v), 4) for k, v in components.items()},
            }
        honest = means[HONEST]["mean"]
        cheap = {n: means[n]["mean"] for n in CHEAP if n in means}
        best = max(cheap, key=cheap.get)
        by_id: dict[str, float] = defaultdict(float)
        for items in strategies.values():
            for item in items:
                by_id[item["challenge_id"]] = max(by_id[item["challenge_id"]], item["total"])
        out[task] = {
            "strategies": means,
            "best_cheap": best,
            "margin": round(honest - cheap[best], 4),
            "margin_relative": round((honest - cheap[best]) / cheap[best], 3)
            if cheap[best] > 0
            else None,
            "no_answer_cheap_mean": round(
                statistics.mean(means[n]["mean"] for n in NO_ANSWER if n in means), 4
            ),
            "share_any_above_zero": round(sum(v > 0 for v in by_id.values()) / len(by_id), 3),
        }
        if HEURISTIC in means:
            out[task]["margin_over_retrieval"] = round(honest - means[HEURISTIC]["mean"], 4)
            # a correct quote: the retrieval sentence that holds the reference's answer
            holding = {i["challenge_id"] for i in strategies[HEURISTIC] if i["holds_answer"]}
            if holding:
                quote = [i["total"] for i in strategies[HEURISTIC] if i["challenge_id"] in holding]
                model = [i["total"] for i in strategies[HONEST] if i["challenge_id"] in holding]
                out[task]["correct_quote"] = {
                    "n": len(holding),
                    "retrieval": round(statistics.mean(quote), 4),
                    "model": round(statistics.mean(model), 4),
                    "ratio": round(statistics.mean(quote) / statistics.mean(model), 3)
                    if statistics.mean(model) > 0
                    else None,
                }
    return out
