"""What a miner strategy is: the registry's base class for ``--miner.strategy``.

A strategy turns a signed, verified request into the answer's text; the reference
miner (``neurons/miner.py``) does everything else (keys, signing, limits). Strategies
come from ``prompting.registry.STRATEGIES``: the project's own and those of installed
plug-ins (entry-point group ``prompting.miner_strategies``).
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prompting.config import Config
    from prompting.protocol import PromptRequest


class Strategy(abc.ABC):
    """How a miner answers. ``answer`` may be a coroutine function: the server then
    awaits it in its event loop; a plain function runs in a worker thread."""

    name: str = "strategy"

    @classmethod
    def from_config(cls, config: Config) -> Strategy:
        """Build the strategy from the miner's flags (load a model, an embedder)."""
        return cls()

    @abc.abstractmethod
    def answer(self, request: PromptRequest) -> str | Awaitable[str]:
        """The completion for one request."""
