"""The organic endpoint with the real ``openai`` client against a real validator
(its client, reward stack and telemetry), real miners on loopback, real wallets and
real signatures: streamed and whole answers, the best miners by score race and the
first of them with text serves, every answer is scored into the moving averages, and
hostile users and miners get a clear status without slowing anything."""

from __future__ import annotations

import asyncio
import io
import json
import time

import httpx
import openai
import pytest
from test_network import ServerThread
from test_stream import HostileStreamer
from test_tasks import ScriptedLLM

from prompting.chain.local import LocalChain
from prompting.config import default_config
from prompting.llms.base import LLMStats
from prompting.network.auth import Authorizer, CallerPolicy
from prompting.organic import keys as organic_keys
from prompting.organic.api import Endpoint
from prompting.organic.queue import Full, Gate
from prompting.rewards.stack import RewardStack
from prompting.telemetry import Telemetry
from prompting.validator.loop import Validator

ANSWER = (
    "A Python list is an ordered, mutable sequence: you can append items, remove them, "
    "sort the list in place and index it from zero."
)
SECRET_QUESTION = "What is a Python list, secretly asked by user 4711?"


class ReferenceLLM(ScriptedLLM):
    """The scripted model as the validator's model: ``stats`` and ``tokenizer`` are
    properties, as the LLM interface has them; the tokenizer a real one when given (the
    users' token counts), else none."""

    def __init__(self, rules, tokenizer=None):
        super().__init__(rules)
        self._tokenizer = tokenizer

    @property
    def tokenizer(self):
        return self._tokenizer

    @property
    def stats(self) -> LLMStats:
        return LLMStats("scripted", "scripted")


def streaming(text: str, delay: float, first_delay: float = 0.0):
    async def answer(req):
        await asyncio.sleep(first_delay)
        for word in text.split(" "):
            await asyncio.sleep(delay)
            yield word + " "

    return answer


class Subnet:
    """A validator (not running its synthetic loop unless a test starts it) with miners
    on loopback: uid 1 honest and fast, uid 2 honest and slower, uid 3 whatever the test
    gives it; each on its own coldkey. The synthetic scores rank them 3, 1, 2 unless a
    test says otherwise; the best two race (--organic.race 2)."""

    def __init__(self, tmp_path, wallets, embedder, third=None, llm=None, **organic):
        v = wallets["validator"]
        allow = Authorizer(CallerPolicy(0, frozenset({v.hotkey.ss58_address})), None)
        self.servers = [
            ServerThread(streaming(ANSWER, 0.01), wallets["miner"], allow, rate_limit=1000),
            ServerThread(
                streaming("Lists hold items in order.", 0.01, 0.4),
                wallets["miner2"],
                allow,
                rate_limit=1000,
            ),
        ]
        if third is not None:
            self.servers.append(third)
        chain = LocalChain(str(tmp_path / "chain.json"), hotkey=v.hotkey.ss58_address)
        chain.register(v.hotkey.ss58_address, "cv", stake=1e4, validator_permit=True)
        for name, server in zip(("miner", "miner2", "outsider"), self.servers):
            chain.register(
                wallets[name].hotkey.ss58_address, f"c-{name}", endpoint=f"127.0.0.1:{server.port}"
            )
        self.config = default_config(
            neuron__full_path=str(tmp_path),
            neuron__model_id="scripted",
            neuron__timeout=5.0,
            neuron__seed=0,
            organic__enabled=True,
            organic__port=0,
            organic__keys_file=str(tmp_path / "keys.json"),
            organic__timeout=5.0,
            organic__stall_s=1.0,
            organic__reference_wait_s=0.0,  # no synthetic loop runs: no call to ride in
        )
        for key, value in organic.items():
            setattr(self.config.organic, key, value)
        # the validator's model writes the reference
        self.llm = ReferenceLLM([("", ANSWER)]) if llm is None else llm
        self.log = tmp_path / "events.jsonl"
        self.telemetry = Telemetry(str(tmp_path), stream=io.StringIO())
        self.validator = Validator(
            self.config, v, chain, self.llm, RewardStack(lambda: embedder), self.telemetry
        )
        self.validator.apply_metagraph(chain.metagraph())
        # the synthetic scores rank the miners: uid 3, then 1, then 2
        self.validator.state.scores[1:4] = [0.5, 0.4, 0.6][: len(self.servers)]
        self.key = self.issue("alice", 1000)
        self.clients: list[openai.AsyncOpenAI] = []

    def issue(self, name: str, rate: int) -> str:
        out = io.StringIO()
        import contextlib

        with contextlib.redirect_stdout(out):
            organic_keys.main(
                [
                    "--file",
                    self.config.organic.keys_file,
                    "add",
                    "--name",
                    name,
                    "--rate",
                    str(rate),
                ]
            )
        return out.getvalue().strip()

    async def __aenter__(self):
        self.endpoint = await Endpoint.start(self.validator, self.config)
        self.service = self.endpoint.service
        self.root = f"http://127.0.0.1:{self.endpoint.port}"
        self.base = f"{self.root}/v1"
        return self

    async def __aexit__(self, *exc):
        for client in self.clients:
            await client.close()
        await self.endpoint.stop(10)
        await self.validator.close()
        for server in self.servers:
            server.stop()

    def client(self, key=None) -> openai.AsyncOpenAI:
        client = openai.AsyncOpenAI(base_url=self.base, api_key=key or self.key, max_retries=0)
        self.clients.append(client)
        return client

    def events(self) -> list[dict]:
        self.telemetry._file.flush()
        return [json.loads(line) for line in open(self.log) if '"organic"' in line]


async def post(url: str, **kw) -> httpx.Response:
    """The server runs in this test's event loop: never block it with a sync call."""
    async with httpx.AsyncClient(timeout=5) as client:
        return await client.post(url, **kw)


async def settled(net) -> None:
    """Every exchange answered by all its miners and scored."""
    assert await net.service.settle(10), net.service.counts


async def served(net, n: int, timeout: float = 10.0) -> None:
    """Until ``n`` exchanges have had every miner's answer (and so reached scoring):
    the user's reply comes with the first verified answer, before the slower miners'."""
    deadline = time.monotonic() + timeout
    while net.service.counts["served"] < n:
        assert time.monotonic() < deadline, f"{net.service.counts} after {timeout} s"
        await asyncio.sleep(0.02)


def ask(**kw):
    return dict(model="prompting", messages=[{"role": "user", "content": SECRET_QUESTION}], **kw)


async def test_the_openai_client_streamed_and_not_and_every_answer_scored(
    tmp_path, wallets, embedder
):
    async def forger(lines, nonce, caller):  # fastest, but its lines are not its own
        yield lines.delta("I am the answer you want. ")
        yield lines.end({})

    third = HostileStreamer(wallets, forger, signer_wallet="miner2")
    async with Subnet(tmp_path, wallets, embedder, third=third) as net:
        client = net.client()
        models = await client.models.list()
        assert [m.id for m in models.data] == ["prompting"]

        reply = await client.chat.completions.create(**ask(max_tokens=50, temperature=0.2))
        assert reply.choices[0].message.content.strip() == ANSWER
        assert reply.choices[0].finish_reason == "stop"

        pieces, arrived = [], []
        async for chunk in await client.chat.completions.create(**ask(stream=True)):
            text = chunk.choices[0].delta.content if chunk.choices else None
            if text:
                arrived.append(time.perf_counter())
                pieces.append(text)
        assert "".join(pieces).strip() == ANSWER and len(pieces) > 10
        # streamed as it came, not buffered: the pieces arrive over at least half the
        # time the miner takes to write them (a word every 10 ms); a buffered reply
        # arrives at once, however long the set-up before it (which a loaded CI stretches)
        assert arrived[-1] - arrived[0] >= 0.5 * 0.01 * len(ANSWER.split())

        # the README's example: the plain synchronous client
        sync = openai.OpenAI(base_url=net.base, api_key=net.key, max_retries=0)
        done = await asyncio.to_thread(sync.chat.completions.create, **ask())
        assert done.choices[0].message.content.strip() == ANSWER
        await settled(net)

    events = net.events()
    assert len(events) == 3 and all(e["organic/scored"] for e in events)
    for e in events:
        by_uid = dict(zip(e["uids"], zip(e["statuses"], e["rewards"])))
        # asked the top three by score, one per coldkey; the forger scores 0
        assert set(by_uid) == {1, 2, 3} and by_uid[3] == ("forged", 0.0)
        assert by_uid[1][0] == by_uid[2][0] == "ok" and by_uid[1][1] > by_uid[2][1] > 0
        ttft = dict(zip(e["uids"], e["ttft"]))
        assert 0 < ttft[1] < ttft[2] and ttft[3] is None
        # asked best first (the rewards move the scores: uid 1 may pass the forger); the
        # best two raced, and uid 1 served (the forger is out at its first line)
        assert e["uids"] in ([3, 1, 2], [1, 3, 2]) and e["organic/race"] == 2
        assert e["organic/racers"] == e["uids"][:2] and e["organic/served_uid"] == 1
        assert e["organic/served_rank"] == e["uids"].index(1) + 1
        assert e["scores/applied"] == e["uids"]
        assert e["organic/id"].startswith("organic:") and len(e["organic/key"]) == 16
    text = open(net.log).read()
    assert SECRET_QUESTION not in text and "alice" not in text and ANSWER not in text
    # the reference was written by the validator's model for the user's messages
    assert any(SECRET_QUESTION in t for batch in net.llm.batches for t in batch)
    # the rewards entered the moving averages (alpha 0.1, weight 1): uid 3 fell, 1 rose
    scores = net.validator.state.scores
    assert scores[3] == pytest.approx(0.6 * 0.9**3) and scores[1] > 0.5 * 0.9**3


async def test_log_text_keeps_the_users_text_when_asked(tmp_path, wallets, embedder):
    async with Subnet(tmp_path, wallets, embedder, log_text=True) as net:
        await net.client().chat.completions.create(**ask())
        await settled(net)
    (event,) = net.events()
    assert event["messages"][0]["content"] == SECRET_QUESTION
    assert event["reference"] == ANSWER and ANSWER in [c.strip() for c in event["completions"]]


@pytest.mark.parametrize("weight, has_model", [(0.0, True), (1.0, False)])
async def test_an_exchange_not_scored_says_why(tmp_path, wallets, embedder, weight, has_model):
    """--organic.weight 0, or a validator without a model to write references: served,
    logged and counted unscored with its reason; no reference written, no score moved."""
    async with Subnet(tmp_path, wallets, embedder, weight=weight) as net:
        if not has_model:
            net.validator.llm = None  # as a validator that loaded none
        before = list(net.validator.state.scores)
        reply = await net.client().chat.completions.create(**ask())
        assert reply.choices[0].message.content.strip() == ANSWER
        await settled(net)
    reason = "weight_zero" if has_model else "no_model"
    (event,) = net.events()
    assert not event["organic/scored"] and event["organic/unscored"] == reason
    assert "scores/applied" not in event and event["rewards"] == [None, None]
    counts = net.service.gauges()
    assert counts[f"organic/unscored/{reason}"] == 1 and counts["organic/scored"] == 0
    assert net.validator.state.scores == before and net.llm.batches == []


async def test_hostile_users_get_a_clear_status_and_slow_nothing(tmp_path, wallets, embedder):
    async with Subnet(tmp_path, wallets, embedder) as net:
        with pytest.raises(openai.AuthenticationError):
            await net.client("pk-not-a-key").chat.completions.create(**ask())
        r = await post(f"{net.base}/chat/completions", json=ask())
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"

        flooder = net.client(net.issue("flooder", 3))
        for _ in range(3):  # refused requests use none of the key's rate
            with pytest.raises(openai.BadRequestError):
                await flooder.chat.completions.create(**ask(n=2))
        for _ in range(3):
            await flooder.chat.completions.create(**ask())
        with pytest.raises(openai.RateLimitError) as caught:
            await flooder.chat.completions.create(**ask())
        assert int(caught.value.response.headers["retry-after"]) >= 1

        headers = {"Authorization": f"Bearer {net.key}"}
        big = {"model": "x", "messages": [{"role": "user", "content": "x" * 300_000}]}
        r = await post(f"{net.base}/chat/completions", json=big, headers=headers)
        assert r.status_code == 413
        for bad in ({"messages": []}, {"messages": [{"role": "tool", "content": "x"}]}, "nope"):
            r = await post(f"{net.base}/chat/completions", json=bad, headers=headers)
            assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"

        # a user who leaves mid-stream: the miners' exchange and its scoring go on
        async with httpx.AsyncClient(timeout=5) as raw:
            async with raw.stream(
                "POST", f"{net.base}/chat/completions", json=ask(stream=True), headers=headers
            ) as resp:
                assert resp.status_code == 200
                async for _ in resp.aiter_bytes():
                    break  # the first event, then gone
        start = time.perf_counter()
        reply = await net.client().chat.completions.create(**ask())
        assert reply.choices[0].message.content.strip() == ANSWER
        assert time.perf_counter() - start < 2.0
        await settled(net)
    events = net.events()
    assert sum(e["user_left"] for e in events) == 1
    left = next(e for e in events if e["user_left"])
    assert left["organic/scored"] and dict(zip(left["uids"], left["statuses"]))[1] == "ok"


async def test_a_full_queue_is_503_and_no_verified_answer_is_502(tmp_path, wallets, embedder):
    async def forger(lines, nonce, caller):
        yield lines.delta("forged")
        yield lines.end({})

    third = HostileStreamer(wallets, forger, signer_wallet="miner2")
    async with Subnet(
        tmp_path, wallets, embedder, third=third, miners=3, max_concurrency=1, max_queue=0
    ) as net:
        client = net.client()
        first = asyncio.ensure_future(client.chat.completions.create(**ask()))
        await asyncio.sleep(0.05)
        with pytest.raises(openai.InternalServerError) as caught:  # 503: busy
            await client.chat.completions.create(**ask())
        assert caught.value.status_code == 503 and "busy" in str(caught.value)
        await first
        await settled(net)  # the slot is held until every miner has answered
        # only the forger asked: nothing verifies, the user is told so
        net.config.organic.miners = 1
        net.validator.state.scores[3] = 1.0  # the forger leads, so it alone is asked
        with pytest.raises(openai.InternalServerError) as caught:
            await client.chat.completions.create(**ask())
        assert caught.value.status_code == 502 and "forged" in str(caught.value)


async def test_a_winner_that_breaks_off_mid_stream_ends_it_with_an_error(
    tmp_path, wallets, embedder
):
    async def breaks(lines, nonce, caller):
        yield lines.delta("The start is honest, ")
        raw = json.loads(lines.delta("then a forged line."))
        raw["data"] = "then text its signature does not cover."
        yield json.dumps(raw).encode() + b"\n"

    import dataclasses

    third = HostileStreamer(wallets, breaks)  # signs as "miner", uid 1
    async with Subnet(tmp_path, wallets, embedder, miners=1) as net:
        net.servers[0].stop()
        net.servers[0] = third
        graph = net.validator.metagraph
        graph[1] = dataclasses.replace(graph[1], endpoint=f"127.0.0.1:{third.port}")
        net.validator.state.scores[1] = 1.0  # it leads: the one miner asked
        seen = []
        with pytest.raises(openai.APIError) as caught:
            async for chunk in await net.client().chat.completions.create(**ask(stream=True)):
                if chunk.choices and chunk.choices[0].delta.content:
                    seen.append(chunk.choices[0].delta.content)
        assert seen == ["The start is honest, "] and "forged" in str(caught.value)


async def test_the_gate_queues_in_order_and_refuses_past_its_bounds():
    gate = Gate(max_concurrency=1, max_queue=1, max_wait_s=0.2)
    await gate.acquire()
    waiter = asyncio.ensure_future(gate.acquire())
    await asyncio.sleep(0)
    with pytest.raises(Full):  # one running, one waiting: the third is refused at once
        await gate.acquire()
    gate.release()  # the slot passes to the waiter
    await asyncio.wait_for(waiter, 1)
    assert gate.running == 1
    with pytest.raises(Full, match="within"):  # waits, then gives up
        await gate.acquire()
    gate.release()
    assert gate.running == 0 and gate.waiting == 0


async def test_the_gate_bounds_the_admission_rate():
    gate = Gate(max_concurrency=100, max_queue=0, max_wait_s=1, max_rate=4.0)
    for _ in range(4):  # a second's worth at once
        await gate.acquire()
    with pytest.raises(Full, match="per second"):
        await gate.acquire()
    await asyncio.sleep(0.3)  # a token refills every 0.25 s
    await gate.acquire()
    assert gate.running == 5


def test_keys_are_stored_hashed_and_revocable(tmp_path, capsys):
    path = str(tmp_path / "k.json")
    organic_keys.main(["--file", path, "add", "--name", "bob", "--rate", "5"])
    key = capsys.readouterr().out.strip()
    assert key.startswith("pk-") and key not in open(path).read()
    keys = organic_keys.ApiKeys(path)
    entry = keys.lookup(key)
    assert entry.name == "bob" and entry.rate_per_minute == 5
    assert keys.lookup("pk-wrong") is None and keys.lookup(None) is None
    assert [keys.allow(entry) for _ in range(6)][-1] > 0  # the sixth in a minute waits
    with pytest.raises(SystemExit):
        organic_keys.main(["--file", path, "add", "--name", "bob"])  # names are unique
    organic_keys.main(["--file", path, "revoke", "--name", "bob"])
    assert organic_keys.read_keys(path) == {}
    (tmp_path / "bad.json").write_text('{"keys": [{"name": "x"}]}')
    with pytest.raises(organic_keys.KeysFileError, match="lacks name or sha256"):
        organic_keys.ApiKeys(str(tmp_path / "bad.json"))


async def test_references_ride_in_the_synthetic_generate_calls_and_steps_go_on(
    tmp_path, wallets, embedder
):
    """With the synthetic loop running, an organic reference is written inside a
    challenge stage's generate call (summaries: 128 tokens, room for the 96 of a
    reference), and the steps all complete."""
    async with Subnet(tmp_path, wallets, embedder, reference_wait_s=30.0) as net:
        n = net.config.neuron
        n.max_steps, n.sample_size, n.miner_query_rate = 6, 2, 1000.0
        n.step_interval = 0.5  # steps still to come once the miners have answered
        n.forwards, n.num_concurrent_forwards = "fixed", 1
        from prompting.tasks import TaskSampler

        net.validator.sampler = TaskSampler({"summarization": 1.0}, 0, use_llm=True)
        loop = asyncio.ensure_future(net.validator.run_steps())
        reply = await net.client().chat.completions.create(**ask())
        assert reply.choices[0].message.content.strip() == ANSWER
        await asyncio.wait_for(loop, 60)
        assert await net.service.settle(30)
    assert net.validator.state.step == 6
    shared = [b for b in net.llm.batches if len(b) > 1 and SECRET_QUESTION in b]
    assert shared, net.llm.batches  # one call: a synthetic prompt and the organic one
    assert net.service.batches.in_shared_calls == 1 and net.service.batches.in_own_calls == 0
    (event,) = net.events()
    assert event["organic/scored"] and event["organic/references_shared"] == 1
    # every synthetic step's event carries the organic counters, for dashboards
    steps = [json.loads(line) for line in open(net.log) if '"organic"' not in line]
    assert len(steps) == 6 and all("organic/served" in e for e in steps)
    assert steps[-1]["organic/served"] == 1 and steps[-1]["organic/scoring_queue"] <= 1


async def test_a_batch_of_exchanges_is_scored_in_one_turn_of_the_model_thread(
    tmp_path, wallets, embedder
):
    """Exchanges that waited together get one reference call and one scoring call: on a
    CPU each call waits behind a synthetic generate call, so a call per exchange left
    most of them unscored (benchmark_organic, SmolLM2)."""
    import threading

    async with Subnet(tmp_path, wallets, embedder) as net:
        calls = []
        on_model_thread = net.validator.run_on_model_thread

        async def counted(fn, *args):
            calls.append(getattr(fn, "__name__", repr(fn)))
            return await on_model_thread(fn, *args)

        busy = threading.Event()
        held = asyncio.ensure_future(on_model_thread(busy.wait, 30))
        net.validator.run_on_model_thread = counted
        for i in range(3):  # the first waits for its reference; two queue behind it
            await net.client().chat.completions.create(**ask())
            await served(net, i + 1)
        busy.set()
        await held
        await settled(net)
    assert calls == ["generate_own_call", "score_all", "generate_own_call", "score_all"], calls
    batches = sorted(e["organic/reference_batch"] for e in net.events())
    assert batches == [1, 2, 2] and net.service.counts["scored"] == 3


async def test_references_past_their_share_of_the_model_time_wait_for_it():
    """--organic.reference_share: past it, a synthetic call takes no rider and no call
    of their own starts; once time has brought the share under it, the reference is
    written (a call of its own here, no synthetic call coming) and charged."""
    from prompting.organic.batching import SharedBatches

    llm = ScriptedLLM([("user asks", "a reference"), ("challenge", "a challenge")])
    shared = SharedBatches(llm, max_extra=8, min_tokens=0, share=0.1)
    shared.organic_s = 5.0  # references took 5 s of model time in the last few ms

    async def own_call(prompts):
        return [g.text for g in await asyncio.to_thread(shared.generate_own_call, prompts)]

    asking = asyncio.ensure_future(
        shared.references([[{"role": "user", "content": "user asks"}]], 0.05, own_call)
    )
    await asyncio.sleep(0.2)
    mine = await asyncio.to_thread(shared.generate, [[{"role": "user", "content": "challenge"}]])
    assert [g.text for g in mine] == ["a challenge"] and llm.batches == [["challenge"]]
    assert not asking.done() and shared.in_shared_calls == 0 and shared.in_own_calls == 0
    shared.started -= 100.0  # 100 s have passed: 5 s is 5 % of them
    assert await asyncio.wait_for(asking, 5) == ["a reference"]
    assert shared.in_own_calls == 1 and shared.organic_s > 5.0


async def test_an_exchange_that_finds_the_scoring_queue_full_is_logged_unscored(
    tmp_path, wallets, embedder
):
    """While the model thread is busy, one exchange waits in a scoring queue of one and
    the next cannot join it: it is logged with no rewards and counted, never lost."""
    import threading

    async with Subnet(tmp_path, wallets, embedder, max_scoring_queue=1) as net:
        busy = threading.Event()  # the model thread is taken
        held = asyncio.ensure_future(net.validator.run_on_model_thread(busy.wait, 30))
        client = net.client()
        for i in range(3):
            reply = await client.chat.completions.create(**ask())
            assert reply.choices[0].message.content.strip() == ANSWER
            await served(net, i + 1)  # each exchange reaches the scoring queue in turn
        assert net.service.gauges()["organic/unscored/queue_full"] == 1
        busy.set()
        await held
        await settled(net)
    counts = net.service.gauges()
    assert counts["organic/served"] == 3 and counts["organic/scored"] == 2
    assert counts["organic/scoring_queue"] == 0
    events = net.events()
    assert sorted(e["organic/scored"] for e in events) == [False, True, True]
    (unscored,) = [e for e in events if not e["organic/scored"]]
    assert unscored["rewards"] == [None] * len(unscored["uids"]) and unscored["statuses"]


@pytest.mark.slow
def test_sigint_under_load_loses_nothing(tmp_path):
    """neurons/validator.py --organic.enabled on the local subnet (the tiny model, which
    loads to write organic references), four users sending back to back with the
    ``openai`` client, then SIGINT while requests are in flight: each of those gets its
    whole answer, the exchanges finish and are scored during the drain, and the scores
    saved in state.json equal the replay of every event logged, organic included."""
    import signal
    import socket
    import subprocess
    import threading

    from prompting.validator.replay import replay_scores
    from tests.conftest import REPO
    from tests.helpers import validator_cmd, validator_env

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    keys_file = str(tmp_path / "keys.json")
    out = io.StringIO()
    import contextlib

    with contextlib.redirect_stdout(out):
        organic_keys.main(["--file", keys_file, "add", "--name", "u", "--rate", "100000"])
    key = out.getvalue().strip()
    state = tmp_path / "state"
    events_path = state / "events.jsonl"
    proc = subprocess.Popen(
        validator_cmd(
            state,
            *("--neuron.model_id", "tiny", "--neuron.seed", "0", "--local.miners", "3"),
            *("--local.strategies", "keywords,restate,retrieval"),
            # each exchange lasts about 2 s: some are in flight whenever SIGINT comes
            *("--local.latency", "median=2,sigma=0.1,timeouts=0"),
            *("--organic.enabled", "--organic.port", str(port), "--organic.keys_file", keys_file),
            *("--organic.reference_wait_s", "0"),  # the tiny model writes no challenge
        ),
        cwd=REPO,
        env=validator_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    client = openai.OpenAI(
        base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0, timeout=60
    )
    asked = {"model": "prompting", "messages": [{"role": "user", "content": "What is pass?"}]}
    done: list[tuple[float, float, str]] = []  # (sent, answered, text) of each answer
    refused: list[float] = []  # when a request was refused (503 while stopping, or closed)
    stop = threading.Event()

    def user(i: int) -> None:
        while not stop.is_set():
            sent = time.time()
            try:
                if i % 2:
                    reply = client.chat.completions.create(**asked, stream=True)
                    text = "".join(c.choices[0].delta.content or "" for c in reply if c.choices)
                else:
                    text = client.chat.completions.create(**asked).choices[0].message.content
                done.append((sent, time.time(), text))
            except (openai.APIConnectionError, openai.InternalServerError):
                refused.append(sent)
                time.sleep(0.5)

    def logged() -> list[dict]:
        if not events_path.exists():
            return []
        return [json.loads(line) for line in events_path.read_text().splitlines()]

    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            try:  # the endpoint is up and a miner serves (503 until then)
                client.chat.completions.create(**asked)
                break
            except (openai.APIConnectionError, openai.InternalServerError):
                time.sleep(1)
        users = [threading.Thread(target=user, args=(i,)) for i in range(4)]
        for t in users:
            t.start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # organic exchanges scored, synthetic steps
            events = logged()
            scored = sum(bool(e.get("organic/scored")) for e in events)
            if scored >= 2 and sum(e.get("kind") != "organic" for e in events) >= 1:
                break
            time.sleep(0.5)
        started = len(done)
        time.sleep(1.0)  # the users' next requests are in flight now
        interrupted = time.time()
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=120)
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
    for t in users:
        t.join(60)
    assert proc.returncode == 0, output[-3000:]
    assert "organic endpoint on http://127.0.0.1" in output and "Traceback" not in output
    # the requests in flight at SIGINT got their whole answers, none an error
    in_flight = [(s, a, text) for s, a, text in done if s < interrupted < a]
    assert in_flight and all(text.strip() for _, _, text in in_flight), (in_flight, started)
    assert not [t for t in refused if t < interrupted - 1.0]  # none refused before it
    events = logged()
    organic = [e for e in events if e.get("kind") == "organic"]
    assert all(e["statuses"] for e in organic)
    after = [
        (e["organic/scored"], e.get("organic/unscored")) for e in organic if e["time"] > interrupted
    ]
    assert (True, None) in after, after  # scored while it drained
    saved = json.loads((state / "state.json").read_text())["scores"]
    assert saved == replay_scores(events, [0.0] * len(saved))
    assert any(saved)


# --- route by quality ------------------------------------------------------------------


def blank(req):
    return "   "  # an answer with no text: the instant "empty" miner


@pytest.mark.parametrize("race, served_uid", [(1, 2), (2, 1)])
async def test_the_best_miners_race_and_a_blank_answer_is_never_served(
    tmp_path, wallets, embedder, race, served_uid
):
    """Scores rank a blank miner first (uid 3, instant), the slower honest one second
    (uid 2) and the fast honest one last (uid 1). The blank one races and ends without
    text: its place goes to the next by score. With a race of one the user waits for the
    slower but better miner; with two, the faster of the two left serves. The blank
    answer never serves, and the uid the user is told is the one in the event."""
    allow = Authorizer(CallerPolicy(0, frozenset({wallets["validator"].hotkey.ss58_address})), None)
    third = ServerThread(blank, wallets["outsider"], allow, rate_limit=1000)
    async with Subnet(tmp_path, wallets, embedder, third=third, race=race) as net:
        net.validator.state.scores[1:4] = [0.1, 0.8, 0.9]
        client = net.client()
        told = []
        for stream in (False, True):
            raw = await client.chat.completions.with_raw_response.create(**ask(stream=stream))
            told.append(int(raw.headers["x-prompting-miner-uid"]))
            reply = raw.parse()
            if stream:
                text = "".join([c.choices[0].delta.content or "" async for c in reply])
            else:
                text = reply.choices[0].message.content
            assert text.strip() == (ANSWER if served_uid == 1 else "Lists hold items in order.")
        await settled(net)
    assert told == [served_uid, served_uid]
    for e in net.events():
        assert e["uids"] == [3, 2, 1] and e["organic/racers"] == [3, 2][:race]
        assert e["organic/served_uid"] == served_uid
        assert e["organic/served_rank"] == {2: 2, 1: 3}[served_uid]
        by_uid = dict(zip(e["uids"], e["rewards"]))
        assert by_uid[3] == 0.0 and by_uid[1] > 0 and by_uid[2] > 0  # all scored


def result(uid: int, status: str = "ok", completion: str = ""):
    from prompting.network.client import QueryResult

    return QueryResult(uid, f"hk{uid}", status, 0.1, completion=completion)


def exchange(stream: bool, race: int = 1, uids=(1, 2, 3), race_wait_s: float = 0.0):
    from prompting.chain.base import Neuron
    from prompting.organic.service import Exchange
    from prompting.protocol import PromptRequest

    request = PromptRequest(
        task="organic",
        challenge_id="organic:x",
        messages=[{"role": "user", "content": "q"}],
        timeout=5,
        step=0,
    )
    ranked = [Neuron(u, f"hk{u}", f"c{u}", 0.0, "127.0.0.1:1", False) for u in uids]
    return Exchange(request, ranked, race, "key", stream, race_wait_s)


def drained(queue: asyncio.Queue) -> list:
    out = []
    while not queue.empty():
        out.append(queue.get_nowait())
    return out


async def test_the_race_waits_for_the_best_then_falls_back_in_order():
    """Streamed: a lower-ranked miner's earlier text does not win while a better one is
    still racing; once the better one ends blank, the next in rank order with text wins
    at once, and the user reads its buffered pieces in order, then the rest live."""
    ex = exchange(stream=True, race=1)
    await ex.on_delta(3, "third ")  # rank 3: text first, but not racing
    await ex.on_delta(2, "second ")  # rank 2: not racing either
    await ex.on_delta(1, " ")  # the racer: blank so far
    assert ex.served is None and not ex.decided.is_set()
    ex.answered(result(1, completion=" "))  # ended blank: out; rank 2 takes its place
    assert ex.served == 2 and ex.decided.is_set()
    await ex.on_delta(2, "more")
    ex.answered(result(2, completion="second more"))
    pieces = drained(ex.pieces)
    assert pieces[:2] == ["second ", "more"] and pieces[2].ok


async def test_racers_without_text_let_the_next_by_score_join_in_time():
    """--organic.race_wait_s: the best miner keeps its stream alive but has no text; each
    0.2 s the next by score joins the race, so the user does not wait for the deadline,
    and text that arrived earlier from a miner not yet racing wins when it joins."""
    ex = exchange(stream=True, race=1, race_wait_s=0.2)
    await ex.on_delta(1, "")  # the best: alive, thinking
    await ex.on_delta(3, "third ")  # rank 3: text, not racing yet
    await asyncio.sleep(0.3)
    assert ex.served is None and ex.racers() == [1, 2] and ex.widened == 1
    await asyncio.sleep(0.2)
    assert ex.served == 3 and ex.widened == 2 and drained(ex.pieces) == ["third "]
    await asyncio.sleep(0.3)
    assert ex.widened == 2  # decided: no more widening


async def test_a_whole_answer_whose_miner_fails_is_served_by_the_next_in_line():
    ex = exchange(stream=False, race=2)
    await ex.on_delta(2, "fast ")  # rank 2 races and sends text first: chosen
    await ex.on_delta(1, "best ")
    assert ex.served == 2 and not ex.whole.done()  # a whole answer waits for its end
    ex.answered(result(2, status="forged"))  # a bad line later: the user read nothing
    assert ex.served == 1
    ex.answered(result(1, completion="best answer"))
    assert (await ex.whole).uid == 1
    ex.answered(result(3, completion="late"))
    ex.close()
    assert ex.served == 1


async def test_blank_everywhere_serves_the_best_blank_answer_and_none_is_502():
    ex = exchange(stream=False, race=2)
    for uid in (3, 1, 2):
        ex.answered(result(uid, completion=" "))
    assert (await ex.whole).uid == 1  # no miner has text: the best-ranked blank answer
    ex = exchange(stream=True, race=2)
    for uid in (1, 2, 3):
        ex.answered(result(uid, status="timeout"))
    ex.close()
    assert ex.decided.is_set() and ex.served is None  # the route answers 502


# --- what the user gets: usage, stop, parameters -----------------------------------------


async def test_usage_is_counted_in_the_validators_tokenizer(tmp_path, wallets, embedder, tiny_llm):
    from prompting.llms.base import render_chat

    tok = tiny_llm.tokenizer
    llm = ReferenceLLM([("", ANSWER)], tok)
    async with Subnet(tmp_path, wallets, embedder, llm=llm, miners=2) as net:
        client = net.client()
        whole = await client.chat.completions.create(**ask())
        chunks = [
            c
            async for c in await client.chat.completions.create(
                **ask(stream=True, stream_options={"include_usage": True})
            )
        ]
        plain = [c async for c in await client.chat.completions.create(**ask(stream=True))]
    messages = [{"role": "user", "content": SECRET_QUESTION}]
    prompt = len(tok(render_chat(tok, messages), add_special_tokens=False).input_ids)
    answer = len(tok(whole.choices[0].message.content, add_special_tokens=False).input_ids)
    assert (whole.usage.prompt_tokens, whole.usage.completion_tokens) == (prompt, answer)
    assert whole.usage.total_tokens == prompt + answer and answer > 10
    *text_chunks, last = chunks
    assert last.choices == [] and last.usage.prompt_tokens == prompt
    streamed = "".join(c.choices[0].delta.content or "" for c in text_chunks)
    assert last.usage.completion_tokens == len(tok(streamed, add_special_tokens=False).input_ids)
    assert all(c.usage is None for c in text_chunks) and all(c.usage is None for c in plain)


async def test_stop_is_honoured_and_what_is_not_honoured_is_refused(tmp_path, wallets, embedder):
    async with Subnet(tmp_path, wallets, embedder, race=1) as net:
        net.validator.state.scores[1:3] = [0.9, 0.1]  # uid 1 (ANSWER, word by word) serves
        client = net.client()
        cut = ANSWER[: ANSWER.index("append items")]
        reply = await client.chat.completions.create(**ask(stop=["append items", "zzz"]))
        assert reply.choices[0].message.content == cut
        pieces = [  # "append " and "items " arrive as two pieces: the stop spans them
            c.choices[0].delta.content or ""
            async for c in await client.chat.completions.create(
                **ask(stream=True, stop="append items")
            )
            if c.choices
        ]
        assert "".join(pieces) == cut
        ok = await client.chat.completions.create(**ask(n=1, top_p=1, user="u-1", seed=None))
        assert ok.choices[0].message.content.strip() == ANSWER
        refused = [
            (dict(n=2), 400, "n", "unsupported_value"),
            (dict(top_p=0.5), 400, "top_p", "unsupported_value"),
            (dict(extra_body={"tools": [{"type": "function"}]}), 400, "tools", "unsupported_value"),
            (dict(extra_body={"foo": 1}), 400, "foo", "unknown_parameter"),
            (dict(model="gpt-4o"), 404, "model", "model_not_found"),
            (dict(stream_options={"include_usage": True}), 400, "stream_options", "invalid_value"),
            (dict(stop=["a", "b", "c", "d", "e"]), 400, "stop", "invalid_value"),
        ]
        for kw, status, param, code in refused:
            with pytest.raises(openai.APIStatusError) as caught:
                await client.chat.completions.create(**{**ask(), **kw})
            assert caught.value.status_code == status, kw
            assert caught.value.body["param"] == param and caught.value.body["code"] == code
        headers = {"Authorization": f"Bearer {net.key}"}
        r = await post(f"{net.base}/chat/completions", json=ask(max_tokens="5"), headers=headers)
        assert r.status_code == 400 and r.json()["error"]["param"] == "max_tokens"
        long = {"model": "prompting", "messages": [{"role": "user", "content": "x" * 210_000}]}
        r = await post(f"{net.base}/chat/completions", json=long, headers=headers)
        assert r.status_code == 400 and r.json()["error"]["param"] == "messages.0.content"
        await settled(net)
    assert len(net.events()) == 3  # the refused requests reached no miner


# --- timeouts ----------------------------------------------------------------------------


def first_line_at(seconds: float, text: str = "Late but honest."):
    async def answer(req):
        await asyncio.sleep(seconds)
        yield text

    return answer


async def test_the_organic_deadlines_are_the_organic_flags(tmp_path, wallets, embedder):
    """--neuron.timeout 1 (synthetic) does not cut an organic stream: a first line at
    1.4 s is served. A miner silent for 2.6 s is past --organic.stall_s 2: cut off as a
    timeout, and the next miner by score serves. One that keeps its stream alive (the
    reference miner's empty deltas) is not cut, but past --organic.race_wait_s 1 without
    text the next by score joins the race and serves; the slow one is still scored."""
    import dataclasses

    async def silent(lines, nonce, caller):
        await asyncio.sleep(2.6)
        yield lines.delta("Too late.")
        yield lines.end({})

    allow = Authorizer(CallerPolicy(0, frozenset({wallets["validator"].hotkey.ss58_address})), None)
    third = ServerThread(first_line_at(1.4), wallets["outsider"], allow, rate_limit=1000)
    async with Subnet(
        tmp_path, wallets, embedder, third=third, race=1, stall_s=2.0, race_wait_s=10.0
    ) as net:
        net.config.neuron.timeout = 1.0  # the validator's client was made with 10 s:
        net.validator.client.timeout = 1.0  # make it the synthetic 1 s

        async def third_is(server) -> str:
            net.servers[2].stop()
            net.servers[2] = server
            graph = net.validator.metagraph
            graph[3] = dataclasses.replace(graph[3], endpoint=f"127.0.0.1:{server.port}")
            net.validator.state.scores[1:4] = [0.5, 0.4, 0.6]  # uid 3 first again
            reply = await net.client().chat.completions.create(**ask())
            return reply.choices[0].message.content.strip()

        reply = await net.client().chat.completions.create(**ask())
        assert reply.choices[0].message.content == "Late but honest."
        # silent 2.6 s: cut at the stall limit; uid 1, next by score, serves
        assert await third_is(HostileStreamer(wallets, silent, "outsider")) == ANSWER
        net.config.organic.race_wait_s = 1.0
        alive = ServerThread(first_line_at(2.6), wallets["outsider"], allow, rate_limit=1000)
        start = time.perf_counter()
        assert await third_is(alive) == ANSWER  # uid 1 joined the race after 1 s
        assert time.perf_counter() - start < 2.5
        await settled(net)
    first, cut, widened = net.events()
    assert dict(zip(first["uids"], first["statuses"]))[3] == "ok"
    late = dict(zip(cut["uids"], zip(cut["statuses"], cut["latencies"])))[3]
    assert late[0] == "timeout" and 1.9 < late[1] < 2.6 and cut["organic/served_uid"] == 1
    assert widened["organic/served_uid"] == 1 and widened["organic/race_widened"] == 1
    slow = dict(zip(widened["uids"], widened["statuses"]))[3]
    assert slow == "ok" and 3 in widened["scores/applied"]  # not cut, and scored


# --- hostile clients ------------------------------------------------------------------


async def slow_body(port: int, key: str | None, send_for: float = 30.0):
    """A connection that sends its headers, then its body a byte at a time: how long
    until the server answered and closed it, and its status line."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    writer.write(
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n{auth}"
        "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{".encode()
    )
    start = time.perf_counter()

    async def trickle():
        try:
            while time.perf_counter() - start < send_for:
                await asyncio.sleep(0.25)
                writer.write(b" ")
                await writer.drain()
        except (ConnectionError, OSError):
            pass

    sending = asyncio.ensure_future(trickle())
    try:
        answer = await reader.read()  # until the server closes
    finally:
        sending.cancel()
        writer.close()
    return time.perf_counter() - start, answer.split(b"\r\n", 1)[0]


async def test_slow_bodies_are_cut_at_the_deadline_while_a_user_is_served(
    tmp_path, wallets, embedder, caplog
):
    """1,000 connections that trickle their body hold nothing past the body deadline:
    each gets 408 and is closed (one without a key: 401 at once, its body unread), a
    user who leaves mid-body costs no traceback, and a keyed request is answered
    meanwhile."""
    import logging

    caplog.set_level(logging.INFO)
    # the miners run in this process's threads, beside 1,000 connections: a roomy stall
    async with Subnet(tmp_path, wallets, embedder, stall_s=5.0, timeout=10.0) as net:
        net.endpoint.organic.body_timeout = 1.0
        port = net.endpoint.port
        unkeyed = await slow_body(port, None)
        assert unkeyed[1].endswith(b"401 Unauthorized") and unkeyed[0] < 1.0
        slow = [asyncio.ensure_future(slow_body(port, net.key)) for _ in range(1000)]
        await asyncio.sleep(0.3)
        start = time.perf_counter()
        reply = await net.client().chat.completions.create(**ask())
        assert reply.choices[0].message.content.strip() == ANSWER
        assert time.perf_counter() - start < 8.0
        outcomes = await asyncio.wait_for(asyncio.gather(*slow), 60)
        # a user who leaves while sending the body
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {net.key}"
            "\r\nContent-Length: 100\r\n\r\n{".encode()
        )
        await writer.drain()
        writer.close()
        await asyncio.sleep(0.3)
    statuses = {line for _, line in outcomes}
    assert statuses == {b"HTTP/1.1 408 Request Timeout"}, statuses
    assert max(seconds for seconds, _ in outcomes) < 10.0  # the deadline, under load
    ours = [r for r in caplog.records if r.name.startswith(("uvicorn", "starlette", "prompting"))]
    assert not [r for r in ours if r.exc_info or r.levelno >= logging.ERROR], ours


async def test_health_and_a_drain_that_loses_nothing(tmp_path, wallets, embedder):
    """/health says whether requests are admitted. At a stop: /health 503, a new request
    503, the request in flight finishes with its answer and is scored before the stop
    returns, and the scores saved then equal the replay of the events."""
    import json as _json

    from prompting.validator.replay import replay_scores

    allow = Authorizer(CallerPolicy(0, frozenset({wallets["validator"].hotkey.ss58_address})), None)
    third = ServerThread(streaming(ANSWER, 0.1), wallets["outsider"], allow, rate_limit=1000)
    async with Subnet(tmp_path, wallets, embedder, third=third, race=1) as net:
        start_scores = list(net.validator.state.scores)
        async with httpx.AsyncClient(timeout=5) as raw:
            health = (await raw.get(f"{net.root}/health")).json()
            assert health["status"] == "ok" and health["miners"] == 3
            client = net.client()
            await client.chat.completions.create(**ask())  # one exchange before the stop
            await settled(net)
            stream = await client.chat.completions.create(**ask(stream=True))
            first = await anext(aiter(stream))  # uid 3 serves, a word every 0.1 s
            stopping = asyncio.ensure_future(net.endpoint.service.stop(10))
            await asyncio.sleep(0.05)
            assert (await raw.get(f"{net.root}/health")).status_code == 503
            with pytest.raises(openai.InternalServerError) as caught:
                await client.chat.completions.create(**ask())
            assert caught.value.status_code == 503 and "stopping" in str(caught.value)
            rest = [c.choices[0].delta.content or "" async for c in stream if c.choices]
            assert (first.choices[0].delta.content + "".join(rest)).strip() == ANSWER
            await stopping
            assert net.service.counts["scored"] == 2
        await net.validator.close()  # the state is saved only now
        saved = _json.load(open(net.validator.state_path))["scores"]
    assert saved == replay_scores(net.events(), start_scores)
    assert saved != start_scores
