"""The answer-latency spec of benchmark miners (``--miner.latency``, ``--local.latency``).

Ground floor: the standard library only, so the config module checks the flag without
importing the miner package (``prompting/miner/latency.py`` makes a miner wait by it).
A miner waits a log-normal time (median ``median`` seconds, spread ``sigma``: a long
tail), and with probability ``timeouts`` longer than the request's timeout:

    realistic                        median 3 s, sigma 0.6 (p95 8 s), 3% time out, and
                                     the tail past a 10 s timeout: 5% in all
    median=2,sigma=0.4,timeouts=0.1  any of the three
"""

from __future__ import annotations

import math
import random
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
