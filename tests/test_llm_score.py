"""``LLM.score``: teacher-forced log-probabilities of given answers after a prompt.

The batched paths (hf: one prompt pass per distinct prompt, its cache repeated over a
right-padded batch of answers; openai: /tokenize + /completions with echo) are checked
against the plainest computation there is: one unbatched forward over prompt + answer,
log-softmax, the answer's positions. On the tiny random model and on the real SmolLM2.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest

from prompting.llms import LLM, Scored
from prompting.llms.base import LLMError, fit_pair, score_pairs

CHALLENGE = [
    {"role": "system", "content": "You answer questions about a passage."},
    {
        "role": "user",
        "content": "Passage: Python lists are mutable sequences, typically used to store "
        "collections of homogeneous items. Question: what are lists used for?",
    },
]
ANSWERS = [
    "Lists store collections of homogeneous items.",
    "They are mutable sequences.",
    "",
    "items homogeneous of store collections Lists typically",
    "A list is a mutable sequence, used to store collections of items of one kind, "
    "and it can grow or shrink as items are added or removed.",
]


def reference(llm, prompt_ids: list[int], cont_ids: list[int]) -> list[float]:
    """One plain forward over prompt + continuation, no cache, no batch, no padding."""
    import torch

    with torch.inference_mode():
        ids = torch.tensor([prompt_ids + cont_ids], device=llm.device)
        logprobs = llm.model(ids).logits[0].float().log_softmax(-1)
    start = len(prompt_ids) - 1
    return [logprobs[start + k, token].item() for k, token in enumerate(cont_ids)]


def assert_matches_reference(llm, prompts, answers, scored, max_tokens=None, tol=1e-3):
    pairs = score_pairs(llm.tokenizer, prompts, answers, max_tokens, llm.context)
    assert len(scored) == len(pairs)
    for (prompt_ids, cont_ids), got in zip(pairs, scored):
        assert got.tokens == len(cont_ids)
        want = reference(llm, prompt_ids, cont_ids)
        assert got.logprobs == pytest.approx(want, abs=tol)


def test_scored_mean_and_tokens():
    assert Scored([-1.0, -2.0, -4.5]).tokens == 3
    assert Scored([-1.0, -2.0, -4.5]).mean == pytest.approx(-2.5)
    empty = Scored([])
    assert empty.tokens == 0 and math.isnan(empty.mean)


def test_a_backend_without_scoring_says_so():
    class Writer(LLM):
        """A backend that only writes (as a plug-in written before score existed)."""

        name = "writer"

        def generate(self, prompts: Sequence, sampling=None):
            return []

        @property
        def tokenizer(self):
            return None

        @property
        def stats(self):
            return None

    with pytest.raises(LLMError, match="backend writer cannot score text"):
        Writer().score(["q"], ["a"])


def test_fit_pair_cuts_the_prompt_from_the_left():
    assert fit_pair([1, 2, 3, 4], [5, 6, 7], max_tokens=2) == ([1, 2, 3, 4], [5, 6])
    assert fit_pair([1, 2, 3, 4], [5, 6, 7], context=5) == ([3, 4], [5, 6, 7])
    # a continuation as long as the context keeps one prompt token to be predicted from
    assert fit_pair([1, 2], [5, 6, 7, 8], context=3) == ([2], [5, 6])


def test_hf_batched_scores_equal_unbatched_forwards(tiny_llm):
    """Repeated prompt objects, equal prompts as distinct objects, a plain string, an
    empty answer: one call, in order, each as a plain forward gives it."""
    again = [dict(m) for m in CHALLENGE]  # equal, not the same object
    prompts = [CHALLENGE] * 4 + [again, "Explain tuples.", CHALLENGE]
    answers = ANSWERS[:4] + [ANSWERS[0], "Tuples are immutable.", ANSWERS[4]]
    scored = tiny_llm.score(prompts, answers)
    assert scored[2] == Scored([])
    assert_matches_reference(tiny_llm, prompts, answers, scored)
    assert scored[0].logprobs == pytest.approx(scored[4].logprobs, abs=1e-5)
    # max_tokens cuts each answer; the kept tokens score as before
    cut = tiny_llm.score(prompts, answers, max_tokens=3)
    assert [s.tokens for s in cut] == [min(3, s.tokens) for s in scored]
    assert cut[6].logprobs == pytest.approx(scored[6].logprobs[:3], abs=1e-5)
    assert tiny_llm.score([], []) == []
    with pytest.raises(LLMError, match="one continuation per prompt"):
        tiny_llm.score([CHALLENGE], ["a", "b"])


def test_hf_chunks_give_the_same_numbers(tiny_llm, monkeypatch):
    """Answers split over several forwards (the logits bound) score as in one."""
    import prompting.llms.hf as hf

    prompts = [CHALLENGE] * len(ANSWERS)
    whole = tiny_llm.score(prompts, ANSWERS)
    monkeypatch.setattr(hf, "SCORE_LOGITS_BYTES", 1)  # one answer per forward
    assert [s.logprobs for s in tiny_llm.score(prompts, ANSWERS)] == [
        pytest.approx(s.logprobs, abs=1e-5) for s in whole
    ]


def test_hf_long_prompt_is_cut_from_the_left(tiny_llm):
    """A prompt past the model's context (2048 tokens for the tiny model) loses its
    opening; the answer is scored whole after the prompt's last tokens."""
    passage = " ".join(f"word{i}" for i in range(3000))
    prompt = [{"role": "user", "content": passage + " Summarize."}]
    answer = ANSWERS[4]
    (scored,) = tiny_llm.score([prompt], [answer])
    (pair,) = score_pairs(tiny_llm.tokenizer, [prompt], [answer], context=tiny_llm.context)
    assert len(pair[0]) + len(pair[1]) == tiny_llm.context
    assert scored.tokens == len(tiny_llm.tokenizer(answer, add_special_tokens=False).input_ids)
    assert scored.logprobs == pytest.approx(reference(tiny_llm, *pair), abs=1e-3)


def test_hf_smollm2_scores_equal_unbatched_forwards_and_read_the_text(smollm2):
    prompts = [CHALLENGE] * len(ANSWERS)
    scored = smollm2.score(prompts, ANSWERS)
    assert_matches_reference(smollm2, prompts, ANSWERS, scored)
    fluent, salad = scored[0].mean, scored[3].mean
    # the real model reads: the passage's own sentence is far likelier than its words
    # shuffled (about -1 against -6 nats per token)
    assert fluent > salad + 2.0, (fluent, salad)


def test_openai_scores_through_echo_logprobs(tiny_llm):
    """Against a local server that answers as vllm serve does, with the tiny model's
    own numbers: the same Scored as the hf backend gives."""
    from prompting.llms.openai import SCORE_TOP_K, OpenAILLM
    from tests.test_llms import ChatServer

    server = ChatServer(scorer=tiny_llm)
    llm = OpenAILLM("tiny", server.url, timeout=30, retries=0)
    try:
        prompts = [CHALLENGE] * len(ANSWERS) + ["Explain tuples."]
        answers = ANSWERS + ["Tuples are immutable."]
        remote = llm.score(prompts, answers, max_tokens=12)
        local = tiny_llm.score(prompts, answers, max_tokens=12)
        assert [s.tokens for s in remote] == [s.tokens for s in local]
        for r, h in zip(remote, local):
            assert r.logprobs == pytest.approx(h.logprobs, abs=1e-4)
        completions = [body for path, _, body in server.calls if path == "/v1/completions"]
        assert len(completions) == 5  # the empty answer asks nothing
        assert all(b["echo"] and b["logprobs"] == SCORE_TOP_K for b in completions)
        # the entropies come from the top-k the server sends: one per token, positive
        assert all(r.entropies and len(r.entropies) == r.tokens for r in remote if r.tokens)
        assert all(min(r.entropies) > 0 for r in remote if r.tokens)
    finally:
        llm.close()
        server.close()


@pytest.mark.parametrize(
    ("lacks", "message"),
    [
        ({"prompt_logprobs": False}, "returned no log-probabilities for the prompt"),
        ({"tokenize": False}, "has no tokenizer endpoint"),
    ],
)
def test_openai_server_that_cannot_score_is_named(tiny_llm, lacks, message):
    from prompting.llms.openai import OpenAILLM
    from tests.test_llms import ChatServer

    server = ChatServer(scorer=tiny_llm, **lacks)
    llm = OpenAILLM("tiny", server.url, timeout=30, retries=0)
    try:
        with pytest.raises(LLMError, match=message) as err:
            llm.score([CHALLENGE], [ANSWERS[0]])
        assert "127.0.0.1" in str(err.value)
    finally:
        llm.close()
        server.close()


def test_entropies_are_exact_from_hf_and_close_from_the_top_k(smollm2):
    """hf gives the entropy of the whole next-token distribution; a server's top-k with
    the rest spread evenly is close where the model is sure (most of the mass is in it),
    and exact when k covers the vocabulary."""
    import torch

    from prompting.llms.base import entropy_from_top, score_pairs

    (scored,) = smollm2.score([CHALLENGE], [ANSWERS[0]])
    ((prompt_ids, cont_ids),) = score_pairs(smollm2.tokenizer, [CHALLENGE], [ANSWERS[0]])
    with torch.inference_mode():
        ids = torch.tensor([prompt_ids + cont_ids])
        rows = smollm2.model(ids).logits[0, len(prompt_ids) - 1 : -1].float().log_softmax(-1)
    exact = (-(rows.exp() * rows).sum(-1)).tolist()
    assert scored.entropies == pytest.approx(exact, abs=1e-3)
    vocab = rows.shape[-1]
    assert entropy_from_top(rows[0].tolist(), vocab) == pytest.approx(exact[0], abs=1e-3)
    approx = [entropy_from_top(r.topk(20).values.tolist(), vocab) for r in rows]
    sure = [i for i, h in enumerate(exact) if h < 1.0]
    assert sure and all(abs(approx[i] - exact[i]) < 0.5 for i in sure)
