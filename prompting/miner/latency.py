"""Answer latency for benchmark miners: real miners think for seconds, not milliseconds.

Every step-rate figure taken with miners that answer at once measures the GPU alone; a
validator that waits on miners needs steps in flight to stay busy. ``--miner.latency``
(``--local.latency`` for the local subnet) makes a reference miner wait before it
answers, drawn from the spec of ``prompting/latency.py`` (presets, grammar), and
past the request's timeout with its probability (the validator records a timeout).
The answer itself is the strategy's.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import random
from collections.abc import Awaitable, Callable

# The spec lives on the ground floor (the config module checks the flag there);
# PRESETS and parse are re-exported for this module's callers.
from prompting.latency import PAST_TIMEOUT_S, PRESETS, Latency, parse  # noqa: F401


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


def answer_slots(query_rate: float, timeout: float) -> int:
    """Answer slots for every request the validator's rate bound lets in while a miner
    thinks (at most past the timeout): a thinking miner holds a slot all along, and with
    the default 8 slots, busy refusals would measure the slots, not the validator."""
    return math.ceil(query_rate * (timeout + PAST_TIMEOUT_S)) + 1


def local_miner_args(spec: str | None, query_rate: float, timeout: float) -> list[str]:
    """Flags for the local subnet's miners: the latency and its ``answer_slots``."""
    if not spec:
        return []
    return [
        "--miner.latency",
        spec,
        "--miner.max_concurrency",
        str(answer_slots(query_rate, timeout)),
    ]
