"""The embedded local subnet: a chain simulation persisted in one JSON file.

It keeps what the validator reads and writes on a real subnet: neurons by uid with
hotkey, coldkey, stake, endpoint and validator permit; weights per validator with
the block they were set at; a block number that advances with wall time. Several
processes (validator, miners, tests) share the file: every change holds an
exclusive ``flock`` on a side file and replaces the JSON atomically
(``prompting/atomic.py``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator, Sequence

from prompting.atomic import write_json
from prompting.chain.base import ChainError, Neuron, WeightsResult, normalize

BLOCK_SECONDS = 1.0  # a fast local chain; real subtensor blocks are 12 s
WEIGHTS_HISTORY = 32  # entries kept per validator


class LocalChain:
    def __init__(
        self,
        path: str,
        netuid: int = 1,
        hotkey: str | None = None,
        block_seconds: float = BLOCK_SECONDS,
    ):
        self.path = path
        self.netuid = netuid
        self.hotkey = hotkey
        self.block_seconds = block_seconds
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with self._locked() as state:
            if state.get("netuid") != netuid:
                state.clear()
                state.update(netuid=netuid, genesis=time.time(), neurons=[], weights={})

    @contextlib.contextmanager
    def _locked(self, write: bool = True) -> Iterator[dict]:
        with open(self.path + ".lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX if write else fcntl.LOCK_SH)
            try:
                state = self._read()
                before = json.dumps(state, sort_keys=True)
                yield state
                if write and json.dumps(state, sort_keys=True) != before:
                    self._write(state)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self) -> dict:
        try:
            with open(self.path) as f:
                return json.load(f)
        except FileNotFoundError:
            return {}
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ChainError(
                f"local chain file {self.path} is corrupt ({exc}); "
                "delete it to start a fresh local subnet"
            ) from exc

    def _write(self, state: dict) -> None:
        write_json(self.path, state)

    # --- the Chain protocol ---------------------------------------------------------

    def block(self) -> int:
        with self._locked(write=False) as state:
            return int((time.time() - state["genesis"]) / self.block_seconds)

    def metagraph(self) -> list[Neuron]:
        with self._locked(write=False) as state:
            return [Neuron(**n) for n in state["neurons"]]

    def set_weights(self, uids: Sequence[int], weights: Sequence[float]) -> WeightsResult:
        if self.hotkey is None:
            raise ChainError("set_weights needs the chain opened with this neuron's hotkey")
        uids, weights = normalize(uids, weights)
        with self._locked() as state:
            known = {n["hotkey"]: n for n in state["neurons"]}
            me = known.get(self.hotkey)
            if me is None:
                return WeightsResult(False, f"hotkey {self.hotkey} is not registered")
            if not me["validator_permit"]:
                return WeightsResult(False, f"hotkey {self.hotkey} has no validator permit")
            if any(u >= len(state["neurons"]) or u < 0 for u in uids):
                return WeightsResult(False, "weights name a uid that does not exist")
            block = int((time.time() - state["genesis"]) / self.block_seconds)
            history = state["weights"].setdefault(self.hotkey, [])
            limit = int(state.get("weights_rate_limit", 0))
            if history and block - history[-1]["block"] < limit:
                wait = limit - (block - history[-1]["block"])
                return WeightsResult(
                    False, f"weights were set {limit - wait} blocks ago; retry in ~{wait} blocks"
                )
            history.append({"block": block, "uids": uids, "weights": weights})
            del history[:-WEIGHTS_HISTORY]
        return WeightsResult(
            True, f"weights for {len(uids)} uids set at block {block}", block, "set_weights"
        )

    def weights_rate_limit(self) -> int:
        with self._locked(write=False) as state:
            return int(state.get("weights_rate_limit", 0))

    def set_weights_rate_limit(self, blocks: int) -> None:
        """The simulation's ``weights_rate_limit`` hyperparameter (0: none)."""
        with self._locked() as state:
            state["weights_rate_limit"] = int(blocks)

    # --- administration of the simulation --------------------------------------------

    def register(
        self,
        hotkey: str,
        coldkey: str,
        endpoint: str | None = None,
        stake: float = 0.0,
        validator_permit: bool = False,
        uid: int | None = None,
    ) -> int:
        """Register (or update) a hotkey; ``uid`` replaces whoever holds that uid."""
        with self._locked() as state:
            neurons = state["neurons"]
            record = dict(
                hotkey=hotkey,
                coldkey=coldkey,
                stake=float(stake),
                endpoint=endpoint,
                validator_permit=bool(validator_permit),
            )
            if uid is None:
                uid = next((n["uid"] for n in neurons if n["hotkey"] == hotkey), len(neurons))
            if uid > len(neurons):
                raise ChainError(f"uid {uid} is beyond the {len(neurons)} registered")
            record["uid"] = uid
            if uid == len(neurons):
                neurons.append(record)
            else:
                neurons[uid] = record
            return uid

    def weights(self, hotkey: str | None = None) -> list[dict]:
        with self._locked(write=False) as state:
            return list(state["weights"].get(hotkey or self.hotkey or "", []))
