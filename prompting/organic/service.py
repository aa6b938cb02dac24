"""Organic requests: fan out to the best miners, hand the user the first verified
answer, score every answer.

A request goes, streamed (docs/protocol.md 10), to the top ``--organic.miners`` miners
by moving-average score, one per coldkey. The first miner to send a verified piece of
text is the one the user reads, piece by piece, each piece verified before it is
forwarded; a non-streamed request gets the first complete verified answer. Every
other miner's answer is still collected: when all have answered (or been cut off),
the exchange joins the scoring queue, where the validator's model writes a reference
for the user's messages, inside the synthetic batcher's next generate call that has the
token budget for it (``batching.SharedBatches``; after ``--organic.reference_wait_s``
in a call of its own), the reward stack
scores every answer, and the rewards enter the moving averages with
``alpha * --organic.weight``. The event records hashed ids, statuses, rewards and
timings; the user's text, the reference and the answers only with
``--organic.log_text``.

Organic work never stalls the synthetic loop: admission is bounded (``queue.Gate``:
503 when full), the scoring queue is bounded (an exchange that finds it full is not
scored, and counted), and a user who disconnects leaves the miners' exchange and its
scoring to finish on their own.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import secrets
import time
from dataclasses import dataclass, field

from prompting.chain.base import Neuron
from prompting.network.client import QueryResult
from prompting.protocol import PromptRequest
from prompting.validator import sampling, scoring

log = logging.getLogger(__name__)
ORGANIC_TASK = "organic"
# Organic answers are free text: scored like generic_instruction (README, "Tasks"), but
# without the echo penalty (a user may ask for their own text back, reworded or not).
ORGANIC_REWARDS = {"relevance": 0.6, "rouge": 0.4}
ORGANIC_PENALTIES = ("empty", "too_long", "degenerate", "refusal", "diversity")


class NoMiners(Exception):
    """No miner can be asked (no metagraph yet, or none serving an endpoint)."""


def hashed(text: str, salt: str) -> str:
    """A short id that names a user or request in events without revealing it."""
    return hashlib.sha256(f"{salt}\n{text}".encode()).hexdigest()[:16]


@dataclass
class Exchange:
    """One organic request's fan-out: what the user reads and what gets scored."""

    request: PromptRequest
    neurons: list[Neuron]
    key_id: str  # hashed name of the API key
    started: float = field(default_factory=time.perf_counter)
    winner: int | None = None  # uid whose text the user reads
    results: dict[int, QueryResult] = field(default_factory=dict)
    pieces: asyncio.Queue = field(
        default_factory=asyncio.Queue
    )  # the winner's: str, then its QueryResult
    chosen: asyncio.Event = field(default_factory=asyncio.Event)  # a winner, or all done
    first_ok: asyncio.Future | None = None  # the first complete verified answer
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    user_left: bool = False

    async def on_delta(self, uid: int, text: str) -> None:
        if self.winner is None and text:
            self.winner = uid
            self.chosen.set()
        if uid == self.winner:
            self.pieces.put_nowait(text)

    def answered(self, result: QueryResult) -> None:
        self.results[result.uid] = result
        if result.ok and self.first_ok is not None and not self.first_ok.done():
            self.first_ok.set_result(result)
        if result.uid == self.winner:
            self.pieces.put_nowait(result)  # the end of the user's stream, ok or not

    def first_answer(self) -> QueryResult | None:
        """When all are done and no miner sent text: the first ok (empty) answer."""
        done = [r for r in self.results.values() if r.ok]
        return min(done, key=lambda r: r.latency) if done else None


class OrganicService:
    """Organic work beside a running ``Validator`` (its metagraph, scores, client,
    model thread, reward stack and telemetry), in the validator's event loop."""

    def __init__(self, validator, config):
        from prompting.organic.queue import Gate

        self.v = validator
        self.o = config.organic
        self.gate = Gate(self.o.max_concurrency, self.o.max_queue, self.o.timeout, self.o.max_rate)
        self.salt = secrets.token_hex(8)  # ids are comparable within one run only
        self._scoring: asyncio.Queue[Exchange] = asyncio.Queue(maxsize=self.o.max_scoring_queue)
        self._scorer: asyncio.Future | None = None
        self._tasks: set[asyncio.Future] = set()
        self.counts = {"served": 0, "scored": 0, "not_scored_queue_full": 0, "failed": 0}
        validator.gauge_sources.append(self.gauges)
        # Organic references ride in the synthetic batcher's generate calls (batching.py).
        self.shared = None
        batcher = getattr(validator, "batcher", None)
        if validator.llm is not None and getattr(batcher, "_llm", None) is validator.llm:
            from prompting.organic.batching import SharedBatches

            self.shared = SharedBatches(
                validator.llm,
                self.o.reference_batch,
                self.o.reference_tokens,
                self.o.reference_share,
            )
            batcher._llm = self.shared
        elif validator.llm is not None:
            log.warning(
                "organic: the synthetic batcher is not the one expected; organic "
                "references get generate calls of their own"
            )

    def gauges(self) -> dict:
        """Counters since start for every synthetic step's event: whether scoring keeps
        up with what is served (on a CPU, references are written far slower than
        miners answer; the queue then fills and exchanges go unscored)."""
        return {
            **{f"organic/{name}": count for name, count in self.counts.items()},
            "organic/scoring_queue": self._scoring.qsize(),
            # model seconds the references took (bounded by --organic.reference_share)
            "organic/reference_s": None if self.shared is None else self.shared.organic_s,
        }

    # --- the miners --------------------------------------------------------------------

    def pick_miners(self) -> list[Neuron]:
        """The top miners by moving-average score, one per coldkey, that serve an
        endpoint, are not cooling down after a refused connection, and are not us."""
        v = self.v
        pool = sampling.candidates(
            v.metagraph, v.hotkey, v.config.neuron.vpermit_tao_limit, v.cooldown.cooling()
        )
        scores = v.state.scores

        def score(n: Neuron) -> float:
            return scores[n.uid] if n.uid < len(scores) else 0.0

        picked, coldkeys = [], set()
        for n in sorted(pool, key=lambda n: (-score(n), n.uid)):
            if not n.endpoint or n.coldkey in coldkeys:
                continue
            coldkeys.add(n.coldkey)
            picked.append(n)
            if len(picked) == self.o.miners:
                break
        if not picked:
            raise NoMiners("no miner serves an endpoint yet")
        return picked

    # --- one request -------------------------------------------------------------------

    def start(self, messages: list[dict], key_name: str, max_tokens, temperature) -> Exchange:
        """Fan the request out (the caller holds a gate slot, released when every miner
        has answered). Raises NoMiners."""
        neurons = self.pick_miners()
        request_id = secrets.token_hex(16)
        request = PromptRequest(
            task=ORGANIC_TASK,
            challenge_id=f"{ORGANIC_TASK}:{hashed(request_id, self.salt)}",
            messages=messages,
            timeout=self.o.timeout,
            step=self.v.state.step,
            max_tokens=max_tokens,
            temperature=temperature,
        )
        exchange = Exchange(request, neurons, hashed(key_name, self.salt))
        exchange.first_ok = asyncio.get_running_loop().create_future()
        self._spawn(self._fan_out(exchange))
        return exchange

    async def _fan_out(self, ex: Exchange) -> None:
        async def one(n: Neuron) -> None:
            result = await self.v.client.query_stream(
                n, ex.request, timeout=self.o.timeout, stall_s=self.o.stall_s, on_delta=ex.on_delta
            )
            ex.answered(result)

        try:
            await asyncio.gather(*(one(n) for n in ex.neurons))
        finally:
            ex.chosen.set()
            if ex.first_ok is not None and not ex.first_ok.done():
                ex.first_ok.set_result(None)
            ex.finished.set()
            self.gate.release()
        for r in ex.results.values():
            self.v.cooldown.record(r.uid, r.status)
        self.counts["served"] += 1
        if self._scoring.full():
            self.counts["not_scored_queue_full"] += 1
            log.warning(
                "organic scoring queue full (%d): an exchange is not scored", self._scoring.maxsize
            )
            results = [ex.results[n.uid] for n in ex.neurons if n.uid in ex.results]
            self._log(ex, results, [None] * len(results), {}, None, 0.0, 0)
            return
        self._scoring.put_nowait(ex)
        if self._scorer is None or self._scorer.done():
            self._scorer = self._spawn(self._score_loop())

    # --- scoring -----------------------------------------------------------------------

    async def _score_loop(self) -> None:
        """Score whatever exchanges are waiting, together: one reference batch each turn."""
        while not self._scoring.empty():
            batch = []  # a bounded batch: a synthetic batch waits behind at most this one
            while not self._scoring.empty() and len(batch) < self.o.reference_batch:
                batch.append(self._scoring.get_nowait())
            try:
                await self._score(batch)
            except Exception:  # noqa: BLE001 - organic scoring must not end the validator
                self.counts["failed"] += len(batch)
                log.exception("organic scoring failed for %d exchanges", len(batch))

    async def _references(self, batch: list[Exchange]) -> list[str] | None:
        llm = self.v.llm
        if llm is None:
            return None
        from prompting.llms.base import Sampling

        n = self.v.config.neuron
        params = Sampling.from_config(
            self.v.config, max_tokens=min(n.max_tokens, self.o.reference_tokens)
        )
        prompts = [[m.model_dump() for m in ex.request.messages] for ex in batch]

        async def alone(asks: list[list[dict]]) -> list[str]:
            generate = llm.generate if self.shared is None else self.shared.generate_alone
            generations = await self.v._in_worker(generate, asks, params)
            return [g.text for g in generations]

        if self.shared is None:
            return await alone(prompts)
        return await self.shared.references(prompts, self.o.reference_wait_s, alone)

    async def _score(self, batch: list[Exchange]) -> None:
        from prompting.tasks.base import Challenge

        start = time.perf_counter()
        references = await self._references(batch)
        reference_s = time.perf_counter() - start
        results = [[ex.results[n.uid] for n in ex.neurons if n.uid in ex.results] for ex in batch]
        answered = [[j for j, r in enumerate(rs) if r.ok] for rs in results]
        asks = []  # (challenge, completions, latencies) of each exchange with a reference
        for i, ex in enumerate(batch):
            if references is not None and references[i] is not None:
                challenge = Challenge(
                    task=ORGANIC_TASK,
                    source_id=ex.request.challenge_id.split(":", 1)[1],
                    seed=0,
                    messages=[m.model_dump() for m in ex.request.messages],
                    reference=references[i],
                    rewards=dict(ORGANIC_REWARDS),
                    penalties=ORGANIC_PENALTIES,
                )
                rs, ok = results[i], answered[i]
                asks.append(
                    (challenge, [rs[j].completion for j in ok], [rs[j].latency for j in ok])
                )

        # One turn of the model thread for the whole batch: a call per exchange queued
        # each behind a synthetic generate call (on a CPU, one exchange scored per ~20 s).
        def score_all() -> list:
            return [self.v.rewards.score(*ask) for ask in asks]

        all_scored = iter(await self.v._in_worker(score_all) if asks else [])
        for i, ex in enumerate(batch):
            rewards = [0.0] * len(results[i])
            components: dict[str, list] = {}
            reference = references[i] if references is not None else None
            if reference is not None:
                scored, ok = next(all_scored), answered[i]
                for k, j in enumerate(ok):
                    rewards[j] = float(scored.totals[k])
                for name, values in scored.components.items():
                    full = [None] * len(results[i])
                    for k, j in enumerate(ok):
                        full[j] = values[k]
                    components[f"reward/{name}"] = full
                self._apply(results[i], rewards)
                self.counts["scored"] += 1
            self._log(ex, results[i], rewards, components, reference, reference_s, len(batch))

    def _apply(self, results: list[QueryResult], rewards: list[float]) -> None:
        """Into the moving averages, with ``alpha * weight``; a uid whose hotkey changed
        since the query is skipped (its reward belongs to the old hotkey)."""
        state = self.v.state
        alpha = min(1.0, self.v.config.neuron.moving_average_alpha * self.o.weight)
        if alpha <= 0:
            return
        current = [
            (r.uid, reward)
            for r, reward in zip(results, rewards)
            if r.uid < len(state.hotkeys) and state.hotkeys[r.uid] == r.hotkey
        ]
        scoring.update_scores(state, [u for u, _ in current], [w for _, w in current], alpha)

    def _log(self, ex, results, rewards, components, reference, reference_s, batch) -> None:
        telemetry = self.v.telemetry
        if telemetry is None:
            return
        event = {
            "kind": "organic",
            "step": self.v.state.step,
            "time": time.time(),
            "task": ORGANIC_TASK,
            "organic/id": ex.request.challenge_id,
            "organic/key": ex.key_id,
            "organic/winner": ex.winner,
            "organic/scored": reference is not None,
            "organic/weight": self.o.weight,
            "organic/reference_batch": batch,
            "organic/references_shared": None if self.shared is None else self.shared.shared,
            "organic/references_alone": None if self.shared is None else self.shared.alone,
            "uids": [r.uid for r in results],
            "hotkeys": [r.hotkey for r in results],
            "statuses": [r.status for r in results],
            "errors": [r.error for r in results],
            "rewards": rewards,
            "latencies": [round(r.latency, 4) for r in results],
            "ttft": [None if r.ttft is None else round(r.ttft, 4) for r in results],
            "chunks": [len(r.chunk_times) for r in results],
            "timings/organic_total": time.perf_counter() - ex.started,
            "timings/organic_reference": reference_s,
            "user_left": ex.user_left,
            **components,
        }
        if self.o.log_text:
            event["messages"] = [m.model_dump() for m in ex.request.messages]
            event["reference"] = reference
            event["completions"] = [r.completion for r in results]
        telemetry.log(event)

    def _spawn(self, coro) -> asyncio.Future:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def drain(self, timeout: float) -> None:
        """Let exchanges and scoring in progress finish (at most ``timeout`` s)."""
        deadline = time.monotonic() + timeout
        while self._tasks and time.monotonic() < deadline:
            await asyncio.wait(set(self._tasks), timeout=max(0.0, deadline - time.monotonic()))
        for task in list(self._tasks):
            task.cancel()


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]
