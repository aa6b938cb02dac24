"""How many steps the validator keeps in flight: as many as keep the GPU busy.

A step spends most of its time waiting on miners (seconds each), not on the GPU. A
fixed number of steps in flight either leaves the GPU idle while they wait or, set
high, piles drafts up behind the model. ``--neuron.forwards adaptive`` starts a new
step while

* generation has room: fewer drafts are waiting for the model than one batch of the
  backend holds (vLLM's ``max_num_seqs``), so the next batch fills up while the current
  one runs, and no draft waits more than one batch;
* the miners' rate bound is not reached: fewer than one batch of steps have their
  challenge and wait for miners under the per-miner query rate (``sampling.RateBound``);
  past that the GPU is ahead of what the subnet may be asked;
* and fewer than ``--neuron.max_concurrent_forwards`` steps are in flight.

Steps in flight grow with the miners' latency (a step waiting on miners holds no place
in the generation room) and shrink when the GPU or the rate bound is reached (no step
starts until one is taken). ``fixed`` keeps ``--neuron.num_concurrent_forwards``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Load:
    """Where the steps in flight are."""

    in_flight: int  # started and not yet finished
    waiting_generation: int  # drafts handed to the batcher and not yet in a batch
    waiting_miners: int  # challenges built, waiting for miners under the rate bound


@dataclass(frozen=True)
class Concurrency:
    mode: str  # "adaptive" or "fixed"
    fixed: int  # fixed: steps in flight
    room: int  # adaptive: drafts one generation batch holds
    ceiling: int  # adaptive: most steps in flight

    @classmethod
    def from_config(cls, config, batch_capacity: int | None) -> Concurrency:
        """``batch_capacity``: sequences the backend generates at once (None: it does not
        say, and --neuron.num_concurrent_forwards stands in)."""
        n = config.neuron
        room = batch_capacity or n.num_concurrent_forwards
        return cls(n.forwards, n.num_concurrent_forwards, room, n.max_concurrent_forwards)

    def may_start(self, load: Load) -> bool:
        if self.mode == "fixed":
            return load.in_flight < self.fixed
        return (
            load.in_flight < self.ceiling
            and load.waiting_generation < self.room
            and load.waiting_miners < self.room
        )
