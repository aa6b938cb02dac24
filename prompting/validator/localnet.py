"""The embedded local subnet: reference miners as subprocesses, registered locally.

Each miner gets its own wallet under ``<state>/wallets``, a free loopback port (it
writes the port to a file once listening), and a registration in the local chain
with its endpoint. ``stop`` ends them (SIGTERM, then SIGKILL) and runs at exit.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import subprocess
import sys
import time

from prompting.chain.local import LocalChain
from prompting.network.auth import load_or_create_wallet

log = logging.getLogger(__name__)
MINER_SCRIPT = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    "neurons",
    "miner.py",
)
START_TIMEOUT_S = 180.0


class LocalSubnet:
    def __init__(self, chain: LocalChain, state_dir: str, validator_hotkey: str):
        self.chain = chain
        self.state_dir = state_dir
        self.wallet_dir = os.path.join(state_dir, "wallets")
        self.validator_hotkey = validator_hotkey
        self.procs: list[subprocess.Popen] = []
        atexit.register(self.stop)

    def start(self, strategies: list[str], n: int, extra_args: list[str] = ()) -> dict[int, str]:
        """Start n miners (strategies in turn); returns {uid: strategy} once all listen."""
        pending = []
        for i in range(n):
            strategy = strategies[i % len(strategies)]
            name = f"miner-{i}"
            wallet = load_or_create_wallet(name, "default", self.wallet_dir)
            port_file = os.path.join(self.state_dir, "miners", f"{name}.port")
            os.makedirs(os.path.dirname(port_file), exist_ok=True)
            if os.path.exists(port_file):
                os.unlink(port_file)
            log_path = os.path.join(self.state_dir, "miners", f"{name}.log")
            cmd = [
                sys.executable,
                MINER_SCRIPT,
                "--miner.strategy",
                strategy,
                "--miner.port",
                "0",
                "--miner.port_file",
                port_file,
                "--miner.allow",
                self.validator_hotkey,
                "--miner.exit_with_parent",
                "--chain.network",
                "local",
                "--neuron.full_path",
                self.state_dir,
                "--wallet.path",
                self.wallet_dir,
                "--wallet.name",
                name,
                "--wallet.hotkey",
                "default",
                "--neuron.seed",
                str(i),
                *extra_args,
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
            pending.append((proc, port_file, log_path, wallet, strategy))
        uids, deadline = {}, time.monotonic() + START_TIMEOUT_S
        for proc, port_file, log_path, wallet, strategy in pending:
            while not os.path.exists(port_file):
                if proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    tail = open(log_path, errors="replace").read()[-800:]
                    raise RuntimeError(
                        f"local miner ({strategy}) did not start; log {log_path}:\n{tail}"
                    )
                time.sleep(0.1)
            port = int(open(port_file).read().split()[0])
            uid = self.chain.register(
                wallet.hotkey.ss58_address,
                wallet.coldkeypub.ss58_address,
                endpoint=f"127.0.0.1:{port}",
            )
            uids[uid] = strategy
            log.info("local miner uid %d: %s on port %d", uid, strategy, port)
        return uids

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs.clear()
