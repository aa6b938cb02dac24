"""Reward regression: challenges the real model wrote and answered (recorded by
``scripts/benchmark_rewards.py --record 8``), scored by today's reward stack beside the
cheap strategies. A reward change that lets a trick catch up with the honest model
fails here, before the full benchmark is run."""

from __future__ import annotations

import json
import os

import pytest

from prompting.evaluation import lineup
from prompting.miner import adversarial
from prompting.rewards.stack import RewardStack

DATA = os.path.join(os.path.dirname(__file__), "data", "reward_lineup.json")
# What SmolLM2 read of every free-text answer of the line-ups below, after its challenge
# (scripts/benchmark_rewards.py --read_only on this file): the fluency judge replays it.
READINGS = os.path.join(os.path.dirname(__file__), "data", "reward_lineup.readings.json.gz")
FREE_TEXT = ("qa", "summarization", "generic_instruction")
ONE_ANSWER = ("math", "date_qa", "debugging")
NO_ANSWER_CEILING = 0.05  # what strategies that state no single answer may average


@pytest.fixture(scope="module")
def recorded():
    with open(DATA) as f:
        return {
            seed: [lineup.Record.from_dict(r) for r in rows] for seed, rows in json.load(f).items()
        }


@pytest.fixture(scope="module")
def summaries(embedder, recorded):
    from prompting.evaluation.readings import CachedReader
    from prompting.miner.strategies import retrieval

    stack = RewardStack(lambda: embedder, reader=CachedReader(READINGS))  # no model: replay
    quotes = retrieval(embedder)
    return {
        seed: lineup.summarize(lineup.score(stack, records, quotes))
        for seed, records in recorded.items()
    }


def test_the_recording_covers_every_task_and_two_seeds(summaries):
    assert len(summaries) == 2
    for summary in summaries.values():
        assert set(summary) == set(FREE_TEXT + ONE_ANSWER)


@pytest.mark.parametrize("task", FREE_TEXT)
def test_honest_model_leads_every_cheap_strategy(summaries, task):
    """Per seed, by at least 10% (the issue's bar; measured: 22% at the least, qa seed 1
    against ``canned_quote``)."""
    for seed, summary in summaries.items():
        means = {k: v["mean"] for k, v in summary[task]["strategies"].items()}
        for cheap in lineup.CHEAP:
            assert means[lineup.HONEST] >= 1.1 * means[cheap], (seed, task, cheap, means)


def test_a_correct_quote_earns_at_least_half_the_models_reward(summaries):
    """qa: where the retrieval miner's quoted sentence holds the reference's answer, it
    scores at least half what the model does on those challenges."""
    for seed, summary in summaries.items():
        quote = summary["qa"]["correct_quote"]
        assert quote["n"] >= 2 and quote["retrieval"] >= 0.5 * quote["model"], (seed, quote)


def test_the_recorded_readings_are_the_models(smollm2, recorded):
    """The replayed readings are what SmolLM2 reads today: one challenge read again."""
    from prompting.evaluation.readings import CachedReader
    from prompting.rewards.fluency import READ_TOKENS

    record = next(r for r in recorded["0"] if r.challenge.task == "qa")
    texts = list(lineup.answers(record).values())[:6]
    prompts = [record.challenge.messages] * len(texts)
    replayed = CachedReader(READINGS).score(prompts, texts, READ_TOKENS)
    fresh = smollm2.score(prompts, texts, READ_TOKENS)
    for r, f in zip(replayed, fresh):
        assert r.logprobs == pytest.approx(f.logprobs, abs=0.02)
        assert r.entropies == pytest.approx(f.entropies, abs=0.02)


@pytest.mark.parametrize("task", ONE_ANSWER)
def test_answers_that_state_nothing_earn_nothing(summaries, task):
    for seed, summary in summaries.items():
        assert summary[task]["no_answer_cheap_mean"] <= NO_ANSWER_CEILING, (seed, task)


def test_cheap_strategies_read_the_challenge_as_a_miner_would():
    text = (
        "Hi there.\n\nAnswer the question using the passage.\n\nPassage:\n"
        "Tuples are immutable. They can hold items of different types. Lists can change.\n\n"
        "Question: Can tuples hold items of different types?"
    )
    assert adversarial.question_of(text) == "Can tuples hold items of different types?"
    assert adversarial.best_sentence(text) == "They can hold items of different types."
    assert adversarial.restate(text).startswith("The answer to Can tuples hold")
    assert adversarial.lead(text).count(".") >= 1 and "Lists" in adversarial.lead(text)
    assert "tuples" in adversarial.keywords(text).split()
    assert adversarial.numbers("Find 3 + 4, then 12") == "3 4 12"
