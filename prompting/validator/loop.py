"""The validator: sync, sample, challenge, query, reward, score, set weights, save, log.

One ``step()`` is one challenge sent to a sample of miners. Generation and reward
models run in worker threads so the event loop keeps serving the HTTP client.
Chain and generation faults are logged and survived: the step is skipped or the
weights retried next step, the scores are kept.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from prompting import compat
from prompting.chain import Chain, ChainError, Neuron
from prompting.config import TINY_MODEL
from prompting.llms.base import LLM, LLMError, Sampling
from prompting.network.client import OK, MinerClient
from prompting.protocol import PromptRequest
from prompting.rewards.stack import RewardStack
from prompting.tasks import TaskSampler, build_challenges
from prompting.telemetry import Telemetry
from prompting.validator import sampling, scoring
from prompting.validator import state as state_io

log = logging.getLogger(__name__)
STATE_FILE = "state.json"
SKIP_BACKOFF_S = 2.0  # pause after a skipped or failed step
MAX_CONSECUTIVE_FAILURES = 20  # then something is structurally wrong: stop and say so


@dataclass
class StepResult:
    step: int
    uids: list[int]
    rewards: list[float]
    event: dict = field(default_factory=dict)


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
        self.client = MinerClient(
            wallet, timeout=config.neuron.timeout, max_body_bytes=config.neuron.max_body_bytes
        )
        self.weights_due = False
        self.failed_steps = 0
        # Model work (generation, embeddings) always runs on this one thread: spread over
        # the default pool's threads, torch's CPU buffers landed in several malloc arenas
        # and RSS kept growing over long runs.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="models")
        self.cooldown = sampling.Cooldown(config.neuron.unreachable_cooldown_s)
        self.labels: dict[int, str] = {}  # uid -> strategy, for the local subnet's scoreboard
        self._stop = asyncio.Event()

    async def _in_worker(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._worker, fn, *args)

    # --- stages ----------------------------------------------------------------------

    def sync(self) -> None:
        self.metagraph = self.chain.metagraph()
        reset = scoring.sync_hotkeys(self.state, [n.hotkey for n in self.metagraph])
        if reset:
            log.info("hotkeys replaced at uids %s: their scores restart from 0", reset)

    def sample(self) -> list[Neuron]:
        n = self.config.neuron
        return sampling.select(
            self.metagraph,
            n.sample_size,
            self.rng,
            self.hotkey,
            n.vpermit_tao_limit,
            unique_coldkeys=n.query_unique_coldkeys,
            unique_ips=n.query_unique_ips,
            cooling=self.cooldown.cooling(),
        )

    def set_weights(self, timings: dict) -> dict:
        start = time.perf_counter()
        me = [n.uid for n in self.metagraph if n.hotkey == self.hotkey]
        uids, weights = scoring.weights_from_scores(self.state.scores, exclude=me)
        info: dict = {"weights/uids": len(uids)}
        try:
            result = self.chain.set_weights(uids, weights)
        except ChainError as exc:
            result = None
            info["weights/error"] = str(exc)
        if result is not None and result.success:
            self.weights_due = False
            self.state.last_weights_step = self.state.step
            self.state.last_weights_block = result.block
            info["weights/set"] = 1
        else:
            message = info.get("weights/error") or (result.message if result else "")
            log.warning("set_weights failed (%s); will retry next step", message)
            info["weights/set"] = 0
        timings["timings/weights"] = time.perf_counter() - start
        return info

    # --- one step ----------------------------------------------------------------------

    async def step(self) -> StepResult | None:
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        step = self.state.step + 1
        if not self.metagraph or (step - 1) % self.config.neuron.resync_every == 0:
            start = time.perf_counter()
            try:
                await asyncio.to_thread(self.sync)
            except ChainError as exc:
                log.warning("metagraph sync failed (%s); using the last one", exc)
            timings["timings/sync"] = time.perf_counter() - start
        if not self.metagraph:
            log.warning("no metagraph yet; step skipped")
            return None

        start = time.perf_counter()
        neurons = self.sample()
        task, seed = self.sampler.sample()
        draft = task.draft(seed)
        timings["timings/sample"] = time.perf_counter() - start

        start = time.perf_counter()
        try:
            params = Sampling.from_config(self.config)
            (challenge,) = await self._in_worker(build_challenges, [draft], self.llm, params)
        except LLMError as exc:
            log.error("challenge generation failed (%s); step skipped", exc)
            return None
        timings["timings/generate_challenge"] = time.perf_counter() - start

        start = time.perf_counter()
        request = PromptRequest(
            task=challenge.task,
            challenge_id=challenge.challenge_id,
            messages=challenge.messages,
            timeout=self.config.neuron.timeout,
            step=step,
        )
        results = await self.client.query_many(neurons, request)
        timings["timings/query"] = time.perf_counter() - start

        start = time.perf_counter()
        ok = [i for i, r in enumerate(results) if r.ok]
        scored = await self._in_worker(
            self.rewards.score, challenge, [results[i].completion for i in ok]
        )
        rewards = [0.0] * len(results)
        for j, i in enumerate(ok):
            rewards[i] = float(scored.totals[j])
        timings["timings/reward"] = time.perf_counter() - start
        timings.update({f"timings/{k}": v for k, v in scored.timings.items()})

        uids = [n.uid for n in neurons]
        for r in results:
            self.cooldown.record(r.uid, r.status)
        scoring.update_scores(self.state, uids, rewards, self.config.neuron.moving_average_alpha)
        scoring.decay_unsampled(self.state, uids, self.config.neuron.decay_alpha)
        self.state.step = step
        if step % self.config.neuron.epoch_length == 0:
            self.weights_due = True
        weights_info = self.set_weights(timings) if self.weights_due else {}

        start = time.perf_counter()
        state_io.save(self.state, self.state_path)
        compat.release_freed_memory()  # keeps RSS flat over long runs (see compat)
        timings["timings/save"] = time.perf_counter() - start
        timings["timings/step"] = time.perf_counter() - t0

        components = {}
        for name, values in scored.components.items():
            full = [None] * len(results)
            for j, i in enumerate(ok):
                full[i] = values[j]
            components[f"reward/{name}"] = full
        event = {
            "step": step,
            "time": time.time(),
            "task": challenge.task,
            "challenge_id": challenge.challenge_id,
            "source_id": challenge.source_id,
            "seed": challenge.seed,
            "challenge": challenge.prompt_text,
            "reference": challenge.reference,
            "uids": uids,
            "hotkeys": [n.hotkey for n in neurons],
            "completions": [r.completion for r in results],
            "statuses": [r.status for r in results],
            "latencies": [round(r.latency, 4) for r in results],
            "errors": [r.error for r in results],
            "rewards": rewards,
            "reward/mean": sum(rewards) / len(rewards) if rewards else 0.0,
            "responses/ok": sum(r.status == OK for r in results),
            **components,
            **timings,
            **weights_info,
        }
        if self.telemetry is not None:
            self.telemetry.log(event)
            self.telemetry.scoreboard(
                event,
                self.state.scores,
                self.state.hotkeys,
                self.config.neuron.max_steps,
                labels=self.labels,
            )
        return StepResult(step, uids, rewards, event)

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
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self.request_stop)
            except (NotImplementedError, RuntimeError):  # not the main thread
                pass
        max_steps = self.config.neuron.max_steps
        try:
            while not self._stop.is_set():
                if max_steps and self.state.step >= max_steps:
                    break
                step_task = asyncio.ensure_future(self.step())
                stopper = asyncio.ensure_future(self._stop.wait())
                await asyncio.wait({step_task, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if not step_task.done():  # stop requested mid-step: abandon it
                    step_task.cancel()
                    await asyncio.gather(step_task, return_exceptions=True)
                else:
                    stopper.cancel()
                    try:
                        skipped = step_task.result() is None
                    except Exception:  # noqa: BLE001 - one bad step must not end the loop
                        skipped = True
                        self.failed_steps += 1
                        log.exception(
                            "step %d failed; scores kept, continuing", self.state.step + 1
                        )
                        if self.failed_steps >= MAX_CONSECUTIVE_FAILURES:
                            raise
                    else:
                        self.failed_steps = 0
                    if skipped:  # chain or model trouble: back off instead of spinning
                        await self._sleep(SKIP_BACKOFF_S)
                await self._sleep(self.config.neuron.step_interval)
        finally:
            state_io.save(self.state, self.state_path)
            await self.client.aclose()

    def scoreboard(self) -> list[tuple[int, str, str, float]]:
        """(uid, label, hotkey, score) best first."""
        rows = [
            (u, self.labels.get(u, ""), h, s)
            for u, (h, s) in enumerate(zip(self.state.hotkeys, self.state.scores))
        ]
        return sorted(rows, key=lambda r: -r[3])
