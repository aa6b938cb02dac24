"""What the validator needs from a chain, whichever chain it is."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class ChainError(RuntimeError):
    """A chain call failed (unreachable, refused, timed out); the message says which."""


@dataclass(frozen=True)
class Neuron:
    uid: int
    hotkey: str
    coldkey: str
    stake: float  # in the subnet's units (alpha); TAO on the local chain
    endpoint: str | None  # "ip:port" or None when nothing is served
    validator_permit: bool


@dataclass(frozen=True)
class WeightsResult:
    success: bool
    message: str
    block: int | None = None


class Chain(Protocol):
    """``metagraph()`` lists neurons by uid; ``set_weights`` records this hotkey's weights."""

    netuid: int

    def metagraph(self) -> list[Neuron]: ...

    def set_weights(self, uids: Sequence[int], weights: Sequence[float]) -> WeightsResult: ...

    def block(self) -> int: ...


def normalize(uids: Sequence[int], weights: Sequence[float]) -> tuple[list[int], list[float]]:
    """Drop non-positive weights and scale the rest to sum 1 (empty if none remain)."""
    pairs = [(int(u), float(w)) for u, w in zip(uids, weights) if w > 0]
    total = sum(w for _, w in pairs)
    if total <= 0:
        return [], []
    return [u for u, _ in pairs], [w / total for _, w in pairs]
