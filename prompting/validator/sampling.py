"""Which miners a step queries: the sampling policy.

Skips this validator and validators above ``vpermit_tao_limit`` stake (they are not
miners), optionally keeps one uid per coldkey and per IP (so one operator cannot fill
a sample), and leaves out endpoints that failed to connect within a cooldown.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable

from prompting.chain.base import Neuron

UNREACHABLE_STATUSES = frozenset({"refused", "unreachable"})  # slow is not unreachable


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
    candidates = [
        n
        for n in neurons
        if n.hotkey != self_hotkey
        and n.uid not in cooling
        and not (n.validator_permit and n.stake > vpermit_tao_limit)
    ]
    rng.shuffle(candidates)
    chosen, coldkeys, ips = [], set(), set()
    for n in candidates:
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
