"""Organic references written in the same generate calls as synthetic challenges.

``SharedBatches`` stands in for the validator's LLM where its synthetic batcher calls
it: each ``generate`` call of a challenge stage also carries the organic references
waiting at that moment (up to ``max_extra``), when the stage's token budget holds a
reference (``--organic.reference_tokens``). One call then serves both, on the one model
thread, instead of an organic call queued between synthetic ones. A reference that no
synthetic call has taken within ``wait_s`` (the synthetic steps may be drafting tasks
that need no model, such as math) is written in a call of its own, with the others
left over, so no reference is dropped here (the service's bounded queue may).

At shutdown (``stop_waiting``) no synthetic call is coming: the references still waiting
are written at once, in a call of their own, whatever the share.

The references' part of the model's time is bounded (``share`` of the time since
start): a shared call's time is split between its prompts by count, a call of their own
counts whole, and past the bound no reference rides or gets a call of its own until
time has brought the share back under it. On a CPU, where generation is the bottleneck
and each prompt costs about as much as another, riders slowed the synthetic steps by a
quarter (benchmark_organic, SmolLM2). On a GPU a batch costs little more than one
prompt, so the count split overcharges the references: raise the share there.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass
class _Waiting:
    """A reference's prompt waiting for a generate call, and the future its text goes to
    (``taken`` once a synthetic call carries it)."""

    messages: list[dict]
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    taken: bool = field(default=False)


def _resolve(future: asyncio.Future, text: str | None, exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(text)


class SharedBatches:
    """The validator's LLM, with organic prompts riding along in its generate calls.
    Every other attribute is the wrapped LLM's."""

    def __init__(self, llm, max_extra: int, min_tokens: int, share: float = 0.0):
        self.inner = llm
        self.max_extra = max_extra
        self.min_tokens = min_tokens
        self.share = share  # 0: no bound
        self._pending: list[_Waiting] = []
        self._lock = threading.Lock()
        self.in_shared_calls = 0  # references written inside a synthetic call
        self.in_own_calls = 0  # references written in a call of their own
        self.started = time.monotonic()
        self.organic_s = 0.0  # model time the references took
        self._stopping: asyncio.Event | None = None  # made in the event loop, when first used

    def stop_waiting(self) -> None:
        """The synthetic loop has stopped: waiting references go in calls of their own."""
        self._stop_event().set()

    def _stop_event(self) -> asyncio.Event:
        if self._stopping is None:
            self._stopping = asyncio.Event()
        return self._stopping

    async def _wait(self, waiting: list[_Waiting], timeout: float) -> None:
        """Until every reference is written, ``timeout`` passes, or ``stop_waiting``."""
        answered = asyncio.ensure_future(asyncio.wait([w.future for w in waiting]))
        stopping = asyncio.ensure_future(self._stop_event().wait())
        try:
            await asyncio.wait(
                [answered, stopping], timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            answered.cancel()
            stopping.cancel()

    def over_share(self) -> bool:
        return self.share > 0 and self.organic_s > self.share * (time.monotonic() - self.started)

    def _charge(self, seconds: float, organic: int, total: int) -> None:
        with self._lock:
            self.organic_s += seconds * organic / total

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def generate(self, prompts, sampling=None):
        """The synthetic call, on the model thread, with waiting organic prompts added
        at its end; the caller gets its own generations back, in order."""
        budget = getattr(sampling, "max_tokens", None)
        with self._lock:
            if (budget is not None and budget < self.min_tokens) or self.over_share():
                riders = []
            else:
                riders = self._pending[: self.max_extra]
                del self._pending[: len(riders)]
                for rider in riders:
                    rider.taken = True
        if not riders:
            return self.inner.generate(prompts, sampling)
        start = time.perf_counter()
        try:
            generations = self.inner.generate([*prompts, *(a.messages for a in riders)], sampling)
        except BaseException as exc:
            for rider in riders:
                rider.loop.call_soon_threadsafe(_resolve, rider.future, None, exc)
            raise
        self._charge(time.perf_counter() - start, len(riders), len(prompts) + len(riders))
        mine = generations[len(prompts) :]
        for rider, generation in zip(riders, mine):
            rider.loop.call_soon_threadsafe(_resolve, rider.future, generation.text, None)
        self.in_shared_calls += len(riders)
        return generations[: len(prompts)]

    def generate_own_call(self, prompts, sampling=None):
        """References in a call of their own (on the model thread), charged whole."""
        start = time.perf_counter()
        try:
            return self.inner.generate(prompts, sampling)
        finally:
            self._charge(time.perf_counter() - start, 1, 1)

    async def references(
        self,
        prompts: list[list[dict]],
        wait_s: float,
        own_call: Callable[[list[list[dict]]], Awaitable[list[str]]],
    ) -> list[str]:
        """A reference per prompt: from the next synthetic calls within ``wait_s``, the
        rest from ``own_call`` (one call of their own, on the model thread: the caller's
        ``generate_own_call``) once the share allows it. Raises the generation's error."""
        loop = asyncio.get_running_loop()
        mine = [_Waiting(p, loop.create_future(), loop) for p in prompts]
        with self._lock:
            self._pending.extend(mine)
        if not self._stop_event().is_set():
            await self._wait(mine, wait_s)
        while (
            self.over_share() and not self._stop_event().is_set() and not all(w.taken for w in mine)
        ):
            await self._wait([w for w in mine if not w.taken], max(wait_s, 1.0))
        with self._lock:
            left = [w for w in mine if not w.taken]
            self._pending = [w for w in self._pending if w not in left]
        if left:
            texts = await own_call([w.messages for w in left])
            for waiting, text in zip(left, texts):
                _resolve(waiting.future, text, None)
            self.in_own_calls += len(left)
        return [await w.future for w in mine]
