"""Miner traffic in a process of its own, so that the model's thread never waits for it.

A validator on a GPU asks hundreds of miners a second. In one Python process the event
loop doing that work (httpx, btauth/1 signing and verification, answer parsing) held the
GIL 46% of the time in the 2026-12-06 H200 profile, 56% of all GIL time being
``MinerClient.query``, and the model thread, which needs the GIL between GPU kernels,
waited: the GPU was busy 20% of the run. ``QueryProcess`` runs ``MinerClient`` in a child
process with its own event loop (uvloop where installed) and keeps the validator's side
to one message each way per step: the request's body and the neurons out, the results
back. Several children share the steps when the machine has the cores
(``default_processes``).

The child loads the validator's hotkey from its wallet files (a hotkey with a password
cannot be opened there: the validator then queries in process and says so once). It
leaves when the validator does (its end of the socket closes; on Linux also by the
kernel's parent-death signal). If it dies, the steps it was serving get ``http_error``
results and the next step starts a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import itertools
import json
import logging
import math
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys

from prompting import compat
from prompting.network.client import MinerClient, QueryResult

log = logging.getLogger(__name__)
HEADER = struct.Struct("!I")  # each message: its length, then a pickle
START_TIMEOUT_S = 60.0  # imports and the wallet; seconds on a loaded machine
# A step's results arrive within its timeout; past this much more the child is stuck
# and the step gets timeouts instead of waiting forever.
GRACE_S = 5.0
PR_SET_PDEATHSIG = 1  # linux/prctl.h
QUERY_PROCESS_ENV = "PROMPTING_QUERY_PROCESS"  # "on" / "off": overrides the choice


def _frame(obj) -> bytes:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(data)) + data


async def _read(reader: asyncio.StreamReader):
    """The next message; IncompleteReadError at the end of the stream."""
    (size,) = HEADER.unpack(await reader.readexactly(HEADER.size))
    return pickle.loads(await reader.readexactly(size))


def default_processes() -> int:
    """Query processes for this machine: one per four cores, one to four. One process's
    event loop does about 1-3 ms of work a query (httpx, btauth/1), and a 64-miner subnet
    at the rate bound asks 256 a second; a GPU host has cores to spare."""
    return max(1, min(4, (os.cpu_count() or 1) // 4))


def validator_client(wallet, config, llm=None):
    """The validator's client: a ``QueryProcess`` when ``llm`` generates on a GPU in this
    process (miner traffic then holds no GIL the model's thread needs), else an
    in-process ``MinerClient``; ``PROMPTING_QUERY_PROCESS=on|off`` overrides."""
    n = config.neuron
    args = {
        "timeout": n.timeout,
        "max_body_bytes": n.max_body_bytes,
        # every query the rate bound lets in while the earlier ones may still run
        "max_connections_per_miner": math.ceil(n.miner_query_rate * n.timeout) + 1,
    }
    choice = os.environ.get(QUERY_PROCESS_ENV, "").lower()
    on_gpu = llm is not None and str(llm.stats.device).startswith("cuda")
    if choice == "on" or (choice != "off" and on_gpu):
        return QueryProcess(wallet, **args)
    return MinerClient(wallet, **args)


class QueryProcess:
    """``query_many`` as ``MinerClient`` has it, answered by ``processes`` child processes
    (steps go to them in turn); streams (organic) and, when a child cannot start,
    everything go through an in-process ``MinerClient`` (``local``)."""

    def __init__(self, wallet, processes: int | None = None, **client_args):
        self.local = MinerClient(wallet, **client_args)
        self.hotkey = self.local.hotkey
        self.timeout = self.local.timeout
        spec = {"wallet": [wallet.name, wallet.hotkey_str, wallet.path], "client": client_args}
        self.children = [_Child(spec, self.hotkey) for _ in range(processes or default_processes())]
        self._ids = itertools.count()

    async def query_many(self, neurons: list, request, timeout: float | None = None) -> list:
        """All miners at once, results in the order of ``neurons`` (``MinerClient``'s)."""
        timeout = self.timeout if timeout is None else timeout
        if not neurons:
            return []
        qid = next(self._ids)
        child = self.children[qid % len(self.children)]
        if not await child.ready():
            return await self.local.query_many(neurons, request, timeout)
        return await child.query(qid, neurons, request.body(), timeout)

    async def query_stream(self, *args, **kwargs):
        """Streamed queries (organic: a few a second) stay in process."""
        return await self.local.query_stream(*args, **kwargs)

    async def aclose(self) -> None:
        await asyncio.gather(*(c.aclose() for c in self.children))
        await self.local.aclose()


class _Child:
    """One query process: started on first use, started again after it dies."""

    def __init__(self, spec: dict, hotkey: str):
        self.spec, self.hotkey = spec, hotkey
        self.proc: subprocess.Popen | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._listener: asyncio.Future | None = None
        self._starting: asyncio.Future | None = None
        self._pending: dict[int, tuple[asyncio.Future, list]] = {}
        self._failed = False  # it could not start: in process from then on

    async def ready(self) -> bool:
        """Running (started now if need be); False when it cannot start."""
        if self._failed:
            return False
        if self._writer is not None and not self._writer.is_closing():
            return True
        if self._starting is None or self._starting.done():
            self._starting = asyncio.ensure_future(self._start())
        return await asyncio.shield(self._starting)

    async def _start(self) -> bool:
        parent, child = socket.socketpair()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", __name__, str(child.fileno()), json.dumps(self.spec)],
                pass_fds=[child.fileno()],
                env={**os.environ, "PARENT_PID": str(os.getpid())},
            )
        finally:
            child.close()
        reader, writer = await asyncio.open_unix_connection(sock=parent)
        try:
            hello = await asyncio.wait_for(_read(reader), START_TIMEOUT_S)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError) as exc:
            hello = {"error": f"no answer ({type(exc).__name__})"}
        if hello.get("hotkey") != self.hotkey:
            writer.close()
            self._stop()
            self._failed = True
            log.warning(
                "query process did not start (%s); querying miners in this process",
                hello.get("error") or f"it signs as {hello.get('hotkey')}",
            )
            return False
        self._writer = writer
        self._listener = asyncio.ensure_future(self._listen(reader))
        return True

    async def query(self, qid: int, neurons: list, body: bytes, timeout: float) -> list:
        fut = asyncio.get_running_loop().create_future()
        self._pending[qid] = (fut, neurons)
        try:
            self._writer.write(_frame((qid, neurons, body, timeout)))
            return await asyncio.wait_for(fut, timeout + GRACE_S)
        except asyncio.TimeoutError:
            return _failed(neurons, "query process did not answer in time", status="timeout")
        finally:
            self._pending.pop(qid, None)

    async def _listen(self, reader: asyncio.StreamReader) -> None:
        """Hand each step its results; at the child's end, fail what it still held."""
        try:
            while True:
                qid, results = await _read(reader)
                fut = self._pending.get(qid, (None,))[0]
                if fut is not None and not fut.done():
                    fut.set_result(results)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            if self._writer is not None:
                self._writer.close()
            self._writer = None
            code = self.proc.poll() if self.proc is not None else None
            if self._pending:
                log.warning("query process exited (code %s); a new one starts", code)
            for fut, neurons in self._pending.values():
                if not fut.done():
                    fut.set_result(_failed(neurons, f"query process exited (code {code})"))

    async def aclose(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._listener, GRACE_S)
        self._stop()

    def _stop(self) -> None:
        """Let it finish on its own (its socket closed: it closes its connections and
        leaves), then SIGTERM, then SIGKILL."""
        if self.proc is None:
            return
        for end in (None, self.proc.terminate, self.proc.kill):
            if end is not None:
                end()
            try:
                self.proc.wait(timeout=GRACE_S)
                return
            except subprocess.TimeoutExpired:
                continue


def _failed(neurons: list, reason: str, status: str = "http_error") -> list:

    return [QueryResult(n.uid, n.hotkey, status, 0.0, error=reason) for n in neurons]


# --- the child --------------------------------------------------------------------


async def _serve(fd: int, spec: dict) -> None:
    reader, writer = await asyncio.open_unix_connection(sock=socket.socket(fileno=fd))
    try:
        import bittensor as bt

        name, hotkey, path = spec["wallet"]
        client = MinerClient(bt.Wallet(name=name, hotkey=hotkey, path=path), **spec["client"])
    except Exception as exc:  # noqa: BLE001 - the validator falls back and says why
        writer.write(_frame({"error": f"{type(exc).__name__}: {exc}"[:300]}))
        await writer.drain()
        return
    writer.write(_frame({"hotkey": client.hotkey}))
    running: set[asyncio.Future] = set()

    async def answer(qid: int, neurons: list, body: bytes, timeout: float) -> None:
        results = await client.query_body_many(neurons, body, timeout)
        writer.write(_frame((qid, results)))
        await writer.drain()

    try:
        while True:
            qid, neurons, body, timeout = await _read(reader)
            task = asyncio.ensure_future(answer(qid, neurons, body, timeout))
            running.add(task)
            task.add_done_callback(running.discard)
    except (asyncio.IncompleteReadError, ConnectionError, OSError):
        pass  # the validator is gone or closed us
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        await client.aclose()


def main(argv: list[str]) -> None:
    """``python -m prompting.network.offload FD SPEC``: serve the validator on FD."""
    if sys.platform.startswith("linux"):  # leave with the validator, even after kill -9
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != int(os.environ.get("PARENT_PID", os.getppid())):
        return  # the validator died before the signal was set
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    compat.run(_serve(int(argv[0]), json.loads(argv[1])))


if __name__ == "__main__":
    main(sys.argv[1:])
