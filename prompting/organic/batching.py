"""Organic references written in the same generate calls as synthetic challenges.

``SharedBatches`` stands in for the validator's LLM where its synthetic batcher calls
it: each ``generate`` call of a challenge stage also carries the organic references
waiting at that moment (up to ``max_extra``), when the stage's token budget holds a
reference (``--organic.reference_tokens``). One call then serves both, on the one model
thread, instead of an organic call queued between synthetic ones. A reference that no
synthetic call has taken within ``wait_s`` (the synthetic steps may be drafting tasks
that need no model, such as math) is written in a call of its own, with the others
left over, so scoring is delayed, never dropped.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass
class _Ask:
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

    def __init__(self, llm, max_extra: int, min_tokens: int):
        self.inner = llm
        self.max_extra = max_extra
        self.min_tokens = min_tokens
        self._pending: list[_Ask] = []
        self._lock = threading.Lock()
        self.shared = 0  # references written inside a synthetic call
        self.alone = 0  # references written in a call of their own

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def generate(self, prompts, sampling=None):
        """The synthetic call, on the model thread, with waiting organic prompts added
        at its end; the caller gets its own generations back, in order."""
        budget = getattr(sampling, "max_tokens", None)
        with self._lock:
            if budget is not None and budget < self.min_tokens:
                riders = []
            else:
                riders = self._pending[: self.max_extra]
                del self._pending[: len(riders)]
                for ask in riders:
                    ask.taken = True
        if not riders:
            return self.inner.generate(prompts, sampling)
        try:
            generations = self.inner.generate([*prompts, *(a.messages for a in riders)], sampling)
        except BaseException as exc:
            for ask in riders:
                ask.loop.call_soon_threadsafe(_resolve, ask.future, None, exc)
            raise
        mine = generations[len(prompts) :]
        for ask, generation in zip(riders, mine):
            ask.loop.call_soon_threadsafe(_resolve, ask.future, generation.text, None)
        self.shared += len(riders)
        return generations[: len(prompts)]

    async def references(
        self,
        prompts: list[list[dict]],
        wait_s: float,
        alone: Callable[[list[list[dict]]], Awaitable[list[str]]],
    ) -> list[str]:
        """A reference per prompt: from the next synthetic calls within ``wait_s``, the
        rest from ``alone`` (one call of their own). Raises the generation's error."""
        loop = asyncio.get_running_loop()
        asks = [_Ask(p, loop.create_future(), loop) for p in prompts]
        with self._lock:
            self._pending.extend(asks)
        await asyncio.wait([a.future for a in asks], timeout=wait_s)
        with self._lock:
            left = [a for a in asks if not a.taken]
            self._pending = [a for a in self._pending if a not in left]
        if left:
            texts = await alone([a.messages for a in left])
            for ask, text in zip(left, texts):
                _resolve(ask.future, text, None)
            self.alone += len(left)
        return [await a.future for a in asks]
