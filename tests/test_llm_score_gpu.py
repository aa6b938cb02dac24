"""``LLM.score`` on a GPU: vLLM's prompt log-probabilities against the hf backend.

Skipped without a CUDA GPU or without vllm (CI, the CPU default). On the GPU machine:

    PYTHONPATH=/tmp/site:. python -m pytest -q tests/test_llm_score_gpu.py

The two backends score the same token ids (``score_pairs``); hf in fp32 is the
reference, vLLM runs fp16 (its default), so the numbers agree to fp16's precision, not
bit for bit. MEAN_TOLERANCE is a first bound, not yet a measured one: no GPU run has
been made (``scripts/benchmark_score.py --backends vllm --inputs_from
benchmarks/results/2026-12-07-cpu-score-smollm2.json`` on the GPU, then ``--compare_with``
its JSON here, gives the figure).
"""

from __future__ import annotations

import pytest

from tests.helpers import gpu_and_vllm_marks
from tests.test_llm_score import ANSWERS, CHALLENGE

pytestmark = gpu_and_vllm_marks()

# fp16 against fp32 on SmolLM2: a mean log-probability per answer within this many nats.
MEAN_TOLERANCE = 0.05


@pytest.fixture(scope="module")
def backends(tmp_path_factory):
    from prompting.llms.hf import HFLLM
    from prompting.llms.vllm import VLLM

    state = str(tmp_path_factory.mktemp("state"))
    hf = HFLLM("smollm2", device="cuda", dtype="float32", state_dir=state)
    vllm = VLLM("smollm2", budget_gb=8.0, enforce_eager=True, state_dir=state)
    yield hf, vllm
    vllm.close()
    hf.close()


def test_vllm_scores_as_hf_does(backends):
    hf, vllm = backends
    # The same long answer twice: the second reads its opening from vLLM's prefix cache
    # too, and must be scored again without it (the stale path), to the same numbers.
    answers = ANSWERS + [ANSWERS[4]]
    prompts = [CHALLENGE] * len(answers)
    want = hf.score(prompts, answers)
    for reuse in (True, False):
        vllm.reuse_prompt_cache = reuse
        got = vllm.score(prompts, answers)
        assert [s.tokens for s in got] == [s.tokens for s in want]
        for g, w in zip(got, want):
            if w.tokens:
                assert abs(g.mean - w.mean) < MEAN_TOLERANCE, (reuse, g.mean, w.mean)
        assert got[-1].logprobs == pytest.approx(got[4].logprobs, abs=2e-2)
    assert vllm.score([CHALLENGE], [""])[0].tokens == 0
    vllm.reuse_prompt_cache = True
