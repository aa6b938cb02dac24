"""What the validator needs from a chain, whichever chain it is."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

# "Retry in ~12 blocks" (bittensor 11's rate-limit preflight), "wait 12 blocks" (ours).
_RETRY_BLOCKS = re.compile(r"(?:retry in|wait)\s*~?\s*(\d+)\s*blocks?", re.IGNORECASE)


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
    path: str = ""  # how the chain took them: "set_weights" or "commit_reveal"


def retry_after_blocks(message: str) -> int | None:
    """The blocks a refusal asks us to wait, when its message names them."""
    found = _RETRY_BLOCKS.search(message or "")
    return int(found.group(1)) if found else None


class Chain(Protocol):
    """``metagraph()`` lists neurons by uid; ``set_weights`` records this hotkey's weights;
    ``weights_rate_limit()`` is the blocks the subnet wants between two weight sets;
    ``block_seconds`` turns blocks into the validator's schedule."""

    netuid: int
    block_seconds: float

    def metagraph(self) -> list[Neuron]: ...

    def set_weights(self, uids: Sequence[int], weights: Sequence[float]) -> WeightsResult: ...

    def weights_rate_limit(self) -> int: ...

    def block(self) -> int: ...


def normalize(uids: Sequence[int], weights: Sequence[float]) -> tuple[list[int], list[float]]:
    """Drop non-positive weights and scale the rest to sum 1 (empty if none remain)."""
    pairs = [(int(u), float(w)) for u, w in zip(uids, weights) if w > 0]
    total = sum(w for _, w in pairs)
    if total <= 0:
        return [], []
    return [u for u, _ in pairs], [w / total for _, w in pairs]
