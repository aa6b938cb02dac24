"""Steps in flight that follow the load, the per-miner query-rate bound, and miners that
think: deterministic (fake clocks, seeded draws) and fast."""

import asyncio
import random
import statistics

import pytest

from prompting.chain.base import Neuron
from prompting.miner import latency
from prompting.validator import sampling
from prompting.validator.concurrency import Concurrency, Load


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def neurons(n: int) -> list[Neuron]:
    return [Neuron(i, f"h{i}", f"c{i}", 1.0, f"1.2.3.{i}:1", False) for i in range(n)]


def test_rate_bound_spaces_each_miners_queries():
    """A uid is queried again only 1/rate s later; with N miners and samples of k, the
    wait for a full sample is what the subnet's size allows, not a global floor."""
    clock = Clock()
    bound = sampling.RateBound(4.0, clock)
    assert bound.wait(range(8), 4) == 0.0
    bound.record([0, 1, 2, 3])
    assert bound.busy() == {0, 1, 2, 3}
    assert bound.wait(range(8), 4) == 0.0  # four others are free: a second step may start
    bound.record([4, 5, 6, 7])
    slack = sampling.TIMER_SLACK_S
    assert bound.wait(range(8), 4) == pytest.approx(0.25 + slack)
    assert bound.wait(range(8), 0) == 0.0
    clock.now = 0.1
    assert bound.wait(range(8), 1) == pytest.approx(0.15 + slack)
    clock.now = 0.25
    assert bound.busy() == set() and bound.wait(range(8), 8) == 0.0


def test_a_timer_that_fires_early_still_finds_its_sample_ready():
    """uvloop's timers keep whole milliseconds and may fire up to one early: a step that
    slept the wait must find its k miners free, or it is skipped after its challenge
    was generated (every miner of a sample shares one due time)."""
    clock = Clock()
    bound = sampling.RateBound(4.0, clock)
    for group in range(4):  # 64 miners in four samples of 16, as a GPU run takes them
        clock.now = group / 16
        bound.record(range(16 * group, 16 * group + 16))
    wait = bound.wait(range(64), 16)
    clock.now += wait - 0.001  # the timer fires a millisecond before it is due
    free = set(range(64)) - bound.busy()
    assert len(free) == 16


def test_rate_bound_sets_the_step_rate_from_the_subnets_size():
    """Steps that take miners as soon as the bound allows: 64 miners, samples of 16 at
    4 queries/s each give 16 steps/s; 16 miners give 4. No miner ever gets more than 4
    queries in any second."""

    def run(n_miners: int, seconds: float = 10.0) -> tuple[float, int]:
        clock, rng = Clock(), random.Random(0)
        bound = sampling.RateBound(4.0, clock)
        pool, starts = neurons(n_miners), {i: [] for i in range(n_miners)}
        steps = 0
        while clock.now < seconds:
            clock.now += bound.wait([m.uid for m in pool], 16)
            chosen = sampling.select(pool, 16, rng, "me", 1e9, cooling=bound.busy())
            bound.record(m.uid for m in chosen)
            for m in chosen:
                starts[m.uid].append(clock.now)
            steps += 1
        most = max(
            sum(1 for t in times if s <= t < s + 1.0) for times in starts.values() for s in times
        )
        return steps / seconds, most

    rate64, most64 = run(64)
    rate16, most16 = run(16)
    assert rate64 == pytest.approx(16.0, rel=0.05) and rate16 == pytest.approx(4.0, rel=0.05)
    assert most64 <= 4 and most16 <= 4


def test_adaptive_concurrency_follows_generation_room_and_the_rate_bound():
    """A step starts while fewer than one batch of drafts wait for the model and fewer
    than one batch of challenges wait for miners; steps waiting on miners' answers take
    no room, so many can be in flight. Fixed keeps its number whatever the load."""
    adaptive = Concurrency("adaptive", fixed=8, room=128, ceiling=512)
    assert adaptive.may_start(Load(in_flight=300, waiting_generation=10, waiting_miners=0))
    assert not adaptive.may_start(Load(300, waiting_generation=128, waiting_miners=0))  # GPU
    assert not adaptive.may_start(Load(300, waiting_generation=0, waiting_miners=128))  # miners
    assert not adaptive.may_start(Load(512, 0, 0))  # ceiling
    fixed = Concurrency("fixed", fixed=8, room=128, ceiling=512)
    assert fixed.may_start(Load(7, 500, 500)) and not fixed.may_start(Load(8, 0, 0))


def test_concurrency_takes_the_backends_batch_size():
    from prompting.config import default_config

    config = default_config(neuron__num_concurrent_forwards=3)
    assert Concurrency.from_config(config, 128).room == 128  # vLLM's max_num_seqs
    assert Concurrency.from_config(config, None).room == 3  # hf, openai: the flag
    assert Concurrency.from_config(config, None).mode == "adaptive"


def test_latency_presets_and_refusals():
    assert latency.parse("realistic") == latency.Latency(3.0, 0.6, 0.03)
    assert latency.parse("median=2,timeouts=0.5") == latency.Latency(2.0, 0.6, 0.5)
    for bad in ("fast", "median=x", "median=-1", "timeouts=2", "median"):
        with pytest.raises(ValueError, match="latency"):
            latency.parse(bad)


def test_realistic_latency_has_a_median_of_3_s_a_long_tail_and_timeouts():
    rng, spec = random.Random(0), latency.parse("realistic")
    waits = [spec.sample(rng, timeout=10.0) for _ in range(20000)]
    timed_out = sum(w > 10.0 for w in waits) / len(waits)
    answered = sorted(w for w in waits if w <= 10.0)
    assert statistics.median(answered) == pytest.approx(3.0, rel=0.05)
    assert answered[int(0.95 * len(answered))] > 2.3 * statistics.median(answered)  # the tail
    assert 0.045 < timed_out < 0.06  # 3% drawn, plus the tail past 10 s (2.2%)
    assert max(waits) == 10.0 + latency.PAST_TIMEOUT_S


def test_a_delayed_answer_waits_and_keeps_the_strategys_text():
    class Request:
        timeout = 10.0

    slept = []

    async def fake_sleep(seconds):
        slept.append(seconds)

    answer = latency.delayed(lambda r: "text", latency.Latency(2.0, 0.0, 0.0), seed=1)
    original, asyncio.sleep = asyncio.sleep, fake_sleep
    try:
        assert asyncio.run(answer(Request())) == "text"
    finally:
        asyncio.sleep = original
    assert slept == [pytest.approx(2.0)]


def test_local_miners_get_the_latency_and_room_for_the_rate_bound():
    from prompting.config import parse_config

    assert latency.local_miner_args(None, 4.0, 10.0) == []
    assert latency.local_miner_args("realistic", 4.0, 10.0) == [
        "--miner.latency",
        "realistic",
        "--miner.max_concurrency",
        "45",  # 4/s over 11 s, plus one
    ]
    config = parse_config("miner", ["--miner.latency", "median=1"])
    assert config.miner.latency == "median=1"
    with pytest.raises(SystemExit):
        parse_config("validator", ["--local.latency", "slowish"])


def test_the_loop_keeps_miners_under_their_rate_and_steps_overlap_while_they_think(
    tmp_path, wallets
):
    """The real loop against six miner servers that think 0.3 s (the latency wrapper):
    steps overlap while miners think (more than one in flight with no LLM to wait on),
    and no miner is queried twice within 1/rate seconds, although every step wants half
    the subnet."""
    import io
    import json

    import numpy as np

    from prompting.network.auth import Authorizer, CallerPolicy, load_or_create_wallet
    from prompting.rewards.stack import RewardResult
    from prompting.telemetry import Telemetry
    from prompting.validator.loop import Validator
    from tests.helpers import math_config, subnet_chain
    from tests.test_network import ServerThread

    class Ones:
        def score(self, challenge, completions, *rest):
            return RewardResult(totals=np.ones(len(completions)))

    v = wallets["validator"]
    miners = [load_or_create_wallet(f"m{i}", "default", str(tmp_path / "w")) for i in range(6)]
    think = latency.delayed(lambda r: "42", latency.Latency(0.3, 0.0, 0.0), seed=0)
    policy = Authorizer(CallerPolicy(0, frozenset({v.hotkey.ss58_address})), None)
    servers = [ServerThread(think, m, policy, rate_limit=1000) for m in miners]
    try:
        chain = subnet_chain(tmp_path, v, [(m, server.port) for m, server in zip(miners, servers)])
        config = math_config(
            tmp_path,
            neuron__max_steps=20,
            neuron__sample_size=3,
            neuron__miner_query_rate=5.0,
            neuron__timeout=3.0,
        )
        telemetry = Telemetry(str(tmp_path), stream=io.StringIO())
        validator = Validator(config, v, chain, None, Ones(), telemetry)
        asyncio.run(validator.run())
    finally:
        for server in servers:
            server.stop()
    events = [json.loads(line) for line in open(tmp_path / "events.jsonl")]
    assert [e["step"] for e in events] == list(range(1, 21))
    assert all(s == "ok" for e in events for s in e["statuses"])
    assert max(e["forwards/in_flight"] for e in events) >= 2
    starts: dict[int, list[float]] = {}
    for e in events:
        for uid in e["uids"]:
            starts.setdefault(uid, []).append(e["query/started"])
    gaps = [b - a for times in starts.values() for a, b in zip(sorted(times), sorted(times)[1:])]
    assert min(gaps) >= 0.2 - 0.01  # 1/rate, less the clock's and the loop's jitter


def test_a_shared_backend_scores_and_builds_beside_generation(tmp_path, wallets, embedder):
    """With a backend that takes calls from any thread (``share``, as vLLM's engine
    thread gives), rewards run on reward threads and several challenge builds at once,
    not one after another on the model thread; steps still commit in order and the
    scores are a sequential replay of the logged rewards."""
    import io
    import json
    import sys
    import threading
    import time

    from prompting.config import default_config
    from prompting.network.auth import Authorizer, CallerPolicy, load_or_create_wallet
    from prompting.rewards.stack import RewardStack
    from prompting.telemetry import Telemetry
    from prompting.validator.loop import Validator
    from tests.helpers import subnet_chain
    from tests.test_network import ServerThread
    from tests.test_tasks import RULES, ScriptedLLM

    class Shared(ScriptedLLM):
        """The scripted model behind a lock, taking calls from any thread, slow enough
        (50 ms a call) for builds to overlap."""

        def __init__(self, rules):
            super().__init__(rules)
            self.lock = threading.Lock()
            self.running = self.most = 0
            self.threads: set[str] = set()

        def share(self) -> bool:
            return True

        def generate(self, prompts, sampling=None):
            with self.lock:
                self.running += 1
                self.most = max(self.most, self.running)
                self.threads.add(threading.current_thread().name.split("_")[0])
            time.sleep(0.05)
            try:
                with self.lock:
                    return super().generate(prompts, sampling)
            finally:
                with self.lock:
                    self.running -= 1

    scorers: set[str] = set()

    class Stack(RewardStack):
        def score(self, *args, **kwargs):
            scorers.add(threading.current_thread().name.split("_")[0])
            return super().score(*args, **kwargs)

    v = wallets["validator"]
    miners = [load_or_create_wallet(f"s{i}", "default", str(tmp_path / "w")) for i in range(4)]
    policy = Authorizer(CallerPolicy(0, frozenset({v.hotkey.ss58_address})), None)

    def answer(req):
        words = req.messages[-1].content.split()
        return "In short, " + " ".join(words[len(words) // 3 : len(words) // 3 + 5]) + "."

    servers = [ServerThread(answer, m, policy, rate_limit=1000) for m in miners]
    llm = Shared(RULES)
    interval = sys.getswitchinterval()
    try:
        chain = subnet_chain(tmp_path, v, [(m, server.port) for m, server in zip(miners, servers)])
        config = default_config(
            neuron__full_path=str(tmp_path),
            neuron__model_id="scripted",
            neuron__max_steps=16,
            neuron__num_concurrent_forwards=8,  # the batch the scripted model names
            neuron__sample_size=2,
            neuron__miner_query_rate=1000.0,
            neuron__timeout=3.0,
            neuron__seed=0,
            neuron__task_weights={"qa": 1, "generic_instruction": 1, "summarization": 1},
        )
        telemetry = Telemetry(str(tmp_path), stream=io.StringIO())
        validator = Validator(config, v, chain, llm, Stack(lambda: embedder), telemetry)
        assert validator.shared and sys.getswitchinterval() < interval
        asyncio.run(validator.run())
    finally:
        for server in servers:
            server.stop()
    assert sys.getswitchinterval() == interval  # put back at close
    events = [json.loads(line) for line in open(tmp_path / "events.jsonl")]
    assert [e["step"] for e in events] == list(range(1, 17))
    assert scorers == {"rewards"} and llm.threads == {"builds"}
    assert llm.most >= 2  # builds overlapped
    assert validator.worker_time.seconds == 0 and events[-1]["rewards/busy_s"] > 0
    assert events[-1]["generate/busy_s"] > 0
    replayed = [0.0] * len(validator.state.scores)
    for e in events:
        for uid, reward in zip(e["uids"], e["rewards"]):
            replayed[uid] = 0.1 * reward + 0.9 * replayed[uid]
    assert replayed == pytest.approx(validator.state.scores, abs=1e-12)
