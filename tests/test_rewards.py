import ast
import random
import time

import numpy as np
import pytest

from prompting.miner import adversarial
from prompting.rewards import penalties
from prompting.rewards.code import fix_reward
from prompting.rewards.dates import date_reward
from prompting.rewards.diversity import DUPLICATE_PENALTY, duplicate_penalties
from prompting.rewards.exact import numeric_reward, parse_answer
from prompting.rewards.stack import RewardStack
from prompting.rewards.text import (
    aligned_blocks,
    copied_mask,
    edited_copy,
    lcs_length,
    rouge_l,
)
from prompting.tasks import TASKS, TaskSampler, build_challenges, replay
from prompting.tasks.base import Challenge
from prompting.tasks.debugging import corrupt
from prompting.text import solution_value, words


def test_rouge_l_hand_computed():
    # LCS("the cat sat on the mat", "the cat is on the mat") = the cat on the mat = 5
    p, r, f = rouge_l("the cat sat on the mat", "the cat is on the mat")
    assert (p, r) == (5 / 6, 5 / 6) and f == pytest.approx(5 / 6)
    p, r, f = rouge_l("a b c d", "a c")
    assert (p, r, f) == (0.5, 1.0, pytest.approx(2 / 3))
    assert rouge_l("", "x") == (0.0, 0.0, 0.0)
    assert lcs_length(list("abcbdab"), list("bdcaba")) == 4


@pytest.mark.parametrize(
    "text,value",
    [
        ("42", 42),
        ("42.0", 42),
        ("4.2e1", 42),
        ("1/2", 0.5),
        ("\\boxed{42}", 42),
        ("The answer is 42.", 42),
        ("First 3, then 7, so the answer is -1,250", -1250),
        ("The answer to the problem is 98.", 98),
        ("The answer is 5832 m^3", 5832),  # a unit is not a second number
        ("The answer is 3. Score: 1.0", 3),  # appended noise is not the answer
        ("The answer is 3. The answer is 4.", None),  # two answers state none
        ("x = 3 and y = 12", None),  # numbers in working are not a stated answer
        ("39 16 55", None),
        ("no number", None),
        ("\\boxed{3/4}", 0.75),
    ],
)
def test_math_parsing_table(text, value):
    assert parse_answer(text) == (None if value is None else pytest.approx(value))


def test_numeric_reward():
    assert numeric_reward("The answer is 212", 212.0) == 1.0
    assert numeric_reward("211", 212.0) == 0.0
    assert numeric_reward("7.85", 7.85) == 1.0 and numeric_reward("", 1.0) == 0.0


def test_math_truth_is_the_generators_number():
    """The reference ``5832 m^3`` once parsed back as 3 (the unit's exponent)."""
    assert solution_value("5832 m^3") == 5832 and solution_value("-101397.0") == -101397
    with pytest.raises(ValueError):
        solution_value("16^{90}")
    task = TASKS["math"]()
    for seed in range(40):
        c = task.finish(task.draft(seed))
        assert c.meta["answer"] == solution_value(c.reference)
        assert numeric_reward(f"The answer is {c.reference}", c.meta["answer"]) == 1.0
        assert numeric_reward(f"The answer is {c.reference}. Score: 1.0", c.meta["answer"]) == 1


def test_date_reward_needs_one_stated_date():
    assert date_reward("It is on March 25, 2005.", "2005-03-25") == 1.0
    assert date_reward("Good Friday: 25/03/2005", "2005-03-25") == 1.0
    listed = "Maundy Thursday is on March 24, 2005. Good Friday is on March 25, 2005."
    assert date_reward(listed, "2005-03-25") == 0.0
    assert date_reward("No idea.", "2005-03-25") == 0.0
    assert 0 < date_reward("March 24, 2005", "2005-03-25") < 1


def test_relevance_ranks_relevant_above_irrelevant(embedder):
    from prompting.rewards.relevance import QUESTION_SHARE, relevance_beyond_baseline

    ref = "A list in Python is a mutable sequence of items that can be changed in place."
    vecs = embedder.encode(
        [
            ref,
            "What kind of object is a Python list?",
            "Python lists are mutable sequences; you can modify them.",
            "The weather in Lisbon is sunny with a light breeze.",
            "",
        ]
    )
    scores = relevance_beyond_baseline(vecs, [QUESTION_SHARE])
    assert scores[0] > scores[1] + 0.2 and scores[2] == 0.0
    assert scores[0] < float(vecs[2] @ vecs[0])  # the question's own closeness is taken off


def test_restating_the_question_earns_nothing(embedder):
    question = "Why can a tuple be used as a dictionary key when a list cannot?"
    challenge = Challenge(
        task="qa",
        source_id="s",
        seed=1,
        messages=[{"role": "user", "content": f"Answer the question.\n\nQuestion: {question}"}],
        reference="Because a tuple is immutable its hash never changes, so it can be a key.",
        rewards={"rouge": 0.5, "relevance": 0.5},
        penalties=("empty",),
    )
    answer = "Tuples are immutable, so their hash stays fixed and dictionaries accept them."
    restated = f"The answer to {question.rstrip('?')} is: {answer}"
    result = RewardStack(lambda: embedder).score(challenge, [answer, restated])
    assert result.totals[1] <= result.totals[0] + 1e-6


def test_debugging_corruptions_parse_and_differ():
    task = TASKS["debugging"]()
    kinds = set()
    for seed in range(60):
        draft = task.draft(seed)
        original, broken = draft.state["original"], draft.state["broken"]
        ast.parse(broken)
        assert broken != original
        kinds.add(draft.state["what"].split()[0])
    assert kinds == {"operator", "dropped", "name"}
    assert fix_reward(original, original, broken) == 1.0
    assert fix_reward(broken, original, broken) == 0.0
    assert fix_reward(f"```python\n{original}\n```", original, broken) == 1.0


def test_corrupt_refuses_code_it_cannot_change():
    with pytest.raises(ValueError):
        corrupt("pass", random.Random(0))


def test_penalties():
    assert penalties.empty(completion="  \n") == 1.0
    assert penalties.too_long(completion="x" * 5000, reference="short") > 0.9
    assert penalties.too_long(completion="x" * 100, reference="short") == 0.0
    challenge = "Summarize the following passage about lists and tuples in Python today"
    assert penalties.echo(completion=challenge, challenge=challenge) == 1.0
    assert penalties.echo(completion="lists hold items", challenge=challenge) == 0.0
    assert penalties.refusal(completion="I'm sorry, I cannot help with that.") == 1.0
    assert penalties.math_format(completion="no idea") == 1.0
    assert penalties.code_format(completion="def f(:\n") == 0.5


def test_refusal_is_declining_not_apologising():
    """An answer that declines, or an apology with nothing besides it, is a refusal; one
    that apologises (or says it is an AI) and then answers is not (2 of the model's 48
    recorded answers opened so and lost everything)."""
    refusals = [
        "I'm sorry, I cannot help with that.",
        "Sorry, I can't.",
        "I am sorry.",
        "I won't be able to answer that question.",
        "As a language model I'm unable to provide a step-by-step example of that.",
        "Sorry, but that is outside what I know.",
    ]
    answers = [
        "I'm sorry for the confusion, but here is the summary: tuples cannot change.",
        "I apologize for the confusion. Tuples are immutable, so they can be dictionary keys.",
        "As an AI, I think tuples are immutable and lists are not.",
        "The function cannot help you if the input is empty.",
    ]
    assert [penalties.refusal(completion=t) for t in refusals] == [1.0] * len(refusals)
    assert [penalties.refusal(completion=t) for t in answers] == [0.0] * len(answers)


def test_echo_counts_copied_runs_not_shared_words():
    passage = (
        "A tuple is an immutable sequence. Tuples are written as comma-separated values, "
        "usually inside parentheses, and can hold items of different types."
    )
    challenge = f"Summarize this passage.\n\nPassage:\n{passage}"
    lead = "A tuple is an immutable sequence. Tuples are written as comma-separated values."
    own = "Tuples cannot change once made; they hold comma-separated values of any type."
    for kw in ({}, {"passage": passage}):  # with or without knowing the passage
        assert penalties.echo(completion=lead, challenge=challenge, **kw) == 1.0
        assert penalties.echo(completion=passage, challenge=challenge, **kw) == 1.0
        assert penalties.echo(completion=own, challenge=challenge, **kw) == 0.0


def test_echo_lets_one_quoted_sentence_answer():
    """A reader who asks about a passage accepts its sentence that holds the answer (a
    bare quote keeps ``1 - QUOTE_COST`` of its reward, not 0); handing back the question,
    or more of the passage, is still an echo."""
    passage = (
        "The source character set is defined by the encoding declaration; it is UTF-8 if "
        "no encoding declaration is given in the source file. Lines are joined by a "
        "backslash. Comments start with a hash character and end at the line's end."
    )
    question = "What is the source character set defined by, when no declaration is given?"
    challenge = (
        f"Answer the question using the passage.\n\nPassage:\n{passage}\n\nQuestion: {question}"
    )
    quote = passage.split("; it is")[0] + "; it is UTF-8 if no encoding declaration is given."
    restated = f"The answer to {question} is this."
    two = " ".join(passage.split(". ")[:2])
    # the quote alone answers, at a cost; with a sentence of its own around it, none
    alone = penalties.echo(completion=quote, challenge=challenge, passage=passage)
    assert alone == pytest.approx(penalties.QUOTE_COST)
    explained = (
        f"{quote} So a file without a declaration is read as UTF-8 by the interpreter, "
        "which is why most modern scripts never need to state their encoding at all."
    )
    assert penalties.echo(completion=explained, challenge=challenge, passage=passage) == 0.0
    assert penalties.echo(completion=quote, challenge=challenge) == 1.0  # passage unknown
    assert penalties.echo(completion=restated, challenge=challenge, passage=passage) > 0.5
    assert penalties.echo(completion=two, challenge=challenge, passage=passage) == 1.0


def test_degenerate_text():
    prose = "A tuple is an immutable sequence, so it can be used as a dictionary key."
    word_list = "tuple tuples immutable sequence values parentheses items types comma separated"
    loop = "no, no, no, no, no, no, no, no, no, no, no, no"
    assert penalties.degenerate(completion=prose) == 0.0
    assert penalties.degenerate(completion=word_list) == 1.0
    assert penalties.degenerate(completion=loop) == 1.0
    assert penalties.degenerate(completion="immutable sequence") == 0.0  # a short answer
    # the same words in no order: on topic for an embedding, not prose
    passage = (
        "A tuple is an immutable sequence of values. It is written with parentheses and "
        "its items are separated by a comma. Because it cannot change, a tuple can be used "
        "as the key of a dictionary, which is not true of a list."
    )
    shuffled = adversarial.shuffle(f"Summarize the passage.\n\nPassage:\n{passage}")
    assert sorted(shuffled.split()) == sorted(passage.split())
    assert penalties.degenerate(completion=passage) == 0.0
    assert penalties.degenerate(completion=shuffled) > 0.5
    # code is not prose: an answer that shows some is judged on its sentences
    with_code = (
        "Use `dict.get` with a default, as in ```python\nvalue = d.get(key, 0)\n``` so "
        "that a missing key gives the default instead of an error."
    )
    assert penalties.degenerate(completion=with_code) == 0.0


def test_duplicates_penalize_the_later_copy_only():
    honest = "A tuple is immutable, so it can serve as a dictionary key while a list cannot."
    copy = "a tuple is immutable, so it can serve as dictionary key while a list cannot."
    other = "Lists change in place; tuples never do, which is why only tuples can be keys."
    out = duplicate_penalties([copy, honest, other, ""], [2.5, 2.0, 2.1, 0.1])
    assert out.tolist() == [DUPLICATE_PENALTY, 0.0, 0.0, 0.0]
    # two right answers that are short agree by being right, not by copying
    assert duplicate_penalties(["March 3, 2027", "March 3, 2027"], [1, 2]).tolist() == [0, 0]
    # identical long text: the first to arrive keeps its reward
    assert duplicate_penalties([honest, honest], [3.0, 1.0]).tolist() == [DUPLICATE_PENALTY, 0.0]


class FixedEmbedder:
    """Hand-made vectors: exercise the stack's arithmetic without a model."""

    def __init__(self, vectors):
        self.vectors = np.asarray(vectors, dtype=np.float32)

    def encode(self, texts):
        return self.vectors[: len(texts)]


def test_stack_weighting_on_hand_made_vectors():
    challenge = Challenge(
        task="qa",
        source_id="s",
        seed=1,
        messages=[{"role": "user", "content": "question words here"}],
        reference="alpha beta gamma delta",
        rewards={"rouge": 0.5, "relevance": 0.5},
        penalties=("empty", "refusal"),
    )
    # reference, the challenge's own words (orthogonal: no baseline), three completions
    vectors = [[1, 0], [0, 1], [1, 0], [0.6, 0.8], [0, 1]]
    stack = RewardStack(lambda: FixedEmbedder(vectors))
    result = stack.score(
        challenge, ["alpha beta gamma delta", "alpha beta", "I'm sorry, I cannot help"]
    )
    # rouge: 1, 2*(1*0.5)/(1.5)=2/3, 0 ; relevance: 1, 0.6, 0 ; refusal zeroes the third
    assert result.components["rouge"] == pytest.approx([1.0, 2 / 3, 0.0])
    assert result.components["relevance"] == pytest.approx([1.0, 0.6, 0.0])
    assert result.totals.tolist() == pytest.approx([1.0, 0.5 * 2 / 3 + 0.5 * 0.6, 0.0])
    assert set(result.timings) >= {"embed", "reward/rouge", "reward/relevance", "penalty/refusal"}
    assert all(0 <= t <= 1 for t in result.totals)
    # the question alone reaches cosine 0.6: half of it is the baseline, 0.3
    vectors[1] = [0.6, 0.8]
    result = RewardStack(lambda: FixedEmbedder(vectors)).score(challenge, ["a", "b", "c"])
    assert result.components["relevance"] == pytest.approx([1.0, (0.6 - 0.3) / 0.7, 0.0])


def test_replayed_challenges_are_identical():
    sampler = TaskSampler(dict.fromkeys(TASKS, 1.0), seed=3)
    for _ in range(18):
        task, seed = sampler.sample()
        (challenge,) = build_challenges([task.draft(seed)], None, None)
        assert replay(challenge) == challenge
    weights = {"qa": 1, "summarization": 1, "math": 1, "debugging": 1}
    a, b = TaskSampler(weights, seed=9), TaskSampler(weights, seed=9)
    assert [(t.name, s) for t, s in (a.sample() for _ in range(8))] == [
        (t.name, s) for t, s in (b.sample() for _ in range(8))
    ]


def test_llm_text_is_used_when_it_passes_the_gates(tiny_llm):
    qa = TASKS["qa"](use_llm=True)
    draft = qa.draft(5)  # the passage on del
    question = "What does deletion of a name remove?"
    answer = "It removes the binding of that name from the local or global namespace."
    qa.receive(draft, f"Sure! Here you go:\n**Question:** {question}")
    qa.receive(draft, f"Answer: {answer}")
    c = qa.finish(draft)
    assert c.meta["kind"] == "llm" and c.reference == answer
    assert c.meta["llm_request"] == question and question in c.prompt_text
    assert replay(c) == c
    noise = build_challenges([qa.draft(5)], tiny_llm, None)[0]
    assert noise.meta["kind"] == "cloze" and noise.meta["outcome"] == "fallback"


def test_stack_time_for_64_completions(embedder):
    """Correctness of a full-size call; the time is reported by the benchmark script."""
    task = TASKS["summarization"]()
    challenge = task.finish(task.draft(0))
    rng = random.Random(0)
    words = challenge.context.split()
    completions = [" ".join(rng.sample(words, 30)) for _ in range(64)]
    start = time.perf_counter()
    result = RewardStack(lambda: embedder).score(challenge, completions)
    assert len(result.totals) == 64 and time.perf_counter() - start < 30


def test_echo_sees_through_light_edits():
    """A copy of the passage with its articles dropped and common words swapped, or with
    a filler every few words, is still the passage handed back; an own summary is not."""
    passage = (
        "A tuple is an immutable sequence. Tuples are written as comma-separated values, "
        "usually inside parentheses, and can hold items of different types. Because a "
        "tuple cannot change, it can be used as a dictionary key, while a list cannot."
    )
    challenge = f"Summarize this passage.\n\nPassage:\n{passage}"
    own = (
        "Tuples are immutable sequences of comma-separated values that may mix types; "
        "because they cannot change they can be dictionary keys, unlike lists."
    )
    for cheap in (adversarial.reworded, adversarial.interleaved):
        answer = cheap(challenge)
        assert (
            copied_mask(words(answer), words(passage), 6).count(True) < len(words(answer)) / 2
        )  # the verbatim runs alone would let it pass
        assert penalties.echo(completion=answer, challenge=challenge, passage=passage) > 0.7
    assert penalties.echo(completion=own, challenge=challenge, passage=passage) == 0.0


# A passage of three sentences and the summary request that shows it (the extract and
# patchwork tests).
TUPLES = (
    "A tuple is an immutable sequence of values that Python keeps in order. Tuples are "
    "written as comma-separated values, usually inside parentheses, and they can hold "
    "items of different types. Because a tuple cannot change after it is made, it can be "
    "used as a dictionary key, while a list cannot serve as one."
)
TUPLES_SUMMARY = f"Summarize this passage.\n\nPassage:\n{TUPLES}"


def test_echo_sees_an_extract_with_stretches_left_out():
    """The passage in its order with words left out (five kept, three skipped; each
    sentence's opening), under every run and edit gap, is the passage handed back; one
    sentence with a few words left out is still a quote, which keeps part of its reward."""
    passage, challenge = TUPLES, TUPLES_SUMMARY
    for cheap in (adversarial.skipping, adversarial.chunked):
        answer = cheap(challenge)
        w, source = words(answer), words(passage)
        runs, edits = copied_mask(w, source, 6), edited_copy(w, source, 6, 2)[0]
        assert sum(r or e for r, e in zip(runs, edits)) < len(w) / 2  # they alone would pass
        echo = penalties.echo(completion=answer, challenge=challenge, passage=passage)
        # all of it the passage's: handed back (three sentences' openings, each a fifth
        # to a third of its sentence, count as a quote at least)
        assert (echo == 1.0) if cheap is adversarial.skipping else (echo >= penalties.QUOTE_COST)
    quote = "Because a tuple cannot change, it can be used as a dictionary key."
    assert penalties.echo(completion=quote, challenge=challenge, passage=passage) == pytest.approx(
        penalties.QUOTE_COST
    )


def test_echo_sees_a_patchwork():
    """The extract's pieces put last first with a linking word before each ("Moreover,
    ...") escape the in-order alignment; most of their words still sit in short runs of
    the passage, so they are the passage handed back. An own summary that reuses its
    terms in a few short phrases is not."""
    passage, challenge = TUPLES, TUPLES_SUMMARY
    source = words(passage)
    for cheap in (adversarial.patchwork, adversarial.patchwork_skipping):
        answer = cheap(challenge)
        w = words(answer)
        aligned = sum(i2 - i1 for i1, i2, _, _ in aligned_blocks(w, source))
        assert aligned < penalties.EXTRACT_SHARE * len(w)  # not an extract
        assert sum(copied_mask(w, source, penalties.PATCH_RUN)) >= 0.75 * len(w)
        echo = penalties.echo(completion=answer, challenge=challenge, passage=passage)
        assert echo >= 0.5, cheap.__name__
    own = (
        "Tuples are ordered, immutable sequences written as comma-separated values; they "
        "can hold items of different types and, unlike lists, serve as dictionary keys."
    )
    assert penalties.echo(completion=own, challenge=challenge, passage=passage) == 0.0


def test_copied_mask_marks_runs_in_any_order_from_either_side():
    candidate = "x c d e y a b c z".split()
    source = "a b c d e f".split()
    cand = copied_mask(candidate, source, 3)
    assert cand == [False, True, True, True, False, True, True, True, False]
    assert copied_mask(source, candidate, 3) == [True, True, True, True, True, False]
    assert copied_mask(["a", "b"], source, 3) == [False, False]
    assert copied_mask(source, ["a", "b"], 3) == [False] * 6
