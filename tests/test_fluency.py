"""The fluency judge: the validator's model reads each answer after the challenge, and
text no reader would accept loses its reward (prompting/rewards/fluency.py)."""

from __future__ import annotations

import math

import pytest

from prompting.llms.base import Scored
from prompting.rewards import fluency
from prompting.rewards.stack import RewardStack
from prompting.tasks.base import Challenge


def _read(excess: float, n: int = 20) -> Scored:
    """A reading whose every token is ``excess`` nats more surprising than expected."""
    return Scored([-1.0 - excess] * n, [1.0] * n)


def test_penalty_is_a_gate_not_a_reward():
    fluent, better = _read(fluency.FLUENT - 0.5), _read(-0.5)
    salad = _read(fluency.NONSENSE + 1)
    half = _read((fluency.FLUENT + fluency.NONSENSE) / 2)
    # sounding even more like the model earns nothing more
    assert fluency.fluency_penalty(fluent) == fluency.fluency_penalty(better) == 0.0
    assert fluency.fluency_penalty(salad) == 1.0
    assert fluency.fluency_penalty(half) == pytest.approx(0.5)
    assert fluency.fluency_penalty(_read(20.0, fluency.MIN_TOKENS - 1)) == 0.0
    assert fluency.fluency_penalty(Scored([])) == 0.0 and math.isnan(Scored([]).mean)
    assert fluency.fluency_penalty(Scored([-20.0] * 10)) == 0.0  # no entropies: no verdict
    assert fluency.fluency_penalties(None, 3) == [0.0, 0.0, 0.0]


class CountingReader:
    """A reader that reports fixed log-probabilities and records what it was asked."""

    def __init__(self, per_answer):
        self.per_answer = per_answer
        self.calls = []

    def score(self, prompts, continuations, max_tokens=None):
        self.calls.append((list(prompts), list(continuations), max_tokens))
        return [_read(self.per_answer[c], 10) for c in continuations]


def _challenge(penalties):
    return Challenge(
        task="qa",
        source_id="s",
        seed=1,
        messages=[{"role": "user", "content": "Why are tuples hashable?"}],
        reference="Because they cannot change.",
        rewards={"rouge": 1.0},
        penalties=penalties,
    )


def test_the_stack_reads_a_step_once_and_applies_the_gate():
    fluent, salad = "Because they cannot change.", "change because cannot they."
    reader = CountingReader({fluent: 0.0, salad: 9.0})
    stack = RewardStack(reader=reader)
    result = stack.score(_challenge(("fluency",)), [fluent, salad])
    assert len(reader.calls) == 1  # one batched read per step
    prompts, texts, max_tokens = reader.calls[0]
    assert texts == [fluent, salad] and max_tokens == fluency.READ_TOKENS
    assert prompts[0] is prompts[1]  # one prompt object: rendered once by the backend
    assert result.components["penalty/fluency"] == [0.0, 1.0]
    assert result.totals[1] == 0.0 < result.totals[0]
    assert "read" in result.timings
    # a task without the judge, or a stack without a reader, reads nothing
    stack.score(_challenge(("empty",)), [fluent])
    assert len(reader.calls) == 1
    off = RewardStack().score(_challenge(("fluency",)), [fluent, salad])
    assert off.components["penalty/fluency"] == [0.0, 0.0]


def test_smollm2_reads_prose_above_word_salad(smollm2):
    """The real model on the real gate: a passage sentence and a plain answer pass, the
    same words shuffled or with fillers between them do not."""
    passage = (
        "A tuple is an immutable sequence. Because a tuple cannot change, it can be used "
        "as a dictionary key, while a list cannot."
    )
    challenge = [
        {
            "role": "user",
            "content": f"Answer the question using the passage.\n\nPassage:\n{passage}\n\n"
            "Question: Why can a tuple be a dictionary key?",
        }
    ]
    answers = {
        "quote": "Because a tuple cannot change, it can be used as a dictionary key.",
        "own": "A tuple is immutable, so its hash never changes and a dictionary accepts it.",
        "shuffled": "dictionary a change, key. it tuple as cannot be Because used can a",
        "filler": "Because indeed a tuple truly cannot notably change, really it can clearly "
        "be used indeed as a truly dictionary key.",
    }
    read = smollm2.score([challenge] * len(answers), list(answers.values()), 64)
    penalty = {k: fluency.fluency_penalty(r) for k, r in zip(answers, read)}
    assert penalty["quote"] == 0.0 and penalty["own"] == 0.0, penalty
    assert penalty["shuffled"] > 0.8, penalty
    assert penalty["filler"] > 0.2, penalty


def test_hand_written_answers_pass_the_gate(smollm2):
    """Prose of another source than the validator's model: the hand-written example
    answers of the task templates, read as replies to their own challenges, all pass
    (their mean log-probability, -0.7 to -4.3 nats per token, would not)."""
    from prompting.tasks import templates as t

    pairs = [(t.QA_CHALLENGE.format(passage=p, question=q), a) for p, q, a in t.QUESTION_EXAMPLES]
    pairs += [(t.SUMMARY_CHALLENGE.format(passage=p), s) for p, s in t.SUMMARY_EXAMPLES]
    pairs += [(r, a) for _, r, a in t.INSTRUCTION_EXAMPLES]
    prompts = [[{"role": "user", "content": c}] for c, _ in pairs]
    read = smollm2.score(prompts, [a for _, a in pairs], fluency.READ_TOKENS)
    assert [fluency.fluency_penalty(r) for r in read] == [0.0] * len(pairs)


def test_answers_with_nothing_left_are_not_read():
    """Reading costs the model thread a forward pass per answer: an answer that another
    penalty (or a zero reward) already took everything from is not read."""
    fluent, refused = "Because they cannot change.", "I'm sorry, I cannot help with that."
    reader = CountingReader({fluent: 0.0, refused: 0.0})
    result = RewardStack(reader=reader).score(
        _challenge(("refusal", "fluency")), [fluent, refused, "unrelated words entirely"]
    )
    assert reader.calls[0][1] == [fluent]
    assert result.timings["read_answers"] == 1.0
    assert result.components["penalty/fluency"] == [0.0, 0.0, 0.0]
