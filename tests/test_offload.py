"""The validator's queries in a process of their own (prompting/network/offload.py), and
the event loop they and the validator run on (compat.run): real miner servers, real
wallets, real btauth/1 signatures, a real child process."""

from __future__ import annotations

import asyncio
import os
import signal
import threading

import psutil
import pytest

from prompting import compat
from prompting.config import default_config
from prompting.network.auth import Authorizer, CallerPolicy
from prompting.network.client import MinerClient
from prompting.network.offload import QUERY_PROCESS_ENV, QueryProcess, validator_client
from tests.test_network import RawServer, ServerThread, client_ports, neuron, reply, request


@pytest.fixture()
def thinking_miner(wallets):
    """A miner that serves the validator after 0.2 s of thought."""

    async def think(req) -> str:
        await asyncio.sleep(0.2)
        return "thought about " + req.messages[-1].content

    v = wallets["validator"]
    policy = CallerPolicy(0, frozenset({v.hotkey.ss58_address}))
    server = ServerThread(think, wallets["miner"], Authorizer(policy, None))
    yield server
    server.stop()


async def test_queries_go_through_the_child_and_keep_their_connections(wallets, thinking_miner):
    client = QueryProcess(wallets["validator"], timeout=5, max_connections_per_miner=8)
    target = [neuron(1, wallets["miner"], thinking_miner.port)] * 4
    try:
        first = await client.query_many(target, request())
        child = client.children[0].proc.pid
        kept = client_ports(child, thinking_miner.port)
        second = await client.query_many(target, request(step=2))
        assert client_ports(child, thinking_miner.port) == kept and len(kept) == 4
        assert not client_ports(os.getpid(), thinking_miner.port)  # none in this process
    finally:
        await client.aclose()
    assert [r.status for r in first + second] == ["ok"] * 8
    assert first[0].completion == "thought about hello" and first[0].uid == 1
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == "zombie"


async def test_steps_take_the_children_in_turn(wallets, thinking_miner):
    client = QueryProcess(wallets["validator"], processes=2, timeout=5)
    target = [neuron(1, wallets["miner"], thinking_miner.port)] * 2
    try:
        results = await asyncio.gather(*(client.query_many(target, request(i)) for i in (1, 2)))
        pids = {c.proc.pid for c in client.children}
    finally:
        await client.aclose()
    assert [r.status for rs in results for r in rs] == ["ok"] * 4 and len(pids) == 2


async def test_the_child_checks_signatures_as_the_validator_would(wallets):
    """An answer signed by another hotkey is still forged when the child reads it."""
    from tests import test_network

    test_network.WALLETS.update(wallets)
    server = RawServer(reply(b'{"completion": "mine"}', signed_by="miner2"))
    client = QueryProcess(wallets["validator"], timeout=2)
    try:
        (result,) = await client.query_many([neuron(1, wallets["miner"], server.port)], request())
    finally:
        await client.aclose()
        server.close()
    assert result.status == "forged" and result.completion == ""


async def test_a_dead_child_fails_its_steps_and_the_next_step_starts_another(
    wallets, thinking_miner
):
    client = QueryProcess(wallets["validator"], timeout=5)
    target = [neuron(1, wallets["miner"], thinking_miner.port)]
    try:
        assert (await client.query_many(target, request()))[0].ok
        first = client.children[0].proc.pid
        pending = asyncio.ensure_future(client.query_many(target, request(step=2)))
        await asyncio.sleep(0.05)  # the query is in the child, the miner thinking
        os.kill(first, signal.SIGKILL)
        (lost,) = await asyncio.wait_for(pending, 5)
        assert lost.status == "http_error" and "query process exited" in lost.error
        (again,) = await client.query_many(target, request(step=3))
        assert again.ok and client.children[0].proc.pid != first
    finally:
        await client.aclose()


async def test_a_hotkey_the_child_cannot_open_means_queries_in_process(
    wallets, thinking_miner, tmp_path, caplog
):
    """A wallet whose files the child cannot read (moved, or behind a password): the
    validator says why in one line and queries the miners itself."""
    from prompting.network.auth import load_or_create_wallet

    wallet = load_or_create_wallet("gone", "default", str(tmp_path))
    client = QueryProcess(wallet, timeout=5)  # reads the hotkey here; then it disappears
    os.remove(wallet.hotkey_file.path)
    target = [neuron(1, wallets["miner"], thinking_miner.port)]
    try:
        results = await client.query_many(target, request())
    finally:
        await client.aclose()
    assert "query process did not start" in caplog.text
    # the miner serves only the validator's hotkey: the answer is a refusal, but it came
    # from this process's own client, signed with the wallet in memory
    assert results[0].status == "http_error" and results[0].http_status == 403


def test_the_choice_of_client(wallets, monkeypatch):
    config = default_config("validator")
    monkeypatch.setenv(QUERY_PROCESS_ENV, "on")
    assert isinstance(validator_client(wallets["validator"], config), QueryProcess)
    monkeypatch.setenv(QUERY_PROCESS_ENV, "off")
    assert isinstance(validator_client(wallets["validator"], config), MinerClient)
    monkeypatch.delenv(QUERY_PROCESS_ENV)  # no model on a GPU here: in process
    assert isinstance(validator_client(wallets["validator"], config), MinerClient)


def test_compat_run_uses_uvloop_for_its_loop_only():
    """The validator's loop is uvloop's; the policy stays asyncio's, so a thread (vLLM's)
    still gets asyncio's own loops (the uvloop guard's point)."""
    uvloop = pytest.importorskip("uvloop")
    seen = {}

    def in_thread():
        loop = asyncio.new_event_loop()
        seen["thread"] = type(loop).__module__
        loop.close()

    async def main():
        seen["main"] = type(asyncio.get_running_loop()).__module__
        thread = threading.Thread(target=in_thread)
        thread.start()
        thread.join()
        return 7

    assert compat.run(main()) == 7
    assert seen["main"].startswith("uvloop") and seen["thread"].startswith("asyncio")
    assert not isinstance(asyncio.get_event_loop_policy(), uvloop.EventLoopPolicy)


def test_the_validator_loop_with_its_queries_in_a_child(
    tmp_path, wallets, thinking_miner, monkeypatch
):
    """The validator's own loop on uvloop, queries in the child: every step scored, the
    child gone when the loop ends."""
    import io
    import json

    from prompting.rewards.stack import RewardStack
    from prompting.telemetry import Telemetry
    from prompting.validator.loop import Validator
    from tests.helpers import math_config, subnet_chain

    monkeypatch.setenv(QUERY_PROCESS_ENV, "on")
    v = wallets["validator"]
    chain = subnet_chain(tmp_path, v, [(wallets["miner"], thinking_miner.port)])
    config = math_config(
        tmp_path, neuron__max_steps=6, neuron__sample_size=1, neuron__miner_query_rate=100.0
    )
    telemetry = Telemetry(str(tmp_path), stream=io.StringIO())
    validator = Validator(config, v, chain, None, RewardStack(), telemetry)
    assert isinstance(validator.client, QueryProcess)
    compat.run(validator.run())
    events = [json.loads(line) for line in open(tmp_path / "events.jsonl")]
    assert [e["step"] for e in events] == list(range(1, 7))
    assert all(e["statuses"] == ["ok"] for e in events)
    child = validator.client.children[0].proc
    assert child is not None and child.poll() is not None
