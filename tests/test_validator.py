import json

import pytest

from prompting.validator import scoring
from prompting.validator import state as state_io
from prompting.validator.state import StateError, ValidatorState
from tests.helpers import run_validator, subnet_chain, validator_cmd


def test_moving_average_hand_computed():
    st = ValidatorState(scores=[0.0, 0.5, 1.0], hotkeys=["a", "b", "c"])
    scoring.update_scores(st, [1, 2], [1.0, 0.0], alpha=0.1)
    assert st.scores == pytest.approx([0.0, 0.55, 0.9])
    scoring.update_scores(st, [1], [1.0], alpha=0.1)
    assert st.scores[1] == pytest.approx(0.595)


def test_hotkey_change_resets_score_and_metagraph_growth():
    st = ValidatorState(scores=[0.3, 0.6], hotkeys=["a", "b"])
    assert scoring.sync_hotkeys(st, ["a", "B", "c"]) == [1]
    assert st.scores == [0.3, 0.0, 0.0] and st.hotkeys == ["a", "B", "c"]
    scoring.sync_hotkeys(st, ["a"])
    assert st.scores == [0.3]


def test_weights_are_normalized_and_skip_self():
    uids, weights = scoring.weights_from_scores([0.5, 0.2, 0.0, 0.3], exclude=[0])
    assert uids == [1, 3] and weights == pytest.approx([0.4, 0.6])
    assert scoring.weights_from_scores([0.0, 0.0]) == ([], [])


def test_state_save_load_and_fallback(tmp_path):
    path = str(tmp_path / "state.json")
    assert state_io.load(path) == ValidatorState()
    state_io.save(ValidatorState(step=3, scores=[0.1], hotkeys=["a"]), path)
    state_io.save(ValidatorState(step=4, scores=[0.2], hotkeys=["a"]), path)
    assert state_io.load(path).step == 4
    with open(path, "w") as f:
        f.write('{"step": 5, "sco')  # truncated by a crash of something else
    restored = state_io.load(path)
    assert restored.step == 3  # .bak holds the state before the last save
    with open(path + ".bak", "w") as f:
        f.write("garbage")
    with pytest.raises(StateError, match="Move the files away"):
        state_io.load(path)


@pytest.mark.slow
def test_local_subnet_end_to_end_and_resume(tmp_path):
    """The whole local subnet: 5 miners as subprocesses, real signatures, real scoring
    (the random-weight model: this test is about the plumbing, not the text)."""
    state_dir = tmp_path / "state"
    proc = run_validator(
        validator_cmd(
            state_dir,
            *("--neuron.model_id", "tiny", "--neuron.max_steps", "8"),
            *("--local.miners", "5", "--local.strategies", "retrieval,random,echo,empty,slow"),
            *("--neuron.timeout", "3", "--neuron.epoch_length", "4"),
            *("--neuron.task_weights", "qa=0.5,summarization=0.3,debugging=0.2"),
            # one step at a time: 2 cores also run the five miners
            *("--neuron.forwards", "fixed"),
        ),
        420,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = [json.loads(line) for line in open(state_dir / "events.jsonl")]
    assert [e["step"] for e in events] == list(range(1, 9))
    assert {"qa", "summarization"} <= {e["task"] for e in events}
    for e in events:
        assert len(e["uids"]) == 5 and "timings/query" in e and "timings/reward" in e
        assert e["timings/query"] < 5.0  # the slow miner cannot stall a step
    by_label, uid_of = {}, {}
    for line in proc.stdout.split("final scoreboard")[1].splitlines()[1:]:
        uid, label, hotkey, score = line.split()
        by_label[label], uid_of[label] = float(score), int(uid)
    # Nobody here writes an answer (the model is noise), so nobody may score much: the
    # retrieval miner's sentences are the passage's own (echo), random's are word salad.
    assert max(by_label.values()) < 0.05, by_label
    assert by_label["echo"] == 0.0
    assert by_label["empty"] == 0.0 and by_label["slow"] == 0.0
    slow_statuses = {
        s for e in events for s, u in zip(e["statuses"], e["uids"]) if u == uid_of["slow"]
    }
    assert slow_statuses == {"timeout"}
    chain = json.load(open(state_dir / "local_chain.json"))
    assert len(next(iter(chain["weights"].values()))) == 2  # steps 4 and 8
    saved = json.load(open(state_dir / "state.json"))
    assert saved["step"] == 8 and saved["last_weights_step"] == 8

    proc = run_validator(
        validator_cmd(
            state_dir,
            *("--neuron.model_id", "tiny", "--neuron.max_steps", "10"),
            *("--local.miners", "2", "--neuron.timeout", "3"),
        ),
        420,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resumes at step 8" in proc.stderr
    events = [json.loads(line) for line in open(state_dir / "events.jsonl")]
    assert [e["step"] for e in events][-2:] == [9, 10]


@pytest.mark.slow
def test_default_run_has_the_real_model_write_challenges_and_a_model_miner(tmp_path):
    """The defaults: SmolLM2 writes every qa challenge through the gates, a model miner
    answers with it too, and each event says how the gates fared."""
    state_dir = tmp_path / "state"
    proc = run_validator(
        validator_cmd(
            state_dir,
            *("--neuron.max_steps", "3", "--neuron.task_weights", "qa=1"),
            *("--local.miners", "2", "--local.strategies", "retrieval,model"),
            *("--neuron.timeout", "30"),
        ),
        420,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "no LLM is loaded" not in proc.stderr
    events = [json.loads(line) for line in open(state_dir / "events.jsonl")]
    assert len(events) == 3
    for e in events:
        assert e["gate/outcome"] in ("first_try", "regenerated", "fallback")
        assert e["llm_outputs"], "the real model wrote nothing"
        rejected = sum(v for k, v in e.items() if k.startswith("gate/rejected/qa/"))
        accepted = len(e["llm_outputs"]) - rejected  # qa: a question, then its answer
        assert accepted == 2 if e["gate/outcome"] != "fallback" else accepted < 2
    model_uid = 2  # uid 0 is the validator, then the miners in --local.strategies order
    answers = [c for e in events for u, c in zip(e["uids"], e["completions"]) if u == model_uid]
    assert any(a.strip() for a in answers), "the model miner answered nothing"
    # it shares this GPU-less machine's cores with the validator's model: one step at a time
    assert "one step in flight: the local model miner" in proc.stderr
    assert max(e["forwards/in_flight"] for e in events) == 1


def test_concurrent_forwards_batch_generation_and_commit_in_order(tmp_path, wallets, embedder):
    """4 steps in flight against miners of random latency: one batched generation for
    the steps waiting together, a failed generation skips only its steps, events and
    scores come out in step order exactly as a sequential replay of the results."""
    import asyncio
    import io
    import random
    import threading
    import time

    from prompting.config import default_config
    from prompting.llms.base import LLMError
    from prompting.network.auth import Authorizer, CallerPolicy
    from prompting.rewards.stack import RewardStack
    from prompting.telemetry import Telemetry
    from prompting.validator.loop import Validator
    from tests.test_network import ServerThread
    from tests.test_tasks import RULES, ScriptedLLM

    class FlakyLLM(ScriptedLLM):
        def generate(self, prompts, sampling=None):
            if len(self.batches) == 2:  # the third batch fails
                self.batches.append([])
                raise LLMError("out of GPU memory generating a batch")
            return super().generate(prompts, sampling)

    llm = FlakyLLM(RULES)
    v = wallets["validator"]
    rng, lock = random.Random(0), threading.Lock()

    def answer(req):
        with lock:
            delay = rng.uniform(0.0, 0.4)
        time.sleep(delay)
        words = req.messages[-1].content.split()
        third = len(words) // 3  # runs of 5 words: quoted, not copied (echo counts 6+)
        return (
            f"In short, {' '.join(words[third : third + 5])}, as the text says, and then "
            f"{' '.join(words[2 * third : 2 * third + 5])}, which follows from it."
        )

    miners = [wallets["miner"], wallets["miner2"], wallets["outsider"]]
    servers = [
        ServerThread(
            answer,
            m,
            Authorizer(CallerPolicy(0, frozenset({v.hotkey.ss58_address})), None),
            rate_limit=1000,
        )
        for m in miners
    ]
    try:
        chain = subnet_chain(tmp_path, v, [(m, s.port) for m, s in zip(miners, servers)])
        config = default_config(
            neuron__full_path=str(tmp_path),
            neuron__model_id="scripted",
            neuron__forwards="fixed",
            neuron__num_concurrent_forwards=4,
            neuron__miner_query_rate=1000.0,
            neuron__max_steps=12,
            neuron__sample_size=3,
            neuron__timeout=3.0,
            neuron__seed=0,
            neuron__epoch_length=5,
            neuron__task_weights={"qa": 1, "generic_instruction": 1, "summarization": 1},
        )
        telemetry = Telemetry(str(tmp_path), stream=io.StringIO())
        validator = Validator(config, v, chain, llm, RewardStack(lambda: embedder), telemetry)
        asyncio.run(validator.run())
    finally:
        for server in servers:
            server.stop()

    events = [json.loads(line) for line in open(tmp_path / "events.jsonl")]
    assert validator.state.step == 12 and [e["step"] for e in events] == list(range(1, 13))
    assert max(e["forwards/in_flight"] for e in events) == 4
    assert max(len(b) for b in llm.batches) >= 3  # steps in flight generated together
    assert [] in llm.batches  # the failed batch: its steps were skipped, the rest went on
    assert max(validator.batcher.batch_sizes) >= 3
    assert max(e["generate/batch_size"] for e in events) >= 3
    # a sequential replay of the logged rewards gives exactly the validator's scores
    replayed = [0.0] * len(validator.state.scores)
    for e in events:
        for uid, reward in zip(e["uids"], e["rewards"]):
            replayed[uid] = 0.1 * reward + 0.9 * replayed[uid]
    assert replayed == pytest.approx(validator.state.scores, abs=1e-12)
    assert any(s > 0 for s in validator.state.scores)
    assert json.load(open(tmp_path / "state.json"))["step"] == 12
