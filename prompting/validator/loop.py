"""The validator: sync, sample, challenge, query, reward, score, set weights, save, log.

One step is one challenge sent to a sample of miners. Many steps are in flight at
once, as many as keep the GPU busy while miners think (``Concurrency``: adaptive by
default, or a fixed ``--neuron.num_concurrent_forwards``): each is *prepared* in order
(sync, draft), then *completed* concurrently; their generation requests are batched
together by a ``GenerationBatcher`` on the one model thread; once its challenge is
built a step samples its miners (in the order the challenges came out) under the
per-miner query-rate bound (``sampling.RateBound``), so bursts of challenges from one
batch cannot flood a miner; queries share one HTTP client; and each step *commits*
(scores, weights, state, telemetry) only after the step before it, so scores move
exactly as in a sequential run over the same results. Chain calls follow a
``Cadence`` in seconds and blocks, never the step count, so fast-failing miners cannot
turn into a flood of queries or chain calls. Chain and generation faults are logged and
survived: the step is skipped or the weights retried when the chain allows, the scores
are kept.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from prompting import compat
from prompting.chain import Chain, ChainError, Neuron, retry_after_blocks
from prompting.config import TINY_MODEL
from prompting.llms.base import LLM, LLMError, Sampling
from prompting.network.client import QueryResult
from prompting.network.offload import validator_client
from prompting.protocol import PromptRequest
from prompting.rewards.stack import RewardResult, RewardStack
from prompting.tasks import Challenge, Draft, TaskSampler, build_challenges
from prompting.telemetry import Telemetry, startup_fields, step_event
from prompting.validator import sampling, scoring
from prompting.validator import state as state_io
from prompting.validator.cadence import Cadence
from prompting.validator.concurrency import Concurrency, Load

log = logging.getLogger(__name__)
STATE_FILE = "state.json"
SKIP_BACKOFF_S = 2.0  # pause after a skipped or failed step
MAX_CONSECUTIVE_FAILURES = 20  # then something is structurally wrong: stop and say so
# With a backend shared between threads (``VLLM.share``: one engine thread batches every
# call continuously), rewards and challenge builds leave the one model thread:
REWARD_THREADS = 16  # steps scored at once (most of a step's scoring waits on the GPU)
# Challenge builds at once, each of at most 1/BUILDS of the drafts that fit: a build's
# rounds end together (every draft waits for the round's longest text), so several
# smaller builds keep the engine's batch full while one of them starts its next round.
BUILDS = 6
READS_SHARE = 4  # 1/READS_SHARE of the engine's sequences left to the fluency judge's reads
# The GIL's switch interval then: a thread that waits on the GPU and then for the GIL gets
# it within this, not Python's default 5 ms (the engine thread does so every step).
SWITCH_INTERVAL_S = 0.001


@dataclass
class StepResult:
    step: int
    uids: list[int]
    rewards: list[float]
    event: dict = field(default_factory=dict)


@dataclass
class Prepared:
    """A step planned in order by the loop: what is asked (whom, once its challenge is
    built), and its commit turn."""

    ticket: int
    neurons: list[Neuron]
    draft: Draft
    timings: dict
    started: float
    turn: asyncio.Event  # set when the step before this one has committed or given up
    done: asyncio.Event  # set when this one has
    batch_size: int = 0  # drafts whose generation this step's draft shared


async def _pass_turn(before: asyncio.Event, mine: asyncio.Event) -> None:
    await before.wait()
    mine.set()


class BusyTime:
    """Seconds spent in the calls run through it, summed over the threads that run them
    (the model thread's busy share; the reward threads add theirs at once)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._lock = threading.Lock()

    def run(self, fn, *args):
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            with self._lock:
                self.seconds += time.perf_counter() - start


class GenerationBatcher:
    """Builds the challenges of all steps in flight together.

    A step hands in its draft and waits; whatever drafts are waiting when a build may
    start go into one ``build_challenges`` call (one batched generation per stage), so N
    concurrent steps cost about one generation, not N. By default one build runs at a
    time, on the model thread; with a backend shared between threads, up to ``builds``
    run at once, each of at most ``room // builds`` drafts, holding at most ``room``
    between them (their rounds join one continuous batch in the engine). ``on_take`` is
    called whenever a batch leaves the queue (room for more drafts); ``busy_s`` is the
    time at least one build ran, for the GPU's busy share.
    """

    def __init__(
        self, run_in_worker, llm: LLM | None, on_take=None, builds: int = 1, room: int | None = None
    ):
        self._run = run_in_worker
        self.llm = llm  # what its generate calls go to (``Validator.share_generation``)
        self._on_take = on_take
        self._waiting: list[tuple[Draft, Sampling, asyncio.Future]] = []
        self._builds = max(1, builds)
        self._room = room
        self._running = 0  # builds running
        self._building = 0  # drafts in them
        self._tasks: set[asyncio.Future] = set()
        self._lock = threading.Lock()
        self._on_threads = 0  # builds running on their threads now
        self._since = 0.0  # when the first of them began (perf_counter)
        self.batch_sizes: deque[int] = deque(maxlen=1000)  # the latest, for tests
        self.busy_s = 0.0

    @property
    def queued(self) -> int:
        """Drafts waiting for the next batch."""
        return len(self._waiting)

    async def build(self, draft: Draft, params: Sampling) -> tuple[Challenge, int]:
        """The draft's challenge and the number of drafts it was built with."""
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((draft, params, future))
        self._kick()
        return await future

    def _kick(self) -> None:
        """Start builds while drafts wait and the limits allow."""
        while self._waiting and self._running < self._builds:
            take = len(self._waiting)
            if self._room is not None:  # each build at most its share of the room
                share = max(1, self._room // self._builds)
                take = min(take, share, self._room - self._building)
            if take <= 0:
                return
            batch, self._waiting = self._waiting[:take], self._waiting[take:]
            self._running += 1
            self._building += len(batch)
            self.batch_sizes.append(len(batch))
            task = asyncio.ensure_future(self._build_batch(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            if self._on_take is not None:
                self._on_take()

    def _build(self, drafts: list[Draft], llm: LLM | None, params: Sampling) -> list[Challenge]:
        """build_challenges, timed on its thread (not its queue): ``busy_s`` grows while
        at least one build runs."""
        with self._lock:
            self._on_threads += 1
            if self._on_threads == 1:
                self._since = time.perf_counter()
        try:
            return build_challenges(drafts, llm, params)
        finally:
            with self._lock:
                self._on_threads -= 1
                if self._on_threads == 0:
                    self.busy_s += time.perf_counter() - self._since

    async def _build_batch(self, batch: list) -> None:
        try:
            challenges = await self._run(
                self._build, [d for d, _, _ in batch], self.llm, batch[0][1]
            )
        except Exception as exc:  # noqa: BLE001 - each waiting step decides what to do
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
        else:
            for (_, _, future), challenge in zip(batch, challenges):
                if not future.done():
                    future.set_result((challenge, len(batch)))
        finally:
            self._running -= 1
            self._building -= len(batch)
            self._kick()


@dataclass
class ScoredAnswers:
    """The reward stack's verdict on a query's results, spread back over all of them:
    ``rewards[i]`` for ``results[i]`` (0 where the answer did not arrive ok, unscored),
    ``components[name][i]`` likewise (None there); ``raw`` as the stack returned it, for
    the answers that arrived."""

    rewards: list[float]
    components: dict[str, list[float | None]]
    raw: RewardResult


def score_ok_answers(
    stack: RewardStack, challenge: Challenge, results: list[QueryResult]
) -> ScoredAnswers:
    """Score the answers that arrived ok (on the model thread: rewards may run models),
    each with its latency (a copy arrives after its original), and spread the verdict
    back over every result. The synthetic step and the organic exchange both use it."""
    ok = [i for i, r in enumerate(results) if r.ok]
    raw = stack.score(
        challenge, [results[i].completion for i in ok], [results[i].latency for i in ok]
    )
    rewards = [0.0] * len(results)
    for j, i in enumerate(ok):
        rewards[i] = float(raw.totals[j])
    components: dict[str, list[float | None]] = {}
    for name, values in raw.components.items():
        spread: list[float | None] = [None] * len(results)
        for j, i in enumerate(ok):
            spread[i] = values[j]
        components[name] = spread
    return ScoredAnswers(rewards, components, raw)


def shares_calls(llm: LLM | None) -> bool:
    """Whether ``llm`` now takes calls from any thread at once (``VLLM.share``: its engine
    thread batches them all); the other backends do not."""
    share = getattr(llm, "share", None)
    return bool(share()) if callable(share) else False


def uses_llm_references(config) -> bool:
    """The tiny CPU model writes noise, so its tasks build references without it."""
    return config.neuron.model_id != TINY_MODEL


class Validator:
    def __init__(
        self,
        config,
        wallet,
        chain: Chain,
        llm: LLM | None = None,
        rewards: RewardStack | None = None,
        telemetry: Telemetry | None = None,
    ):
        self.config = config
        self.wallet = wallet
        self.hotkey = wallet.hotkey.ss58_address
        self.chain = chain
        self.llm = llm
        self.rewards = rewards or RewardStack()
        self.telemetry = telemetry
        self.state_path = os.path.join(config.neuron.full_path, STATE_FILE)
        self.state = state_io.load(self.state_path)
        seed = config.neuron.seed
        passages = None
        if config.neuron.dataset == "wikipedia":
            from prompting.datasets.online import WikipediaPassages

            passages = WikipediaPassages(os.path.join(config.neuron.full_path, "cache"))
        self.sampler = TaskSampler(
            config.neuron.task_weights,
            None if seed is None else seed + self.state.step,
            use_llm=llm is not None and uses_llm_references(config),
            passages=passages,
        )
        self.rng = random.Random(None if seed is None else seed * 7919 + self.state.step)
        self.metagraph: list[Neuron] = []
        n = config.neuron
        self.rate = sampling.RateBound(n.miner_query_rate)
        self.client = validator_client(wallet, config, llm)  # in process or its own
        self.weights_due = False
        self.cadence = Cadence(lambda: chain.block_seconds, n.resync_seconds)
        self.concurrency = Concurrency.from_config(
            config, llm.batch_capacity if llm is not None else None
        )
        # A backend that takes calls from any thread at once (vLLM: ``VLLM.share``) lets
        # reward scoring and several challenge builds run beside each other instead of
        # one after another on the model thread; the fluency judge's reads then join the
        # engine's batch from the reward threads.
        self.shared = shares_calls(llm)
        self._wake = asyncio.Event()  # the load changed: the loop may start a step
        self._miners_turn = asyncio.Lock()  # steps take miners one at a time, in order
        self._waiting_miners = 0
        self._starting = 0  # steps started whose draft has not reached the batcher yet
        self.consecutive_failed_steps = 0
        # Model work (generation, embeddings) always runs on this one thread: spread over
        # the default pool's threads, torch's CPU buffers landed in several malloc arenas
        # and RSS kept growing over long runs.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="models")
        self.worker_time = BusyTime()  # the model thread's time on any work: its busy share
        self._rewards_pool: ThreadPoolExecutor | None = None
        self._builds_pool: ThreadPoolExecutor | None = None
        self.rewards_time = BusyTime()  # the reward threads' time, summed over them
        if self.shared:
            self._rewards_pool = ThreadPoolExecutor(REWARD_THREADS, thread_name_prefix="rewards")
            self._builds_pool = ThreadPoolExecutor(BUILDS, thread_name_prefix="builds")
            self._switch_interval = sys.getswitchinterval()  # put back at close
            sys.setswitchinterval(SWITCH_INTERVAL_S)
        self.cooldown = sampling.Cooldown(config.neuron.unreachable_cooldown_s)
        self.labels: dict[int, str] = {}  # uid -> strategy, for the local subnet's scoreboard
        if self.shared:
            room = self.concurrency.room
            self.batcher = GenerationBatcher(
                self._run_build,
                llm,
                on_take=self._wake.set,
                builds=BUILDS,
                room=max(1, room - room // READS_SHARE),
            )
        else:
            self.batcher = GenerationBatcher(self.run_on_model_thread, llm, on_take=self._wake.set)
        # Work beside the loop (the organic service) adds its counters to every step's
        # event through these: a dashboard shows whether it keeps up.
        self.gauge_sources: list[Callable[[], dict]] = []
        self._tickets = 0  # steps prepared so far
        self._last_done = asyncio.Event()  # the newest prepared step's "committed" event
        self._last_done.set()
        self._in_flight = 0
        self._background: set[asyncio.Future] = set()
        self._stop = asyncio.Event()
        # Start-up stages (seconds since the process started, set by neurons/validator.py):
        # the first committed step's event carries them with startup/first_step, because a
        # restart costs an operator every second until that step.
        self.startup: dict[str, float] | None = None
        self.process_start: float | None = None

    async def run_on_model_thread(self, fn, *args):
        """``fn(*args)`` on the one model thread, after the work queued before it: every
        use of the models (generation, rewards) goes through here."""
        return await asyncio.get_running_loop().run_in_executor(
            self._worker, self.worker_time.run, fn, *args
        )

    async def run_rewards(self, fn, *args):
        """Reward scoring ``fn(*args)``: on a reward thread when the backend is shared
        (beside generation), else on the model thread after the work queued before it."""
        if self._rewards_pool is None:
            return await self.run_on_model_thread(fn, *args)
        return await asyncio.get_running_loop().run_in_executor(
            self._rewards_pool, self.rewards_time.run, fn, *args
        )

    async def _run_build(self, fn, *args):
        """A challenge build on a build thread (the backend is shared)."""
        return await asyncio.get_running_loop().run_in_executor(self._builds_pool, fn, *args)

    def share_generation(self, wrap: Callable[[LLM], LLM]) -> LLM | None:
        """Send the synthetic batcher's generate calls through ``wrap(self.llm)`` (the
        organic service adds its references to them); returns the wrapper, or None when
        this validator has no model."""
        if self.llm is None:
            return None
        self.batcher.llm = wrap(self.llm)
        return self.batcher.llm

    def eligible_miners(self) -> list[Neuron]:
        """The miners a query may go to now: not this validator, not a validator above
        ``--neuron.vpermit_tao_limit``, not cooling down after a refused connection."""
        n = self.config.neuron
        return sampling.candidates(
            self.metagraph, self.hotkey, n.vpermit_tao_limit, self.cooldown.cooling()
        )

    def apply_rewards(
        self, answered: list[QueryResult], rewards: list[float], alpha: float
    ) -> list[int]:
        """Rewards into the moving averages with ``alpha``; returns the uids they entered.
        A uid whose hotkey changed since it was queried (a resync while the query was in
        flight) is skipped: its reward belongs to the hotkey that answered."""
        current = [
            (r.uid, reward)
            for r, reward in zip(answered, rewards)
            if r.uid < len(self.state.hotkeys) and self.state.hotkeys[r.uid] == r.hotkey
        ]
        if alpha > 0:
            scoring.update_scores(
                self.state, [u for u, _ in current], [w for _, w in current], alpha
            )
        return [u for u, _ in current] if alpha > 0 else []

    # --- stages ----------------------------------------------------------------------

    def apply_metagraph(self, metagraph: list[Neuron]) -> None:
        self.metagraph = metagraph
        reset = scoring.sync_hotkeys(self.state, [n.hotkey for n in metagraph])
        if reset:
            log.info("hotkeys replaced at uids %s: their scores restart from 0", reset)

    def sample(self) -> list[Neuron]:
        """Miners for a step, among those under their query-rate bound."""
        n = self.config.neuron
        return sampling.select(
            self.metagraph,
            n.sample_size,
            self.rng,
            self.hotkey,
            n.vpermit_tao_limit,
            unique_coldkeys=n.query_unique_coldkeys,
            unique_ips=n.query_unique_ips,
            cooling=self.cooldown.cooling() | self.rate.busy(),
        )

    async def take_miners(self, timings: dict) -> list[Neuron]:
        """Wait until a full sample is under the rate bound, then sample and mark them
        queried. One step at a time, in the order the challenges came out."""
        start = time.perf_counter()
        self._waiting_miners += 1
        try:
            async with self._miners_turn:
                n = self.config.neuron
                pool = self.eligible_miners()
                await self._sleep(
                    self.rate.wait([c.uid for c in pool], min(n.sample_size, len(pool)))
                )
                neurons = self.sample()
                self.rate.record(x.uid for x in neurons)
        finally:
            self._waiting_miners -= 1
            self._wake.set()
        timings["timings/rate_wait"] = time.perf_counter() - start
        return neurons

    async def set_weights(self, timings: dict) -> dict:
        """Off the event loop: a slow chain must not stall the other steps' queries."""
        start = time.perf_counter()
        me = [n.uid for n in self.metagraph if n.hotkey == self.hotkey]
        uids, weights = scoring.weights_from_scores(self.state.scores, exclude=me)
        info: dict = {"weights/uids": len(uids)}
        try:
            result = await asyncio.to_thread(self.chain.set_weights, uids, weights)
        except ChainError as exc:
            result = None
            info["weights/error"] = str(exc)
        if result is not None and result.success:
            self.weights_due = False
            self.state.last_weights_step = self.state.step
            self.state.last_weights_block = result.block
            info["weights/set"] = 1
            info["weights/path"] = result.path
            try:  # the subnet's limit holds the next set back, not our epoch alone
                limit = await asyncio.to_thread(self.chain.weights_rate_limit)
            except ChainError as exc:
                log.warning("weights_rate_limit unknown (%s); assuming none", exc)
                limit = 0
            self.cadence.weights_set(limit)
        else:
            message = info.get("weights/error") or (result.message if result else "")
            wait = self.cadence.weights_refused(retry_after_blocks(message))
            log.warning("set_weights failed (%s); next attempt in %.0f s", message, wait)
            info["weights/set"] = 0
        timings["timings/weights"] = time.perf_counter() - start
        return info

    # --- one step: prepare (in order), complete (concurrently), commit (in order) -----

    async def prepare(self) -> Prepared | None:
        """Sync when due and draft a challenge; None: no metagraph yet."""
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        if not self.metagraph or self.cadence.sync_due():
            self.cadence.synced()
            start = time.perf_counter()
            try:
                self.apply_metagraph(await asyncio.to_thread(self.chain.metagraph))
            except ChainError as exc:
                log.warning("metagraph sync failed (%s); using the last one", exc)
            timings["timings/sync"] = time.perf_counter() - start
        if not self.metagraph:
            log.warning("no metagraph yet; step skipped")
            return None
        if not self.eligible_miners():
            # checked again after generation; here it saves writing a challenge for nobody
            log.warning("no miner to query (none registered, or all cooling down); step skipped")
            return None
        start = time.perf_counter()
        task, seed = self.sampler.sample()
        draft = task.draft(seed)
        timings["timings/sample"] = time.perf_counter() - start
        turn, self._last_done = self._last_done, asyncio.Event()
        self._tickets += 1
        self._starting += 1
        return Prepared(self._tickets, [], draft, timings, t0, turn, self._last_done)

    async def complete(self, prep: Prepared) -> StepResult | None:
        """Generate, query and reward; then wait for this step's turn and commit."""
        try:
            timings = prep.timings
            start = time.perf_counter()
            try:
                params = Sampling.from_config(self.config)
                self._starting -= 1  # build() queues the draft before it first waits
                challenge, prep.batch_size = await self.batcher.build(prep.draft, params)
            except LLMError as exc:
                log.error("challenge generation failed (%s); step skipped", exc)
                return None
            timings["timings/generate_challenge"] = time.perf_counter() - start

            prep.neurons = await self.take_miners(timings)
            if not prep.neurons:
                log.warning("no miner to query; step skipped")
                return None
            start = time.perf_counter()
            timings["query/started"] = time.time()  # for each miner's query rate
            request = PromptRequest(
                task=challenge.task,
                challenge_id=challenge.challenge_id,
                messages=challenge.messages,
                timeout=self.config.neuron.timeout,
                step=self.state.step + 1,
            )
            results = await self.client.query_many(prep.neurons, request)
            timings["timings/query"] = time.perf_counter() - start

            start = time.perf_counter()
            scored = await self.run_rewards(score_ok_answers, self.rewards, challenge, results)
            timings["timings/reward"] = time.perf_counter() - start
            timings.update({f"timings/{k}": v for k, v in scored.raw.timings.items()})

            start = time.perf_counter()
            await prep.turn.wait()
            timings["timings/wait_turn"] = time.perf_counter() - start
            return await self._commit(prep, challenge, results, scored)
        finally:
            if prep.turn.is_set():
                prep.done.set()
            else:  # gave up early: pass the turn on once the step before has committed
                self._spawn(_pass_turn(prep.turn, prep.done))

    async def _commit(
        self,
        prep: Prepared,
        challenge: Challenge,
        results: list[QueryResult],
        scored: ScoredAnswers,
    ) -> StepResult:
        """A step's results become the validator's, in step order: scores, weights when
        due, the saved state, then the event."""
        rewards = scored.rewards
        step, applied = self._record_scores(prep.neurons, results, rewards)
        weights_info = await self._weights_if_due(step, prep.timings)
        self._save(prep)
        gauges = {
            "forwards/in_flight": self._in_flight,
            "forwards/waiting_generation": self.batcher.queued,
            "forwards/waiting_miners": self._waiting_miners,
            "generate/batch_size": prep.batch_size,
            "generate/busy_s": self.batcher.busy_s,  # since start: the model thread's busy time
            "worker/busy_s": self.worker_time.seconds,  # the model thread's, rewards included
        }
        if self.shared:  # generation and rewards beside each other (``shares_calls``)
            gauges["rewards/busy_s"] = self.rewards_time.seconds  # summed over the reward threads
            gauges["engine/busy_s"] = getattr(self.llm, "engine_busy_s", 0.0)
        for source in self.gauge_sources:
            gauges.update(source())
        event = step_event(
            step, challenge, prep.neurons, results, rewards, scored.raw.components, gauges
        )
        # what the moving averages took from this step (``replay.replay_scores`` reads it)
        event["scores/applied"] = applied
        event["scores/alpha"] = self.config.neuron.moving_average_alpha
        event["scores/decay_alpha"] = self.config.neuron.decay_alpha
        event.update(prep.timings)
        event.update(weights_info)
        self._publish(event)
        return StepResult(step, [n.uid for n in prep.neurons], rewards, event)

    def _record_scores(
        self, neurons: list[Neuron], results: list[QueryResult], rewards: list[float]
    ) -> tuple[int, list[int]]:
        """Cool-downs, moving averages and decay of this step; returns its number and
        the uids whose rewards entered the averages."""
        for r in results:
            self.cooldown.record(r.uid, r.status)
        applied = self.apply_rewards(results, rewards, self.config.neuron.moving_average_alpha)
        scoring.decay_unsampled(
            self.state, [n.uid for n in neurons], self.config.neuron.decay_alpha
        )
        self.state.step += 1
        return self.state.step, applied

    async def _weights_if_due(self, step: int, timings: dict) -> dict:
        """Set weights every ``epoch_length`` steps (a refused call stays due) when the
        chain's cadence allows; the call's event fields, or none."""
        if step % self.config.neuron.epoch_length == 0:
            self.weights_due = True
        if self.weights_due and self.cadence.weights_allowed():
            return await self.set_weights(timings)
        return {}

    def _save(self, prep: Prepared) -> None:
        """Save the state atomically and hand freed memory back to the system."""
        start = time.perf_counter()
        state_io.save(self.state, self.state_path)
        compat.release_freed_memory()  # keeps RSS flat over long runs (see compat)
        prep.timings["timings/save"] = time.perf_counter() - start
        prep.timings["timings/step"] = time.perf_counter() - prep.started

    def _publish(self, event: dict) -> None:
        """The event to the log (the first one with the start-up timings) and the
        scoreboard."""
        if self.startup is not None and self.process_start is not None:
            event.update(startup_fields(self.startup, self.process_start, event["time"]))
            log.info(
                "first scored step %.1f s after start: %s",
                event["startup/first_step"],
                {k: round(v, 1) for k, v in self.startup.items()},
            )
            self.startup = None
        if self.telemetry is not None:
            self.telemetry.log(event)
            self.telemetry.scoreboard(
                event,
                self.state.scores,
                self.state.hotkeys,
                self.config.neuron.max_steps,
                labels=self.labels,
            )

    def _spawn(self, coro) -> asyncio.Future:
        """A task the loop holds on to (asyncio keeps only weak references)."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def step(self) -> StepResult | None:
        """One step on its own (prepare, then complete)."""
        prep = await self.prepare()
        return None if prep is None else await self.complete(prep)

    # --- the loop ----------------------------------------------------------------------

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake at once when a stop is requested."""
        if seconds <= 0 or self._stop.is_set():
            return
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """The loop until a stop or ``--neuron.max_steps``, then ``close``."""
        try:
            await self.run_steps()
        finally:
            await self.close()

    async def close(self) -> None:
        """Save the state and close the miners' connections: the last thing a run does,
        after whatever works beside the loop (organic exchanges) has finished."""
        state_io.save(self.state, self.state_path)
        await self.client.aclose()
        if self.shared:
            sys.setswitchinterval(self._switch_interval)

    async def run_steps(self) -> None:
        """Steps until a stop (SIGINT, SIGTERM, ``request_stop``) or max_steps; a step
        in flight at a stop is abandoned, uncommitted. The state is not saved here
        (``close``): work beside the loop may still move the scores."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self.request_stop)
            except (NotImplementedError, RuntimeError):  # not the main thread
                pass
        n = self.config.neuron
        in_flight: set[asyncio.Future] = set()
        stopper = asyncio.ensure_future(self._stop.wait())

        def steps_left() -> bool:
            return not n.max_steps or self.state.step + len(in_flight) < n.max_steps

        try:
            while not self._stop.is_set():
                if not steps_left() and not in_flight:
                    break  # max_steps reached
                backoff = False
                self._wake.clear()
                while steps_left() and self.concurrency.may_start(self._load(len(in_flight))):
                    prep = await self.prepare()
                    if prep is None or self._stop.is_set():
                        backoff = prep is None
                        break
                    in_flight.add(asyncio.ensure_future(self.complete(prep)))
                self._in_flight = len(in_flight)
                if not in_flight:  # nothing could be prepared (no metagraph): back off
                    await self._sleep(SKIP_BACKOFF_S)
                    continue
                waker = asyncio.ensure_future(self._wake.wait())
                done, _ = await asyncio.wait(
                    {*in_flight, stopper, waker}, return_when=asyncio.FIRST_COMPLETED
                )
                waker.cancel()
                for task in done - {stopper, waker}:
                    in_flight.discard(task)
                    backoff |= self._step_finished(task)
                if backoff:  # chain or model trouble: back off instead of spinning
                    await self._sleep(SKIP_BACKOFF_S)
                await self._sleep(n.step_interval)
        finally:
            stopper.cancel()
            for task in in_flight:  # stop requested mid-step: abandon what is in flight
                task.cancel()
            await asyncio.gather(*in_flight, *self._background, return_exceptions=True)

    def _load(self, in_flight: int) -> Load:
        return Load(in_flight, self._starting + self.batcher.queued, self._waiting_miners)

    def _step_finished(self, task: asyncio.Future) -> bool:
        """Account for a finished step; True when it was skipped or failed."""
        try:
            skipped = task.result() is None
        except Exception:  # noqa: BLE001 - one bad step must not end the loop
            self.consecutive_failed_steps += 1
            log.exception("a step failed; scores kept, continuing (step %d)", self.state.step)
            if self.consecutive_failed_steps >= MAX_CONSECUTIVE_FAILURES:
                raise
            return True
        self.consecutive_failed_steps = 0
        return skipped

    def scoreboard(self) -> list[tuple[int, str, str, float]]:
        """(uid, label, hotkey, score) best first."""
        rows = [
            (u, self.labels.get(u, ""), h, s)
            for u, (h, s) in enumerate(zip(self.state.hotkeys, self.state.scores))
        ]
        return sorted(rows, key=lambda r: -r[3])
