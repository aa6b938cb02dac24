"""The real chain: bittensor 11's ``SyncClient`` for finney, test or a ws:// endpoint.

This module only maps: SDK metagraph rows -> our Neuron records, our weights -> a
``bt.SetWeights`` intent, SDK failures -> ChainError. Each call runs under
``--chain.timeout`` so a stuck websocket cannot stall the validator.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Sequence
from typing import Any

from prompting.chain.base import ChainError, Neuron, WeightsResult, normalize

_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="chain")


def neuron_from_sdk(row: Any) -> Neuron:
    """One ``bittensor.metagraph.MetagraphNeuron`` -> Neuron (stake as a float in alpha)."""
    stake = getattr(row, "total_stake", None)
    return Neuron(
        uid=int(row.uid),
        hotkey=row.hotkey,
        coldkey=row.coldkey,
        stake=float(stake.tao) if stake is not None else 0.0,
        endpoint=row.axon or None,
        validator_permit=bool(row.validator_permit),
    )


def result_from_sdk(result: Any) -> WeightsResult:
    """``bittensor.result.ExtrinsicResult`` -> WeightsResult."""
    message = result.message or ("ok" if result.success else "failed")
    if not result.success and result.error is not None:
        message = f"{message}: {result.error}"
    return WeightsResult(bool(result.success), message)


class BittensorChain:
    def __init__(
        self,
        network: str,
        netuid: int,
        wallet,
        timeout: float = 30.0,
        client_factory: Callable[[str], Any] | None = None,
    ):
        self.network = network
        self.netuid = netuid
        self.wallet = wallet
        self.timeout = timeout
        self._factory = client_factory
        self._client = None

    def _call(self, what: str, fn: Callable[[Any], Any]) -> Any:
        try:
            if self._client is None:
                factory = self._factory
                if factory is None:
                    import bittensor as bt

                    factory = bt.SyncClient
                self._client = _POOL.submit(factory, self.network).result(self.timeout)
            return _POOL.submit(fn, self._client).result(self.timeout)
        except concurrent.futures.TimeoutError:
            self._client = None  # reconnect next time
            raise ChainError(
                f"{what} on {self.network} timed out after {self.timeout:g} s"
            ) from None
        except ChainError:
            raise
        except Exception as exc:  # noqa: BLE001 - the SDK raises many kinds; all mean "failed"
            raise ChainError(
                f"{what} on {self.network} failed: {type(exc).__name__}: {exc}"
            ) from exc

    def metagraph(self) -> list[Neuron]:
        graph = self._call("metagraph", lambda c: c.subnets.metagraph(self.netuid))
        if graph is None:
            raise ChainError(f"subnet {self.netuid} does not exist on {self.network}")
        return [neuron_from_sdk(n) for n in graph.neurons]

    def block(self) -> int:
        return int(self._call("block", lambda c: c.block))

    def set_weights(self, uids: Sequence[int], weights: Sequence[float]) -> WeightsResult:
        uids, weights = normalize(uids, weights)
        if not uids:
            return WeightsResult(False, "no positive weights to set")

        def submit(client):
            import bittensor as bt

            return client.execute(
                bt.SetWeights(netuid=self.netuid, uids=uids, weights=weights), self.wallet
            )

        return result_from_sdk(self._call("set_weights", submit))
