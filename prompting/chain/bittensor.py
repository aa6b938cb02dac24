"""The real chain: bittensor 11's ``SyncClient`` for finney, test or a ws:// endpoint.

This module only maps: SDK metagraph rows -> our Neuron records, our weights -> a
``bt.SetWeights`` intent (with the subnet's ``weights_version`` as ``version_key``),
a miner's endpoint -> a ``bt.ServeAxon`` intent, SDK failures -> ChainError. Each
call runs under ``--chain.timeout`` so a stuck websocket cannot stall the validator.

``bt.SetWeights`` conforms the weights to the subnet's limits itself and submits
them in plaintext, or as a timelocked commit when the subnet runs commit-reveal. Which
one it took is in its result: the SDK's executor copies the intent's build extras into
``ExtrinsicResult.data``, and only the timelocked build has one, ``reveal_round``
(``bittensor/intents/weights.py``, ``_build_timelocked``); every result names the path.
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
import logging
from collections.abc import Callable, Sequence
from typing import Any

from prompting.chain.base import ChainError, Neuron, WeightsResult, normalize

log = logging.getLogger(__name__)
_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="chain")
BLOCK_SECONDS = 12.0  # subtensor's block time (finney, test) until the chain says its own
# Storage items of the hyperparameters the validator follows, for runtimes whose
# ``subnet_hyperparameters`` map lacks a name (the SDK's own CLI fills gaps the same way).
RULES = ("weights_version", "weights_rate_limit", "commit_reveal_weights_enabled")


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
    """``bittensor.result.ExtrinsicResult`` -> WeightsResult, with the path a successful
    ``SetWeights`` took: a timelocked commit carries its ``reveal_round``."""
    message = result.message or ("ok" if result.success else "failed")
    if not result.success and result.error is not None:
        message = f"{message}: {result.error}"
    path = ""
    if result.success:
        reveal = (result.data or {}).get("reveal_round")
        path = "set_weights" if reveal is None else "commit_reveal"
        if reveal is not None:
            message = f"{message} (revealed at drand round {reveal})"
    return WeightsResult(bool(result.success), message, path=path)


def endpoint_text(ip: str, port: int) -> str:
    """``ip:port`` as the SDK's metagraph prints a served axon (``[v6]:port`` for IPv6),
    so that an endpoint already on chain is recognised and not re-published."""
    address = ipaddress.ip_address(ip)
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"


class BittensorChain:
    def __init__(
        self,
        network: str,
        netuid: int,
        wallet,
        timeout: float = 30.0,
        client_factory: Callable[[str], Any] | None = None,
        version_key: int | None = None,
    ):
        self.network = network
        self.netuid = netuid
        self.wallet = wallet
        self.timeout = timeout
        self.version_key = version_key  # None: the subnet's weights_version
        self.block_seconds = BLOCK_SECONDS
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

    def hyperparameters(self) -> dict:
        """The subnet's hyperparameters by name (weights_version, weights_rate_limit,
        commit_reveal_weights_enabled, ...). A name the runtime's map lacks is read from
        its storage item: sending version_key 0 by default is what this guards against.
        Also learns the chain's block time (0.25 s on a fast-blocks localnet)."""

        def read(client) -> dict | None:
            found = client.subnets.subnet_hyperparameters(self.netuid)
            if found is None:
                return None
            from bittensor.hyperparams import STORAGE_ITEMS

            for name in RULES:
                if name not in found:
                    found[name] = client.query(STORAGE_ITEMS[name], [self.netuid])
            self.block_seconds = float(client.block_time())
            return found

        found = self._call("hyperparameters", read)
        if found is None:
            raise ChainError(f"subnet {self.netuid} does not exist on {self.network}")
        return found

    def weights_rate_limit(self) -> int:
        return int(self.hyperparameters().get("weights_rate_limit") or 0)

    def set_weights(self, uids: Sequence[int], weights: Sequence[float]) -> WeightsResult:
        uids, weights = normalize(uids, weights)
        if not uids:
            return WeightsResult(False, "no positive weights to set")
        params = self.hyperparameters()
        version = self.version_key
        if version is None:
            version = int(params.get("weights_version") or 0)

        def submit(client):
            import bittensor as bt

            intent = bt.SetWeights(
                netuid=self.netuid, uids=uids, weights=weights, version_key=version
            )
            return client.execute(intent, self.wallet)

        result = result_from_sdk(self._call("set_weights", submit))
        log.info(
            "weights for %d uids (version_key %d) %s: %s",
            len(uids),
            version,
            {
                "set_weights": "set in plaintext",
                "commit_reveal": "committed, timelocked (commit-reveal)",
            }.get(result.path, "not set"),
            result.message,
        )
        return result

    def serve(self, ip: str, port: int) -> bool:
        """Publish this hotkey's endpoint (``bt.ServeAxon``) unless the chain already
        shows it: the chain rate-limits serving. True when it was published now."""
        hotkey = self.wallet.hotkey.ss58_address
        mine = next((n for n in self.metagraph() if n.hotkey == hotkey), None)
        if mine is None:
            raise ChainError(
                f"hotkey {hotkey} is not registered on netuid {self.netuid}: "
                f"btcli subnets register --netuid {self.netuid}"
            )
        if mine.endpoint == endpoint_text(ip, port):
            return False

        def submit(client):
            import bittensor as bt

            return client.execute(
                bt.ServeAxon(netuid=self.netuid, ip=ip, port=int(port)), self.wallet
            )

        result = self._call("serve_axon", submit)
        if not result.success:
            raise ChainError(f"serve_axon {ip}:{port} refused: {result_from_sdk(result).message}")
        return True
