"""The embedded local subnet: reference miners as subprocesses, registered locally.

Each miner gets its own wallet under ``<state>/wallets``, a free loopback port (it
writes the port to a file once listening), and a registration in the local chain
with its endpoint. ``stop`` ends them (SIGTERM, then SIGKILL) and runs at exit.

A validator killed with -9 cannot stop its miners. They leave by themselves (each is
told its parent's pid and dies with it: ``neurons/miner.py``), and a validator that
restarts on the same state folder takes over any that are still there: a miner holding
one of this folder's hotkeys, started by a validator (``--miner.exit_with_parent``),
is an earlier run's, and is stopped before its successor starts.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from prompting import instance
from prompting.chain.local import LocalChain
from prompting.network.auth import load_or_create_wallet

log = logging.getLogger(__name__)
MINER_SCRIPT = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    "neurons",
    "miner.py",
)
START_TIMEOUT_S = 180.0
STOP_WAIT_S = 10.0  # an earlier run's miner gets this long after SIGTERM, then SIGKILL
PARENT_FLAG = "--miner.exit_with_parent"


class LocalSubnetError(RuntimeError):
    """A local miner could not start or an earlier one would not leave (one line, plus
    the tail of the miner's log where there is one)."""


@dataclass
class _Pending:
    proc: subprocess.Popen
    port_file: str
    log_path: str
    wallet: object
    strategy: str


class LocalSubnet:
    def __init__(self, chain: LocalChain, state_dir: str, validator_hotkey: str):
        self.chain = chain
        self.state_dir = os.path.abspath(state_dir)
        self.wallet_dir = os.path.join(self.state_dir, "wallets")
        self.validator_hotkey = validator_hotkey
        self.procs: list[subprocess.Popen] = []
        self._pending: list[_Pending] = []
        atexit.register(self.stop)

    def spawn(self, strategies: list[str], n: int, extra_args: list[str] = ()) -> None:
        """Start n miners (strategies in turn) without waiting for them to listen.

        Call it from the main thread: Linux sends a child its parent-death signal when
        the *thread* that started it exits, so a miner spawned from a worker thread
        would die with that thread."""
        for i in range(n):
            strategy = strategies[i % len(strategies)]
            name = f"miner-{i}"
            wallet = load_or_create_wallet(name, "default", self.wallet_dir)
            self._take_over(wallet.hotkey.ss58_address)
            port_file = os.path.join(self.state_dir, "miners", f"{name}.port")
            os.makedirs(os.path.dirname(port_file), exist_ok=True)
            if os.path.exists(port_file):
                os.unlink(port_file)
            log_path = os.path.join(self.state_dir, "miners", f"{name}.log")
            cmd = [
                sys.executable,
                MINER_SCRIPT,
                *("--miner.strategy", strategy, "--miner.port", "0"),
                *("--miner.port_file", port_file, "--miner.allow", self.validator_hotkey),
                *(PARENT_FLAG, str(os.getpid()), "--chain.network", "local"),
                *("--neuron.full_path", self.state_dir, "--wallet.path", self.wallet_dir),
                *("--wallet.name", name, "--wallet.hotkey", "default"),
                *("--neuron.seed", str(i), *extra_args),
            ]
            with open(log_path, "ab") as log_file:
                proc = subprocess.Popen(
                    cmd,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    env={**os.environ, "PYTHONUNBUFFERED": "1"},
                )
            self.procs.append(proc)
            self._pending.append(_Pending(proc, port_file, log_path, wallet, strategy))

    def wait_ready(self) -> dict[int, str]:
        """Wait until every spawned miner listens, register each; {uid: strategy}."""
        uids, deadline = {}, time.monotonic() + START_TIMEOUT_S
        pending, self._pending = self._pending, []
        for p in pending:
            while not os.path.exists(p.port_file):
                if p.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    with open(p.log_path, errors="replace") as f:
                        tail = f.read()[-800:]
                    raise LocalSubnetError(
                        f"local miner ({p.strategy}) did not start; log {p.log_path}:\n{tail}"
                    )
                time.sleep(0.1)
            with open(p.port_file) as f:
                port = int(f.read().split()[0])
            uid = self.chain.register(
                p.wallet.hotkey.ss58_address,
                p.wallet.coldkeypub.ss58_address,
                endpoint=f"127.0.0.1:{port}",
            )
            uids[uid] = p.strategy
            log.info("local miner uid %d: %s on port %d", uid, p.strategy, port)
        return uids

    def _take_over(self, hotkey: str) -> None:
        """Stop the miner of an earlier run that still holds ``hotkey`` (SIGTERM, then
        SIGKILL after STOP_WAIT_S, a progress line each second); refuse, in one line,
        to touch a holder that is not a local miner of this state folder."""
        lock = instance.hotkey_lock(hotkey)
        start, sent, note_at = time.monotonic(), None, 1.0
        while (held := instance.holder(lock)) is not None:
            pid, command = held
            waited = time.monotonic() - start
            if pid and not (
                PARENT_FLAG in command and f"--neuron.full_path {self.state_dir} " in command
            ):
                raise LocalSubnetError(
                    f"hotkey {hotkey} of this state folder is in use by pid {pid}: "
                    f"{command} (lock {lock}); stop that process first"
                )
            if waited > 2 * STOP_WAIT_S:
                raise LocalSubnetError(
                    f"local miner pid {pid} of an earlier run did not leave in "
                    f"{waited:.0f} s (lock {lock})"
                )
            wanted = signal.SIGTERM if waited < STOP_WAIT_S else signal.SIGKILL
            if pid and sent != wanted:
                log.warning(
                    "local miner pid %d of an earlier run still holds %s: sending %s",
                    *(pid, hotkey, wanted.name),
                )
                _signal_group(pid, wanted)
                sent = wanted
            if waited >= note_at:
                log.info("waiting for local miner pid %d to leave (%.0f s)", pid, waited)
                note_at += 1.0
            time.sleep(0.1)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                _signal_group(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs.clear()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """A local miner leads a session of its own (and of its children): signal them all;
    one that leads none (started another way) alone."""
    for send in (os.killpg, os.kill):
        try:
            return send(pid, sig)
        except ProcessLookupError:
            continue
