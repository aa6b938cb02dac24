"""Real loopback servers, real wallets, real btauth/1 signatures."""

import asyncio
import socket
import threading
import time

import httpx
import pytest

from prompting.chain.base import Neuron
from prompting.network import auth
from prompting.network.auth import Authorizer, CallerPolicy
from prompting.network.client import MinerClient
from prompting.network.server import create_app
from prompting.protocol import PROMPT_PATH, PromptRequest
from tests.helpers import AppServer


class ServerThread(AppServer):
    """A miner server (``create_app``) on a free loopback port, in its own thread."""

    def __init__(self, answer, wallet, authorizer, header_timeout=5.0, **kw):
        super().__init__(create_app(answer, wallet, authorizer, **kw), header_timeout)


def neuron(uid, wallet, port, permit=False, stake=0.0):
    return Neuron(
        uid,
        wallet.hotkey.ss58_address,
        wallet.coldkeypub.ss58_address,
        stake,
        f"127.0.0.1:{port}",
        permit,
    )


@pytest.fixture()
def miner(wallets):
    """A miner that serves the validator (permit on its metagraph), not the outsider."""
    v, m = wallets["validator"], wallets["miner"]
    graph = [
        Neuron(0, v.hotkey.ss58_address, "c", 10.0, None, True),
        Neuron(2, wallets["outsider"].hotkey.ss58_address, "c", 5.0, None, False),
    ]

    async def answer(req: PromptRequest) -> str:
        return "answer to " + req.messages[-1].content

    server = ServerThread(
        answer,
        m,
        Authorizer(CallerPolicy(min_stake=100.0), lambda: graph),
        rate_limit=1000,
    )
    yield server
    server.stop()


def request(step=1, timeout=5.0):
    return PromptRequest(
        task="qa",
        challenge_id="c1",
        step=step,
        timeout=timeout,
        messages=[{"role": "user", "content": "hello"}],
    )


async def test_signed_query_is_answered(wallets, miner):
    client = MinerClient(wallets["validator"], timeout=5)
    try:
        (result,) = await client.query_many([neuron(1, wallets["miner"], miner.port)], request())
    finally:
        await client.aclose()
    assert result.status == "ok" and result.completion == "answer to hello"
    assert result.http_status == 200 and 0 < result.latency < 5 and "answer" in result.timings


def post(port, body, headers):
    return httpx.post(
        f"http://127.0.0.1:{port}{PROMPT_PATH}", content=body, headers=headers, timeout=5
    )


def test_miner_rejects_bad_callers(wallets, miner):
    m_hotkey = wallets["miner"].hotkey.ss58_address
    body = request().model_dump_json().encode()
    # unsigned
    r = post(miner.port, body, {})
    assert r.status_code == 401 and "MalformedAuth" in r.json()["error"]
    # signed for another receiver
    h = auth.sign(wallets["validator"], PROMPT_PATH, body, wallets["miner2"].hotkey.ss58_address)
    assert post(miner.port, body, h).status_code == 401
    # forged: a valid signature over a different body
    h = auth.sign(wallets["validator"], PROMPT_PATH, b"{}", m_hotkey)
    r = post(miner.port, body, h)
    assert r.status_code == 401 and "BadSignature" in r.json()["error"]
    # replayed
    h = auth.sign(wallets["validator"], PROMPT_PATH, body, m_hotkey)
    assert post(miner.port, body, h).status_code == 200
    r = post(miner.port, body, h)
    assert r.status_code == 401 and "Replayed" in r.json()["error"]
    # stale
    h = auth.sign(wallets["validator"], PROMPT_PATH, body, m_hotkey) | {}
    from bittensor import http_auth

    h = http_auth.sign(
        wallets["validator"],
        method="POST",
        path=PROMPT_PATH,
        body=body,
        receiver_ss58=m_hotkey,
        nonce_ns=time.time_ns() - 60 * 10**9,
    )
    assert "Stale" in post(miner.port, body, h).json()["error"]
    # signed but below the stake threshold, and unknown to the metagraph
    for who in ("outsider", "miner2"):
        h = auth.sign(wallets[who], PROMPT_PATH, body, m_hotkey)
        r = post(miner.port, body, h)
        assert r.status_code == 403 and "Traceback" not in r.text
    # too large
    big = b"x" * (300 * 1024)
    assert post(miner.port, big, {}).status_code == 413
    # wrong shape, correctly signed
    bad = b'{"task": "qa"}'
    h = auth.sign(wallets["validator"], PROMPT_PATH, bad, m_hotkey)
    assert post(miner.port, bad, h).status_code == 422


class RawServer:
    """A hostile miner speaking raw HTTP over a socket."""

    def __init__(self, behaviour):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.behaviour = behaviour
        self.stop = threading.Event()
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self):
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn):
        try:
            data = conn.recv(65536)
            self.behaviour(conn, self.stop, data)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self.stop.set()
        self.sock.close()


def reply(body: bytes, status="200 OK", extra=b"", signed_by=None):
    """Answer with ``body``; ``signed_by``: a wallet name whose hotkey signs it, as a
    miner does, for the validator and the request's nonce."""

    def send(conn, stop, data):
        if signed_by is not None:
            extra_headers = answer_signature(signed_by, body, data)
        else:
            extra_headers = extra
        conn.sendall(
            b"HTTP/1.1 "
            + status.encode()
            + b"\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n"
            + extra_headers
            + b"\r\n"
            + body
        )

    return send


WALLETS = {}  # filled by the hostile test: reply() runs in the raw server's thread


def answer_signature(who: str, body: bytes, request: bytes) -> bytes:
    headers = dict(
        line.split(": ", 1) for line in request.split(b"\r\n\r\n")[0].decode().split("\r\n")[1:]
    )
    signed = auth.sign_response(
        WALLETS[who],
        PROMPT_PATH,
        body,
        WALLETS["validator"].hotkey.ss58_address,
        auth.request_nonce(headers),
    )
    return "".join(f"{k}: {v}\r\n" for k, v in signed.items()).encode()


def stall_after_headers(conn, stop, data):
    conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"compl')
    stop.wait(5)


def endless_body(conn, stop, data):
    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"x" * 65536
    for _ in range(100):
        conn.sendall(hex(len(chunk))[2:].encode() + b"\r\n" + chunk + b"\r\n")


@pytest.mark.parametrize(
    "behaviour,status",
    [
        (reply(b"not json", signed_by="miner"), "invalid"),
        (reply(b'{"answer": 1}', signed_by="miner"), "invalid"),
        (reply(b'{"completion": "\xff\xfe"}', signed_by="miner"), "invalid"),
        (reply(b"", "302 Found", b"Location: http://127.0.0.1:1/\r\n"), "http_error"),
        (reply(b"oops", "500 Internal Server Error"), "http_error"),
        (stall_after_headers, "timeout"),
        (endless_body, "invalid"),
        (reply(b'{"completion": "fine", "timings": {"x": 1}}'), "forged"),  # unsigned
        (reply(b'{"completion": "mine"}', signed_by="miner2"), "forged"),  # another hotkey
        (reply(b'{"completion": "fine", "timings": {"x": 1}}', signed_by="miner"), "ok"),
    ],
)
async def test_hostile_miners_get_a_status_and_never_stall(wallets, behaviour, status):
    WALLETS.update(wallets)
    server = RawServer(behaviour)
    client = MinerClient(wallets["validator"], timeout=1.0, max_body_bytes=1 << 20)
    tasks_before = len(asyncio.all_tasks())
    try:
        start = time.perf_counter()
        (result,) = await client.query_many([neuron(1, wallets["miner"], server.port)], request())
        assert time.perf_counter() - start < 2.0
    finally:
        await client.aclose()
        server.close()
    assert result.status == status, result
    await asyncio.sleep(0.1)  # abandoned body iterators are closed by the loop's finalizer
    assert len(asyncio.all_tasks()) == tasks_before  # nothing left running


async def test_refused_and_unreachable(wallets):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    client = MinerClient(wallets["validator"], timeout=1.0)
    no_endpoint = Neuron(3, "x", "y", 0.0, None, False)
    try:
        results = await client.query_many(
            [neuron(1, wallets["miner"], port), no_endpoint], request()
        )
    finally:
        await client.aclose()
    assert [r.status for r in results] == ["refused", "unreachable"]


def signed(wallets, who, port_hotkey, body):
    return auth.sign(wallets[who], PROMPT_PATH, body, port_hotkey)


def test_slow_clients_cannot_hold_the_miner(wallets):
    """Slowloris: 60 connections trickling headers and one trickling its body. A signed
    request is answered meanwhile; the body gets 408; the header tricklers are cut."""
    v, m = wallets["validator"], wallets["miner"]
    server = ServerThread(
        lambda req: "ok",
        m,
        Authorizer(CallerPolicy(0, frozenset({v.hotkey.ss58_address})), None),
        header_timeout=1.0,
        body_timeout=0.5,
        max_concurrency=1,
    )
    loris = []
    try:
        for _ in range(60):
            c = socket.create_connection(("127.0.0.1", server.port))
            c.sendall(b"POST " + PROMPT_PATH.encode() + b" HTTP/1.1\r\nHost: x\r\n")
            loris.append(c)
        body = request().model_dump_json().encode()
        slow_body = socket.create_connection(("127.0.0.1", server.port))
        head = f"POST {PROMPT_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
        slow_body.sendall(head.encode() + b"\r\n" + body[:10])
        start = time.perf_counter()
        r = post(server.port, body, signed(wallets, "validator", m.hotkey.ss58_address, body))
        assert r.status_code == 200 and time.perf_counter() - start < 1.0
        slow_body.settimeout(3)
        assert b" 408 " in slow_body.recv(4096).split(b"\r\n")[0]
        time.sleep(1.5)
        for c in loris:  # closed by the server: reads see EOF (or a reset)
            c.settimeout(2)
            try:
                assert c.recv(1024) == b""
            except ConnectionResetError:
                pass
        r = post(server.port, body, signed(wallets, "validator", m.hotkey.ss58_address, body))
        assert r.status_code == 200  # still serving
    finally:
        for c in loris:
            c.close()
        server.stop()


def test_rate_limit_is_per_caller_and_concurrency_is_capped(wallets):
    v, v2, m = wallets["validator"], wallets["miner2"], wallets["miner"]
    hotkey = m.hotkey.ss58_address
    release = threading.Event()

    def answer(req):
        if req.challenge_id == "hold":
            release.wait(5)
        return "ok"

    allowed = frozenset({v.hotkey.ss58_address, v2.hotkey.ss58_address})
    server = ServerThread(
        answer, m, Authorizer(CallerPolicy(0, allowed), None), rate_limit=3, max_concurrency=1
    )
    try:
        codes = []
        for step in range(5):
            body = request(step=step).model_dump_json().encode()
            codes.append(post(server.port, body, signed(wallets, "validator", hotkey, body)))
        assert [r.status_code for r in codes] == [200, 200, 200, 429, 429]
        assert codes[-1].json() == {"error": "rate limit"}
        # another caller is not limited by the first one's traffic; a second request
        # while the only slot is busy gets 503 at once
        held = request().model_copy(update={"challenge_id": "hold"}).model_dump_json().encode()
        holder = threading.Thread(
            target=post, args=(server.port, held, signed(wallets, "miner2", hotkey, held))
        )
        holder.start()
        time.sleep(0.3)
        body = request(step=9).model_dump_json().encode()
        r = post(server.port, body, signed(wallets, "miner2", hotkey, body))
        assert r.status_code == 503 and r.json() == {"error": "busy"}
        release.set()
        holder.join(5)
        body = request(step=10).model_dump_json().encode()
        assert post(server.port, body, signed(wallets, "miner2", hotkey, body)).status_code == 200
    finally:
        release.set()
        server.stop()


def test_the_miner_verifies_the_request_target_as_sent_with_its_query(wallets, miner):
    """btauth/1 signs the target as sent (docs/protocol.md 3.2): a request signed for
    /v1/prompt?x=1 and sent there is served; one signed for /v1/prompt is not, there."""
    m_hotkey = wallets["miner"].hotkey.ss58_address
    body = request().model_dump_json().encode()
    url = f"http://127.0.0.1:{miner.port}{PROMPT_PATH}?x=1"
    for signed_for, status in ((f"{PROMPT_PATH}?x=1", 200), (PROMPT_PATH, 401)):
        h = auth.sign(wallets["validator"], signed_for, body, m_hotkey)
        assert httpx.post(url, content=body, headers=h, timeout=5).status_code == status


def test_the_validator_refuses_an_answer_whose_headers_are_not_in_their_one_form(wallets):
    """What the miner may not send, the validator does not take either: an answer with
    an upper-case signature, or a nonce with a leading zero, is not verified."""
    from bittensor import http_auth

    v, m = wallets["validator"], wallets["miner"]
    body, nonce = b'{"completion": "x"}', "1796000000000000000"
    for change in (
        lambda h: {**h, "X-Bittensor-Signature": "0x" + h["X-Bittensor-Signature"][2:].upper()},
        lambda h: {**h, "X-Bittensor-Nonce": "0" + h["X-Bittensor-Nonce"]},
        lambda h: {**h, "X-Bittensor-Signature": h["X-Bittensor-Signature"][2:]},
    ):
        headers = auth.sign_response(m, PROMPT_PATH, body, v.hotkey.ss58_address, nonce)
        store = http_auth.InMemoryNonceStore()
        assert (
            auth.verify_response(headers, body, PROMPT_PATH, v.hotkey.ss58_address, nonce, store)
            == m.hotkey.ss58_address
        )
        with pytest.raises(http_auth.MalformedAuth):
            auth.verify_response(
                change(headers), body, PROMPT_PATH, v.hotkey.ss58_address, nonce, store
            )


def client_ports(pid: int, port: int) -> set[int]:
    """Local ports of process ``pid``'s open connections to ``port``."""
    import psutil

    return {
        c.laddr.port
        for c in psutil.Process(pid).net_connections("tcp")
        if c.raddr and c.raddr.port == port and c.status == "ESTABLISHED"
    }


async def test_connections_to_a_thinking_miner_are_kept_and_reused(wallets):
    """Four queries at once to a miner that thinks: four connections, all kept alive,
    and the next four go out on them (a pool keeping two connected anew each time)."""
    import os

    async def think(req: PromptRequest) -> str:
        await asyncio.sleep(0.3)
        return "thought"

    v = wallets["validator"]
    server = ServerThread(
        think,
        wallets["miner"],
        Authorizer(CallerPolicy(0, frozenset({v.hotkey.ss58_address})), None),
    )
    client = MinerClient(v, timeout=5, max_connections_per_miner=8)
    target = [neuron(1, wallets["miner"], server.port)] * 4
    try:
        first = await client.query_many(target, request())
        kept = client_ports(os.getpid(), server.port)
        second = await client.query_many(target, request(step=2))
        again = client_ports(os.getpid(), server.port)
    finally:
        await client.aclose()
        server.stop()
    assert [r.status for r in first + second] == ["ok"] * 8
    assert len(kept) == 4 and again == kept
