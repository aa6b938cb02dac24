"""Which miners a step queries: the sampling policy.

Skips this validator and validators above ``vpermit_tao_limit`` stake (they are not
miners), optionally keeps one uid per coldkey and per IP (so one operator cannot fill
a sample), leaves out endpoints that failed to connect within a cooldown, and keeps
each miner under its query-rate bound (``RateBound``): the subnet's size, not a floor
between steps, sets how many steps may start.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable

from prompting.chain.base import Neuron

UNREACHABLE_STATUSES = frozenset({"refused", "unreachable"})  # slow is not unreachable
# An event loop's timer may fire this much before the clock says it is due (uvloop keeps
# time in whole milliseconds); a wait is that much longer, or the sample it waited for
# is still busy when it wakes. Without it, on uvloop, 14% of a 64-miner GPU run's steps
# found every miner busy and were skipped after their challenge was generated.
TIMER_SLACK_S = 0.002


class Cooldown:
    """Remembers uids whose endpoint failed; they sit out ``seconds`` after a failure."""

    def __init__(self, seconds: float, clock=time.monotonic):
        self.seconds, self.clock = seconds, clock
        self._until: dict[int, float] = {}

    def record(self, uid: int, status: str) -> None:
        if status in UNREACHABLE_STATUSES and self.seconds > 0:
            self._until[uid] = self.clock() + self.seconds
        else:
            self._until.pop(uid, None)

    def cooling(self) -> set[int]:
        now = self.clock()
        return {uid for uid, until in self._until.items() if until > now}


class RateBound:
    """Each miner at most ``rate`` queries per second from this validator: a uid is
    queried no sooner than 1/rate seconds after its previous query, so any second holds
    at most ``rate`` of its queries. With N miners and samples of k, at most N*rate/k
    steps query per second, whatever the miners answer and however fast."""

    def __init__(self, rate: float, clock=time.monotonic):
        self.gap, self.clock = 1.0 / rate, clock
        self._next: dict[int, float] = {}

    def busy(self) -> set[int]:
        """Uids that may not be queried yet."""
        now = self.clock()
        return {uid for uid, at in self._next.items() if at > now}

    def wait(self, uids: Iterable[int], k: int) -> float:
        """Seconds until ``k`` of ``uids`` may be queried (0: now), with TIMER_SLACK_S."""
        if k <= 0:
            return 0.0
        now = self.clock()
        ready_at = sorted(max(0.0, self._next.get(uid, now) - now) for uid in uids)
        if len(ready_at) < k:
            return float("inf")
        return ready_at[k - 1] + TIMER_SLACK_S if ready_at[k - 1] > 0 else 0.0

    def record(self, uids: Iterable[int]) -> None:
        """These uids are being queried now."""
        now = self.clock()
        for uid in uids:
            self._next[uid] = now + self.gap


def candidates(
    neurons: Iterable[Neuron],
    self_hotkey: str,
    vpermit_tao_limit: float,
    cooling: set[int] = frozenset(),
) -> list[Neuron]:
    """The miners a sample may hold: not this validator, not a validator with a permit
    above ``vpermit_tao_limit``, not cooling down."""
    return [
        n
        for n in neurons
        if n.hotkey != self_hotkey
        and n.uid not in cooling
        and not (n.validator_permit and n.stake > vpermit_tao_limit)
    ]


def select(
    neurons: Iterable[Neuron],
    k: int,
    rng: random.Random,
    self_hotkey: str,
    vpermit_tao_limit: float,
    unique_coldkeys: bool = False,
    unique_ips: bool = False,
    cooling: set[int] = frozenset(),
) -> list[Neuron]:
    """Up to k miners, sorted by uid."""
    pool = candidates(neurons, self_hotkey, vpermit_tao_limit, cooling)
    rng.shuffle(pool)
    chosen, coldkeys, ips = [], set(), set()
    for n in pool:
        ip = n.endpoint.rsplit(":", 1)[0] if n.endpoint else None
        if unique_coldkeys and n.coldkey in coldkeys:
            continue
        if unique_ips and ip is not None and ip in ips:
            continue
        chosen.append(n)
        coldkeys.add(n.coldkey)
        ips.add(ip)
        if len(chosen) == k:
            break
    return sorted(chosen, key=lambda n: n.uid)
