"""When the validator may call the chain, whatever its miners do.

Steps can be fast (miners that fail at once answer in milliseconds), so nothing that
touches the chain is counted in steps: the metagraph is synced every
``--neuron.resync_seconds``; weights, due every ``--neuron.epoch_length`` steps, are
sent no sooner than the subnet's ``weights_rate_limit`` blocks after the last set,
and a refused attempt waits the blocks the chain named (or ``RETRY_BLOCKS``) instead
of retrying on the next step. Blocks become seconds through the chain's block time,
read at each wait: a real chain tells its own (12 s, 0.25 s on a fast-blocks localnet)
once it has been contacted.
"""

from __future__ import annotations

import time
from collections.abc import Callable

RETRY_BLOCKS = 10  # wait after a refusal that names no number of blocks


class Cadence:
    def __init__(
        self,
        block_seconds: Callable[[], float],
        resync_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.block_seconds = block_seconds
        self.resync_seconds = resync_seconds
        self.clock = clock
        self._next_sync = float("-inf")
        self._next_weights = float("-inf")

    def sync_due(self) -> bool:
        return self.clock() >= self._next_sync

    def synced(self) -> None:
        """A sync was tried (a failed one too: the last metagraph serves meanwhile)."""
        self._next_sync = self.clock() + self.resync_seconds

    def weights_allowed(self) -> bool:
        return self.clock() >= self._next_weights

    def weights_set(self, rate_limit_blocks: int) -> None:
        self._wait_blocks(rate_limit_blocks)

    def weights_refused(self, retry_blocks: int | None) -> float:
        """Hold the next attempt back; returns the seconds it waits."""
        return self._wait_blocks(RETRY_BLOCKS if retry_blocks is None else retry_blocks)

    def _wait_blocks(self, blocks: int) -> float:
        seconds = max(0, blocks) * self.block_seconds()
        self._next_weights = self.clock() + seconds
        return seconds
