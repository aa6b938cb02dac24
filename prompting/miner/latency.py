"""Answer latency for benchmark miners: real miners think for seconds, not milliseconds.

Every step-rate figure taken with miners that answer at once measures the GPU alone; a
validator that waits on miners needs steps in flight to stay busy. ``--miner.latency``
(``--local.latency`` for the local subnet) makes a reference miner wait before it
answers: a log-normal time (median ``median`` seconds, spread ``sigma``: a long tail),
and with probability ``timeouts`` longer than the request's timeout (the validator
records it as a timeout). The answer itself is the strategy's.

    realistic                        median 3 s, sigma 0.6 (p95 8 s), 3% time out, and
                                     the tail past a 10 s timeout: 5% in all
    median=2,sigma=0.4,timeouts=0.1  any of the three
"""

from __future__ import annotations

import asyncio
import inspect
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

PRESETS = {"realistic": "median=3,sigma=0.6,timeouts=0.03"}
# A timed-out answer arrives this long after the request's timeout (the validator has
# given up by then; the miner still spends the time, as a slow real one does).
PAST_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class Latency:
    median: float = 3.0
    sigma: float = 0.6
    timeouts: float = 0.03

    def sample(self, rng: random.Random, timeout: float) -> float:
        """Seconds to wait before answering a request with this ``timeout``."""
        if rng.random() < self.timeouts:
            return timeout + PAST_TIMEOUT_S
        seconds = rng.lognormvariate(math.log(self.median), self.sigma)
        return min(seconds, timeout + PAST_TIMEOUT_S)


def parse(spec: str) -> Latency:
    """A preset name or ``median=S,sigma=X,timeouts=P``; ValueError names what is wrong."""
    text = PRESETS.get(spec.strip(), spec)
    values: dict[str, float] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or key not in Latency.__dataclass_fields__:
            raise ValueError(
                f"latency: expected {', '.join(PRESETS)} or median=S,sigma=X,timeouts=P "
                f"(got {spec!r})"
            )
        try:
            values[key] = float(value)
        except ValueError:
            raise ValueError(f"latency: {key} must be a number (got {value!r})") from None
    latency = Latency(**values)
    if latency.median <= 0 or latency.sigma < 0 or not 0 <= latency.timeouts <= 1:
        raise ValueError(f"latency: median > 0, sigma >= 0, 0 <= timeouts <= 1 (got {spec!r})")
    return latency


def delayed(
    answer: Callable, latency: Latency, seed: int | None = None
) -> Callable[..., Awaitable[str]]:
    """``answer`` (sync or async) behind a wait drawn from ``latency``. The wait is an
    asyncio sleep, so a miner thinking on many requests holds no thread."""
    rng = random.Random(seed)
    is_async = inspect.iscoroutinefunction(answer)

    async def thinking(request) -> str:
        await asyncio.sleep(latency.sample(rng, request.timeout))
        if is_async:
            return await answer(request)
        return await asyncio.to_thread(answer, request)

    return thinking


def local_miner_args(spec: str | None, query_rate: float, timeout: float) -> list[str]:
    """Flags for the local subnet's miners: the latency, and room for every request the
    validator's rate bound lets in during one timeout (a thinking miner holds an answer
    slot all along; with the default 8 slots, busy refusals would measure the slots,
    not the validator)."""
    if not spec:
        return []
    slots = math.ceil(query_rate * (timeout + PAST_TIMEOUT_S)) + 1
    return ["--miner.latency", spec, "--miner.max_concurrency", str(slots)]
