"""A subtensor node in memory, behind the parts of ``bittensor.SyncClient`` the adapter
uses: ``subnets.metagraph``, ``subnets.subnet_hyperparameters``, ``query``, ``block``,
``block_time`` and ``execute``.

No node can run here, so this fakes the node, not the SDK: ``execute`` runs the SDK's
own ``intent.build`` against an in-memory substrate, so the registration and rate-limit
preflight, the conforming of weights and the choice between a plaintext set and a
timelocked commit are bittensor 11's code. What the node then does is applied here: it
checks the version key of a plaintext set, stamps ``LastUpdate``, stores an axon. Every
intent and every applied call is recorded for the tests to read.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections import Counter
from types import SimpleNamespace

import bittensor as bt
from bittensor.balance import Balance
from bittensor.intents.base import BuiltCall
from bittensor.metagraph import MetagraphNeuron
from bittensor.result import ExtrinsicResult

START_BLOCK = 1000


def sdk_neuron(uid, permit=False, stake_tao=12.5, axon="1.2.3.4:8091", hotkey=None):
    """One row of the SDK's typed metagraph."""
    zero = Balance(0)
    return MetagraphNeuron(
        uid=uid,
        hotkey=hotkey or f"hk{uid}",
        coldkey=f"ck{uid}",
        active=True,
        validator_permit=permit,
        last_update=0,
        block_at_registration=0,
        rank=0.0,
        trust=0.0,
        consensus=0.0,
        incentive=0.0,
        dividends=0.0,
        pruning_score=0.0,
        emission=zero,
        alpha_stake=zero,
        tao_stake=zero,
        total_stake=Balance(int(stake_tao * 1e9)),
        axon=axon,
        identity=None,
        commitment=None,
    )


class FakeSubtensor:
    """One subnet: neurons as (hotkey, permit, axon) and the storage the SDK reads."""

    def __init__(self, netuid: int, neurons: list[tuple[str, bool, str | None]], **storage):
        self.netuid = netuid
        self.neurons = [list(n) for n in neurons]
        self.block_seconds = 12.0
        self._t0 = time.monotonic()
        self.storage = {
            "WeightsVersionKey": 0,
            "WeightsSetRateLimit": 100,
            "CommitRevealWeightsEnabled": False,
            "MinAllowedWeights": 0,
            "MaxWeightsLimit": 65535,
            "SubnetEpochConsensus": "Yuma",
            "LastUpdate": [0] * len(neurons),
            "Tempo": 360,
            "RevealPeriodEpochs": 1,
            "LastEpochBlock": START_BLOCK - 100,
            "PendingEpochAt": 0,
            "SubnetEpochIndex": 5,
            "BlocksSinceLastStep": 100,
            **storage,
        }
        self.hidden: set[str] = set()  # hyperparameter names the runtime's map leaves out
        self.executed: list = []  # every intent handed to execute
        self.attempt_blocks: list[int] = []  # the block of each execute
        self.applied: list[tuple[int, str, dict]] = []  # (block, call, params) the node took
        self.calls: Counter[str] = Counter()
        outer = self

        class Subnets:
            def metagraph(self, netuid):
                outer.calls["metagraph"] += 1
                return SimpleNamespace(
                    neurons=[
                        sdk_neuron(uid, permit=permit, stake_tao=5000, axon=axon, hotkey=hk)
                        for uid, (hk, permit, axon) in enumerate(outer.neurons)
                    ]
                )

            def subnet_hyperparameters(self, netuid):
                outer.calls["hyperparameters"] += 1
                names = {
                    "weights_version": "WeightsVersionKey",
                    "weights_rate_limit": "WeightsSetRateLimit",
                    "commit_reveal_weights_enabled": "CommitRevealWeightsEnabled",
                }
                return {
                    name: outer.storage[item]
                    for name, item in names.items()
                    if name not in outer.hidden
                }

        self.subnets = Subnets()

    # --- the SyncClient surface ---------------------------------------------------------

    @property
    def block(self) -> int:
        self.calls["block"] += 1
        return self.now()

    def block_time(self) -> float:
        return self.block_seconds

    def query(self, item, params=None):
        self.calls["query"] += 1
        return self.value(item.name, params)

    def execute(self, intent, wallet):
        """As ``Executor.execute``: build (the SDK's preflight raises its ChainError from
        here), submit, and copy the build's extras into the result's data."""
        self.calls["execute"] += 1
        self.executed.append(intent)
        self.attempt_blocks.append(self.now())
        built = asyncio.run(intent.build(_Substrate(self), wallet))
        call, extras = (built.call, built.extras) if isinstance(built, BuiltCall) else (built, {})
        return self._apply(call, wallet.hotkey.ss58_address, extras)

    # --- the node -------------------------------------------------------------------------

    def now(self) -> int:
        return START_BLOCK + int((time.monotonic() - self._t0) / self.block_seconds)

    def uid_of(self, hotkey: str) -> int | None:
        return next((i for i, n in enumerate(self.neurons) if n[0] == hotkey), None)

    def value(self, name: str, params=None):
        if name == "Uids":
            return self.uid_of(params[1])
        if name == "ValidatorPermit":
            return [n[1] for n in self.neurons]
        return self.storage.get(name)

    def _apply(self, call, hotkey: str, extras: dict) -> ExtrinsicResult:
        block, uid = self.now(), self.uid_of(hotkey)
        params = dict(call.params)
        if call.function == "set_mechanism_weights":
            if params["version_key"] < self.storage["WeightsVersionKey"]:
                name = "IncorrectWeightVersionKey"
                return ExtrinsicResult(False, name, error=bt.ChainError(name, name=name))
        if call.function in ("set_mechanism_weights", "commit_timelocked_mechanism_weights"):
            self.storage["LastUpdate"][uid] = block
        elif call.function == "serve_axon":
            if params["ip_type"] == 6:  # as the SDK's metagraph prints it
                endpoint = f"[{ipaddress.IPv6Address(params['ip'])}]:{params['port']}"
            else:
                endpoint = f"{ipaddress.IPv4Address(params['ip'])}:{params['port']}"
            self.neurons[uid][2] = endpoint
        self.applied.append((block, call.function, params))
        return ExtrinsicResult(True, "ok", data=dict(extras))


class _Substrate:
    """What an intent's ``build`` reads from a substrate connection."""

    def __init__(self, node: FakeSubtensor):
        self.node = node

    async def block_number(self) -> int:
        return self.node.now()

    async def block_hash(self, number: int) -> str:
        return f"0x{number:064x}"

    async def block_time(self) -> float:
        return self.node.block_seconds

    async def query(self, module, name, params=None, block_hash=None):
        return self.node.value(name, params)

    async def compose(self, call):
        return call
