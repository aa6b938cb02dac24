"""Chains: ``local`` (embedded subnet simulation, the default) and ``bittensor``."""

from __future__ import annotations

import os

from prompting.chain.base import (
    Chain,
    ChainError,
    Neuron,
    WeightsResult,
    normalize,
    retry_after_blocks,
)

__all__ = [
    "Chain",
    "ChainError",
    "Neuron",
    "WeightsResult",
    "normalize",
    "retry_after_blocks",
    "connect",
    "local_chain_path",
]


def local_chain_path(state_dir: str) -> str:
    return os.path.join(state_dir, "local_chain.json")


def connect(config, hotkey: str, wallet=None) -> Chain:
    """The chain ``--chain.network`` names, acting as ``hotkey`` (this neuron)."""
    if config.chain.network == "local":
        from prompting.chain.local import LocalChain

        return LocalChain(
            local_chain_path(config.neuron.full_path), netuid=config.netuid, hotkey=hotkey
        )
    from prompting.chain.bittensor import BittensorChain

    return BittensorChain(
        config.chain.network,
        config.netuid,
        wallet,
        timeout=config.chain.timeout,
        version_key=config.chain.weights_version,
    )
