"""Organic requests: the best miners race to serve the user, every answer is scored.

A request goes, streamed (docs/protocol.md 10), to the top ``--organic.miners`` miners
by moving-average score among those a query may go to (``Validator.eligible_miners``),
one per coldkey. The best ``--organic.race`` of them race: the first of them to send
text that is not blank is the one the user reads, each piece verified before it is
forwarded. A racer that ends without such text, or fails, drops out and the next miner
by score takes its place in the race (one that already sent text wins at once), and
each ``--organic.race_wait_s`` without text from any racer lets the next by score join,
so a blank answer is never served while another miner has text, and the user gets the
best miners' answer, not simply the fastest one's, without waiting on a slow one. A
non-streamed request gets the chosen miner's complete answer; if that miner fails
before finishing, the next in line serves it (a streamed user has already read text:
their stream ends with an error event).

Every miner's answer is still collected: when all have answered (or been cut off), the
exchange joins the scoring queue, where the validator's model writes a reference for
the user's messages inside the synthetic batcher's next generate call that has the token
budget for it (``batching.SharedBatches``; after ``--organic.reference_wait_s`` in a
call of its own), the reward stack scores every answer with generic_instruction's mix
(``reward_mix``), and the rewards enter the moving averages with ``alpha *
--organic.weight``. An exchange that is not scored is logged and counted with its
reason (``UNSCORED``). The event records hashed ids, statuses, rewards, who raced and
who served; the user's text, the reference and the answers only with
``--organic.log_text``.

Organic work never stalls the synthetic loop: admission is bounded (``queue.Gate``:
503 when full), the scoring queue is bounded, and a user who disconnects leaves the
miners' exchange and its scoring to finish on their own. At shutdown (``stop``) no
request is admitted, the exchanges in flight finish and are scored within
``--organic.drain_s``, and only then does the validator save its state.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time

from prompting.chain.base import Neuron
from prompting.network.client import QueryResult
from prompting.protocol import PromptRequest
from prompting.validator.loop import score_ok_answers

log = logging.getLogger(__name__)
ORGANIC_TASK = "organic"
# Organic answers are free text, scored as this task's answers are (docs/tasks.md),
# without the penalties listed here: a user may ask for their own text back.
SCORED_AS = "generic_instruction"
NOT_FOR_USERS = ("echo",)
# Why an exchange goes unscored, each with its counter (organic/unscored/<reason>):
UNSCORED = (
    "no_model",  # the validator runs without a model to write references (none loaded)
    "weight_zero",  # --organic.weight 0: logged, never scored
    "queue_full",  # the scoring queue (--organic.max_scoring_queue) was full
    "failed",  # the reference or the reward stack raised
    "shutdown",  # still in flight or waiting when --organic.drain_s ran out
)


class NoMiners(Exception):
    """No miner can be asked (no metagraph yet, or none serving an endpoint)."""


class Draining(Exception):
    """The validator is stopping: no new request is admitted."""


def hashed(text: str, salt: str) -> str:
    """A short id that names a user or request in events without revealing it."""
    return hashlib.sha256(f"{salt}\n{text}".encode()).hexdigest()[:16]


def reward_mix() -> tuple[dict[str, float], tuple[str, ...]]:
    """The rewards and penalties organic answers are scored with: ``SCORED_AS``'s own,
    less ``NOT_FOR_USERS``."""
    from prompting.registry import TASKS

    task = TASKS[SCORED_AS]
    return dict(task.rewards), tuple(p for p in task.penalties if p not in NOT_FOR_USERS)


class Exchange:
    """One organic request's fan-out: the race for the user and what gets scored.

    ``ranked``: the miners asked, best score first; the first ``race`` of them still in
    it race, one more each ``race_wait_s`` that passes with no text from any of them (a
    slow miner that keeps its stream alive does not hold the user to the deadline; it
    stays in the race and is scored). The user reads ``served`` (a uid, once chosen):
    streamed, through ``pieces`` (its texts, then its QueryResult); whole, through
    ``whole`` (its complete ok answer, or None when no miner has one)."""

    def __init__(
        self,
        request: PromptRequest,
        ranked: list[Neuron],
        race: int,
        key_id: str,
        stream: bool,
        race_wait_s: float = 0.0,
    ):
        self.request = request
        self.ranked = ranked
        self.race = race
        self.race_wait_s = race_wait_s  # 0: the race never widens
        self.widened = 0  # miners that joined the race because its racers had no text
        self.key_id = key_id  # hashed name of the API key
        self.stream = stream
        self.started = time.perf_counter()
        self.results: dict[int, QueryResult] = {}
        self.texts: dict[int, list[str]] = {n.uid: [] for n in ranked}  # verified deltas
        self.first_text: dict[int, float] = {}  # uid -> when its first non-blank text came
        self.out: set[int] = set()  # ended without text, or failed: out of the race
        self.served: int | None = None
        self.decided = asyncio.Event()  # a miner to serve, or none can be
        self.pieces: asyncio.Queue = asyncio.Queue()
        self.whole: asyncio.Future = asyncio.get_running_loop().create_future()
        self.finished = asyncio.Event()  # every miner has answered or been cut off
        self.user_left = False
        self.racers_at_start = self.racers()
        self._widening: asyncio.TimerHandle | None = None
        self._wait_for_text()

    def racers(self) -> list[int]:
        """The best ``race`` (plus those joined since) miners by score still in it."""
        return [n.uid for n in self.ranked if n.uid not in self.out][: self.race + self.widened]

    def _wait_for_text(self) -> None:
        if self.race_wait_s > 0 and self.race + self.widened < len(self.ranked):
            loop = asyncio.get_running_loop()
            self._widening = loop.call_later(self.race_wait_s, self._widen)

    def _widen(self) -> None:
        """No racer sent text within ``race_wait_s``: the next by score joins."""
        self._widening = None
        if self.decided.is_set():
            return
        self.widened += 1
        self._decide()
        if not self.decided.is_set():
            self._wait_for_text()

    def rank(self, uid: int | None) -> int | None:
        """1 for the best score among those asked."""
        ranks = [n.uid for n in self.ranked]
        return ranks.index(uid) + 1 if uid in ranks else None

    def answers(self) -> list[QueryResult]:
        """The miners' results, best score first (all of them once ``finished``)."""
        return [self.results[n.uid] for n in self.ranked if n.uid in self.results]

    async def on_delta(self, uid: int, text: str) -> None:
        if uid == self.served:
            if self.stream:
                self.pieces.put_nowait(text)
            return
        if self.stream and self.served is None:  # kept until the race is decided
            self.texts[uid].append(text)
        if text.strip() and uid not in self.first_text:
            self.first_text[uid] = time.perf_counter()
            self._decide()

    def answered(self, result: QueryResult) -> None:
        uid = result.uid
        self.results[uid] = result
        if not (result.ok and uid in self.first_text):
            self.out.add(uid)
        if uid == self.served:
            if self.stream:
                self.pieces.put_nowait(result)  # the end of the user's stream, ok or not
                return
            if result.ok:
                self._resolve(result)
                return
            self.served = None  # a whole answer's user has read nothing: next in line
            self.decided.clear()
            self._wait_for_text()
        self._decide()

    def close(self) -> None:
        """Every miner is done, or the exchange was cut short (the drain ran out):
        settle the race, and end what the user is reading."""
        self.finished.set()
        if self.served is not None and self.served not in self.results:  # cut short
            if not self.stream:
                self._resolve(None)
                return
            hotkey = next(n.hotkey for n in self.ranked if n.uid == self.served)
            cut = time.perf_counter() - self.started
            error = "cut off: the validator is stopping"
            self.pieces.put_nowait(QueryResult(self.served, hotkey, "timeout", cut, error=error))
            return
        self.out.update(n.uid for n in self.ranked if n.uid not in self.results)
        self._decide()

    def _decide(self) -> None:
        if self.served is not None:
            return
        racers = self.racers()
        ready = [uid for uid in racers if uid in self.first_text]
        if ready:
            self._serve(min(ready, key=self.first_text.__getitem__))
        elif not racers:  # every miner ended without text: the best blank answer, if any
            blank = [r.uid for r in self.answers() if r.ok]
            if blank:
                self._serve(blank[0])
            else:
                self._give_up()

    def _serve(self, uid: int) -> None:
        self.served = uid
        self._decided()
        result = self.results.get(uid)
        if self.stream:
            for text in self.texts.pop(uid, []):
                self.pieces.put_nowait(text)
            self.texts.clear()  # the others' texts are no one's to read
            if result is not None:
                self.pieces.put_nowait(result)
        elif result is not None and result.ok:
            self._resolve(result)

    def _give_up(self) -> None:
        self._decided()
        self._resolve(None)

    def _decided(self) -> None:
        self.decided.set()
        if self._widening is not None:
            self._widening.cancel()
            self._widening = None

    def _resolve(self, result: QueryResult | None) -> None:
        if not self.whole.done():
            self.whole.set_result(result)


class OrganicService:
    """Organic work beside a running ``Validator``, in its event loop, through its
    public surface: its metagraph and scores, ``eligible_miners``, its miner client,
    ``run_on_model_thread``, ``run_rewards``, ``share_generation``, ``score_ok_answers``
    with its reward stack, ``apply_rewards`` and its telemetry."""

    def __init__(self, validator, config):
        from prompting.organic.queue import Gate

        self.validator = validator
        self.settings = config.organic
        s = self.settings
        self.gate = Gate(s.max_concurrency, s.max_queue, s.timeout, s.max_rate)
        self.salt = secrets.token_hex(8)  # ids are comparable within one run only
        self.rewards, self.penalties = reward_mix()
        self._scoring: asyncio.Queue[Exchange] = asyncio.Queue(maxsize=s.max_scoring_queue)
        self._scorer: asyncio.Future | None = None
        self._fan_outs: set[asyncio.Future] = set()
        self.counts = {"served": 0, "scored": 0, **{f"unscored/{r}": 0 for r in UNSCORED}}
        self.draining = False
        validator.gauge_sources.append(self.gauges)
        # Organic references ride in the synthetic batcher's generate calls (batching.py).
        from prompting.organic.batching import SharedBatches

        self.batches = validator.share_generation(
            lambda llm: SharedBatches(llm, s.reference_batch, s.reference_tokens, s.reference_share)
        )

    def gauges(self) -> dict:
        """Counters since start for every synthetic step's event: whether scoring keeps
        up with what is served (on a CPU, references are written far slower than
        miners answer; the queue then fills and exchanges go unscored), and why not."""
        return {
            **{f"organic/{name}": count for name, count in self.counts.items()},
            "organic/scoring_queue": self._scoring.qsize(),
            # model seconds the references took (bounded by --organic.reference_share)
            "organic/reference_s": None if self.batches is None else self.batches.organic_s,
        }

    # --- the miners --------------------------------------------------------------------

    def pick_miners(self) -> list[Neuron]:
        """The top ``--organic.miners`` by moving-average score among the eligible ones
        that serve an endpoint, one per coldkey, best first. Raises NoMiners."""
        scores = self.validator.state.scores

        def score(n: Neuron) -> float:
            return scores[n.uid] if n.uid < len(scores) else 0.0

        picked, coldkeys = [], set()
        for n in sorted(self.validator.eligible_miners(), key=lambda n: (-score(n), n.uid)):
            if not n.endpoint or n.coldkey in coldkeys:
                continue
            coldkeys.add(n.coldkey)
            picked.append(n)
            if len(picked) == self.settings.miners:
                break
        if not picked:
            raise NoMiners("no miner serves an endpoint yet")
        return picked

    def serving(self) -> int:
        """How many miners a request could go to now (0 while draining)."""
        if self.draining:
            return 0
        return sum(bool(n.endpoint) for n in self.validator.eligible_miners())

    # --- one request -------------------------------------------------------------------

    async def open(
        self,
        messages: list[dict],
        key_name: str,
        stream: bool,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> Exchange:
        """Admit the request (a slot of the gate, held until every miner has answered)
        and fan it out. Raises Draining, queue.Full, NoMiners, or ValueError when the
        request does not fit the miner protocol."""
        if self.draining:
            raise Draining("the validator is stopping")
        await self.gate.acquire()
        try:
            neurons = self.pick_miners()
            request_id = secrets.token_hex(16)
            request = PromptRequest(
                task=ORGANIC_TASK,
                challenge_id=f"{ORGANIC_TASK}:{hashed(request_id, self.salt)}",
                messages=messages,
                timeout=self.settings.timeout,
                step=self.validator.state.step,
                max_tokens=max_tokens,
                temperature=temperature,
            )
        except BaseException:
            self.gate.release()
            raise
        race = min(self.settings.race, len(neurons))
        key_id = hashed(key_name, self.salt)
        exchange = Exchange(request, neurons, race, key_id, stream, self.settings.race_wait_s)
        task = asyncio.ensure_future(self._fan_out(exchange))
        self._fan_outs.add(task)
        task.add_done_callback(self._fan_outs.discard)
        return exchange

    async def _fan_out(self, ex: Exchange) -> None:
        client = self.validator.client

        async def one(n: Neuron) -> None:
            ex.answered(
                await client.query_stream(
                    n,
                    ex.request,
                    timeout=self.settings.timeout,
                    stall_s=self.settings.stall_s,
                    on_delta=ex.on_delta,
                )
            )

        try:
            await asyncio.gather(*(one(n) for n in ex.ranked))
        except asyncio.CancelledError:  # the drain ran out: logged, never scored
            self._unscored(ex, "shutdown")
            raise
        finally:
            ex.close()
            self.gate.release()
        for r in ex.answers():
            self.validator.cooldown.record(r.uid, r.status)
        self.counts["served"] += 1
        self._to_scoring(ex)

    # --- scoring -----------------------------------------------------------------------

    def _to_scoring(self, ex: Exchange) -> None:
        reason = None
        if self.validator.llm is None:
            reason = "no_model"
        elif self.settings.weight <= 0:
            reason = "weight_zero"
        elif self._scoring.full():
            reason = "queue_full"
            log.warning(
                "organic scoring queue full (%d): an exchange is not scored",
                self._scoring.maxsize,
            )
        if reason is not None:
            self._unscored(ex, reason)
            return
        self._scoring.put_nowait(ex)
        if self._scorer is None or self._scorer.done():
            self._scorer = asyncio.ensure_future(self._score_loop())

    async def _score_loop(self) -> None:
        """Score whatever exchanges are waiting, together: one reference batch each turn."""
        while not self._scoring.empty():
            batch = []  # a bounded batch: a synthetic batch waits behind at most this one
            while not self._scoring.empty() and len(batch) < self.settings.reference_batch:
                batch.append(self._scoring.get_nowait())
            try:
                await self._score(batch)
            except asyncio.CancelledError:  # the drain ran out
                while not self._scoring.empty():
                    batch.append(self._scoring.get_nowait())
                for ex in batch:
                    self._unscored(ex, "shutdown")
                raise
            except Exception:  # noqa: BLE001 - organic scoring must not end the validator
                log.exception("organic scoring failed for %d exchanges", len(batch))
                for ex in batch:
                    self._unscored(ex, "failed")

    async def _references(self, batch: list[Exchange]) -> list[str]:
        from prompting.llms.base import Sampling

        v = self.validator
        params = Sampling.from_config(
            v.config, max_tokens=min(v.config.neuron.max_tokens, self.settings.reference_tokens)
        )
        prompts = [[m.model_dump() for m in ex.request.messages] for ex in batch]

        async def own_call(left: list[list[dict]]) -> list[str]:
            generate = self.batches.generate_own_call
            return [g.text for g in await v.run_on_model_thread(generate, left, params)]

        return await self.batches.references(prompts, self.settings.reference_wait_s, own_call)

    async def _score(self, batch: list[Exchange]) -> None:
        from prompting.tasks.base import Challenge

        start = time.perf_counter()
        references = await self._references(batch)
        reference_s = time.perf_counter() - start
        challenges = [
            Challenge(
                task=ORGANIC_TASK,
                source_id=ex.request.challenge_id.split(":", 1)[1],
                seed=0,
                messages=[m.model_dump() for m in ex.request.messages],
                reference=reference,
                rewards=dict(self.rewards),
                penalties=self.penalties,
            )
            for ex, reference in zip(batch, references)
        ]
        stack = self.validator.rewards

        # One call for the whole batch, where the validator scores its own steps
        # (``run_rewards``: the model thread, or a reward thread beside a shared engine):
        # a call per exchange queued each behind a synthetic generate call (on a CPU, one
        # exchange scored per ~20 s).
        def score_all() -> list:
            return [score_ok_answers(stack, c, ex.answers()) for c, ex in zip(challenges, batch)]

        scored = await self.validator.run_rewards(score_all)
        alpha = min(1.0, self.validator.config.neuron.moving_average_alpha * self.settings.weight)
        for ex, reference, verdict in zip(batch, references, scored):
            applied = self.validator.apply_rewards(ex.answers(), verdict.rewards, alpha)
            self.counts["scored"] += 1
            self._log(
                ex,
                verdict.rewards,
                {
                    "scores/applied": applied,
                    "scores/alpha": alpha,
                    "timings/organic_reference": reference_s,
                    "organic/reference_batch": len(batch),
                    **{f"reward/{name}": values for name, values in verdict.components.items()},
                },
                reference,
            )

    def _unscored(self, ex: Exchange, reason: str) -> None:
        self.counts[f"unscored/{reason}"] += 1
        self._log(ex, [None] * len(ex.answers()), {"organic/unscored": reason}, None)

    def _log(self, ex: Exchange, rewards: list, fields: dict, reference: str | None) -> None:
        telemetry = self.validator.telemetry
        if telemetry is None:
            return
        results, b = ex.answers(), self.batches
        event = {
            "kind": "organic",
            "step": self.validator.state.step,
            "time": time.time(),
            "task": ORGANIC_TASK,
            "organic/id": ex.request.challenge_id,
            "organic/key": ex.key_id,
            "organic/stream": ex.stream,
            # the race: the best k by score raced; who served, and their rank by score
            "organic/race": ex.race,
            "organic/racers": ex.racers_at_start,
            "organic/race_widened": ex.widened,  # joined: the racers had no text in time
            "organic/served_uid": ex.served,
            "organic/served_rank": ex.rank(ex.served),
            "organic/scored": reference is not None,
            "organic/weight": self.settings.weight,
            "organic/references_shared": None if b is None else b.in_shared_calls,
            # references written in a call of their own (the key keeps its first name)
            "organic/references_alone": None if b is None else b.in_own_calls,
            "uids": [r.uid for r in results],
            "hotkeys": [r.hotkey for r in results],
            "statuses": [r.status for r in results],
            "errors": [r.error for r in results],
            "rewards": rewards,
            "latencies": [round(r.latency, 4) for r in results],
            "ttft": [None if r.ttft is None else round(r.ttft, 4) for r in results],
            "chunks": [len(r.chunk_times) for r in results],
            "timings/organic_total": time.perf_counter() - ex.started,
            "user_left": ex.user_left,
            **fields,
        }
        if self.settings.log_text:
            event["messages"] = [m.model_dump() for m in ex.request.messages]
            event["reference"] = reference
            event["completions"] = [r.completion for r in results]
        telemetry.log(event)

    # --- shutdown ----------------------------------------------------------------------

    async def settle(self, bound_s: float) -> bool:
        """Wait until no exchange is in flight and nothing waits to be scored, at most
        ``bound_s`` seconds; whether that came."""
        deadline = time.monotonic() + bound_s
        while True:
            busy = [t for t in (*self._fan_outs, self._scorer) if t is not None and not t.done()]
            left = deadline - time.monotonic()
            if not busy or left <= 0:
                return not busy
            await asyncio.wait(busy, timeout=left)

    async def stop(self, bound_s: float) -> None:
        """Stop admitting, let the exchanges in flight finish and everything waiting be
        scored, within ``bound_s`` seconds; what is left then is cancelled, logged and
        counted as unscored for ``shutdown``. The validator saves its state after this."""
        self.draining = True
        if self.batches is not None:
            self.batches.stop_waiting()  # no synthetic call is coming to ride in
        if await self.settle(bound_s):
            return
        left = [t for t in (*self._fan_outs, self._scorer) if t is not None and not t.done()]
        log.warning("organic: %d tasks still running after %g s; cut off", len(left), bound_s)
        for task in left:
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)
