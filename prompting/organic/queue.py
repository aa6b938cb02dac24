"""Bounded admission of organic work: never more than ``max_concurrency`` requests
fanned out to miners at once, never more than ``max_queue`` waiting for a slot, none
waiting longer than ``max_wait_s``, and, with ``max_rate``, never more than that many
admitted per second (a token bucket holding one second's worth): the operator's bound
on the share of the validator's CPU that organic work may take from the synthetic
steps (benchmarks/results/2026-12-03-cpu-organic.json). A request past these is
refused at once (503)
instead of piling up: organic traffic must never grow the validator's memory or delay
its synthetic steps without bound.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque


class Full(Exception):
    """No slot and no room in the queue (or no slot within the wait): answer 503."""


class Gate:
    def __init__(
        self, max_concurrency: int, max_queue: int, max_wait_s: float, max_rate: float = 0.0
    ):
        self.max_concurrency = max_concurrency
        self.max_queue = max_queue
        self.max_wait_s = max_wait_s
        self.max_rate = max_rate
        self._tokens = max(1.0, max_rate)
        self._filled = time.monotonic()
        self.running = 0
        self._waiters: deque[asyncio.Future] = deque()

    def _take_token(self) -> None:
        """One admission of the rate budget; raises Full when there is none."""
        if self.max_rate <= 0:
            return
        now = time.monotonic()
        burst = max(1.0, self.max_rate)
        self._tokens = min(burst, self._tokens + (now - self._filled) * self.max_rate)
        self._filled = now
        if self._tokens < 1.0:
            raise Full(f"over {self.max_rate:g} organic requests per second")
        self._tokens -= 1.0

    @property
    def waiting(self) -> int:
        return sum(not f.done() for f in self._waiters)

    async def acquire(self) -> None:
        """Take a slot, waiting first in first out in the bounded queue; raises Full."""
        self._take_token()
        if self.running < self.max_concurrency and not self.waiting:
            self.running += 1
            return
        if self.waiting >= self.max_queue:
            raise Full(f"{self.running} requests running and {self.waiting} waiting")
        future = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            await asyncio.wait_for(asyncio.shield(future), self.max_wait_s)
        except asyncio.TimeoutError:
            if future.done():  # handed a slot just as the wait ran out: give it back
                self.release()
            future.cancel()
            raise Full(f"no free slot within {self.max_wait_s:g} s") from None
        except asyncio.CancelledError:  # the caller left while waiting
            if future.done() and not future.cancelled():
                self.release()
            future.cancel()
            raise

    def release(self) -> None:
        """Hand the slot to the oldest waiter, or free it."""
        while self._waiters:
            future = self._waiters.popleft()
            if not future.done():
                future.set_result(None)  # the slot passes on; ``running`` is unchanged
                return
        self.running -= 1
