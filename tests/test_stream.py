"""btstream/1 over real loopback servers, real wallets and real sr25519 signatures: an
honest miner streams and is verified line by line; miners that forge, tamper, replay,
send garbage, stall or stop early are cut off with the status the protocol names."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from bittensor.signing import resolve_signer
from starlette.applications import Starlette
from starlette.responses import StreamingResponse
from starlette.routing import Route

from prompting.chain.base import Neuron
from prompting.network import auth, stream
from prompting.network.auth import Authorizer, CallerPolicy
from prompting.network.client import MinerClient
from prompting.protocol import STREAM_PATH, PromptRequest
from tests.helpers import AppServer
from tests.test_network import ServerThread, neuron, request


def validator_graph(wallets):
    v = wallets["validator"]
    return [Neuron(0, v.hotkey.ss58_address, "c", 10.0, None, True)]


@pytest.fixture()
def streaming_miner(wallets):
    async def answer(req: PromptRequest):
        for word in ("one ", "two ", "three"):
            await asyncio.sleep(0.05)
            yield word

    server = ServerThread(
        answer,
        wallets["miner"],
        Authorizer(CallerPolicy(min_stake=100.0), lambda: validator_graph(wallets)),
        rate_limit=1000,
    )
    yield server
    server.stop()


async def stream_once(server, wallets, timeout: float = 5.0, **kw):
    """One streamed query from the validator to ``server`` as uid 1 (the miner's hotkey),
    ``kw`` passed to ``query_stream``; the client and the server are closed after it."""
    client = MinerClient(wallets["validator"], timeout=timeout)
    try:
        return await client.query_stream(neuron(1, wallets["miner"], server.port), request(), **kw)
    finally:
        await client.aclose()
        server.stop()


async def test_an_honest_stream_is_verified_and_timed(wallets, streaming_miner):
    client = MinerClient(wallets["validator"], timeout=5)
    seen: list[tuple[int, str]] = []

    async def on_delta(uid: int, text: str) -> None:
        seen.append((uid, text))

    try:
        result = await client.query_stream(
            neuron(1, wallets["miner"], streaming_miner.port), request(), on_delta=on_delta
        )
        whole = await client.query(neuron(1, wallets["miner"], streaming_miner.port), request())
    finally:
        await client.aclose()
    assert result.status == "ok", result.error
    assert result.completion == "one two three" and result.streamed
    assert seen == [(1, "one "), (1, "two "), (1, "three")]
    assert len(result.chunk_times) == 3 and result.chunk_times == sorted(result.chunk_times)
    # the first word arrived well before the last: the text was streamed, not buffered
    assert 0.04 < result.ttft < result.chunk_times[-1] - 0.08 < result.latency
    assert {"answer", "first"} <= set(result.timings)
    # the same answer function serves the non-streamed route, whole
    assert whole.status == "ok" and whole.completion == "one two three"


async def test_a_whole_text_answer_streams_in_word_groups(wallets):
    text = " ".join(f"w{i}" for i in range(10))
    server = ServerThread(
        lambda req: text,
        wallets["miner"],
        Authorizer(CallerPolicy(min_stake=100.0), lambda: validator_graph(wallets)),
    )
    result = await stream_once(server, wallets)
    assert result.status == "ok" and result.completion == text
    assert len(result.chunk_times) == 3  # 4 + 4 + 2 words


def test_the_stream_route_refuses_like_the_prompt_route(wallets, streaming_miner):
    import httpx

    body = request().body()
    url = f"http://127.0.0.1:{streaming_miner.port}{STREAM_PATH}"
    m_hotkey = wallets["miner"].hotkey.ss58_address
    assert httpx.post(url, content=body, timeout=5).status_code == 401
    h = auth.sign(wallets["outsider"], STREAM_PATH, body, m_hotkey)
    assert httpx.post(url, content=body, headers=h, timeout=5).status_code == 403
    # a request signed for the non-streamed path is not a streamed one
    h = auth.sign(wallets["validator"], "/v1/prompt", body, m_hotkey)
    assert httpx.post(url, content=body, headers=h, timeout=5).status_code == 401
    h = auth.sign(wallets["validator"], STREAM_PATH, b'{"task": 1}', m_hotkey)
    assert httpx.post(url, content=b'{"task": 1}', headers=h, timeout=5).status_code == 422


# --- hostile streaming miners ---------------------------------------------------------


class HostileStreamer(AppServer):
    """A miner whose stream route runs ``behaviour(lines, nonce, caller)``: an async
    generator of raw bytes, given a StreamSigner made with ``signer_wallet``'s hotkey;
    ``bare``: without the X-Bittensor-Stream header."""

    def __init__(self, wallets, behaviour, signer_wallet="miner", bare=False):
        signer = resolve_signer(wallets[signer_wallet], role="hotkey")
        queried = wallets["miner"].hotkey.ss58_address

        async def route(req):
            await req.body()
            nonce = auth.request_nonce(req.headers)
            caller = req.headers["x-bittensor-hotkey"]
            lines = stream.StreamSigner(signer, nonce, caller)
            lines.queried, lines.nonce, lines.caller = (
                queried,
                nonce,
                caller,
            )  # whom the validator asked (the impersonation case)
            return StreamingResponse(
                behaviour(lines, nonce, caller),
                media_type=stream.STREAM_MEDIA_TYPE,
                headers={} if bare else {stream.STREAM_HEADER: stream.STREAM_CONTEXT},
            )

        super().__init__(Starlette(routes=[Route(STREAM_PATH, route, methods=["POST"])]))


async def good_then(lines, tail):
    yield lines.delta("good ")
    async for raw in tail(lines):
        yield raw


async def tampered(lines):
    raw = json.loads(lines.delta("paid "))
    raw["data"] = "evil "  # the text changed after it was signed
    yield json.dumps(raw).encode() + b"\n"
    yield lines.end({})


async def reordered(lines):
    first = lines.delta("a ")
    yield lines.delta("b ")  # line 2 sent before line 1
    yield first


async def garbage(lines):
    yield b"this is not json\n"


async def stall(lines):
    await asyncio.sleep(30)
    yield lines.end({})


async def no_end(lines):
    yield lines.delta("and then nothing")


async def oversize_line(lines):
    yield b"x" * (stream.MAX_LINE_BYTES + 10)


async def impersonating(lines):
    """The queried miner's running hash, signed with another hotkey."""
    lines.hash = stream.seed_hash(lines.nonce, lines.queried, lines.caller)
    yield lines.delta("fine")
    yield lines.end({})


def make(tail):
    return lambda lines, nonce, caller: good_then(lines, tail)


@pytest.mark.parametrize(
    "behaviour,signer,status,words",
    [
        (make(tampered), "miner", "forged", "hash"),
        (make(reordered), "miner", "forged", "due"),
        (make(garbage), "miner", "invalid", "not JSON"),
        (make(stall), "miner", "timeout", "stalled"),
        (make(no_end), "miner", "invalid", "without its end"),
        (make(oversize_line), "miner", "invalid", "over"),
        # signed by another hotkey than the one queried: every line is forged
        (lambda lines, nonce, caller: impersonating(lines), "miner2", "forged", "signature"),
    ],
)
async def test_hostile_streams_are_cut_off(wallets, behaviour, signer, status, words):
    server = HostileStreamer(wallets, behaviour, signer)
    client = MinerClient(wallets["validator"], timeout=8)
    seen: list[str] = []

    async def on_delta(uid: int, text: str) -> None:
        seen.append(text)

    try:
        start = time.perf_counter()
        result = await client.query_stream(
            neuron(1, wallets["miner"], server.port), request(), stall_s=1.0, on_delta=on_delta
        )
        took = time.perf_counter() - start
    finally:
        await client.aclose()
        server.stop()
    assert result.status == status and words in result.error, result
    assert result.completion == ""  # nothing of a broken stream is scored
    assert took < 3  # cut off at the fault, not at the 8 s deadline
    # only verified text reached the caller: never a bad line (a stream without its end
    # line had verified deltas; it is still not scored)
    expected = {"miner2": []}.get(
        signer, ["good ", "and then nothing"] if "end" in words else ["good "]
    )
    assert seen == expected


async def test_a_stream_for_another_request_is_a_replay(wallets):
    """A recorded stream, honest in every signature, answers one request nonce only."""

    async def replayed(lines, nonce, caller):
        old = stream.StreamSigner(lines.signer, str(int(nonce) - 1), caller)
        yield old.delta("recorded")
        yield old.end({})

    server = HostileStreamer(wallets, replayed)
    result = await stream_once(server, wallets)
    assert result.status == "forged" and "hash" in result.error


def test_verifier_vectors_round_trip(wallets):
    """What a miner signs verifies; one changed byte anywhere does not."""
    signer = resolve_signer(wallets["miner"], role="hotkey")
    v = wallets["validator"].hotkey.ss58_address
    lines = stream.StreamSigner(signer, "1795487852809076247", v)
    raw = [lines.delta("Nothing: "), lines.delta("a placeholder."), lines.end({"answer": 0.1})]
    verifier = stream.StreamVerifier("1795487852809076247", signer.ss58_address, v, "sr25519")
    assert [verifier.feed(r.rstrip(b"\n")).data for r in raw][:2] == [
        "Nothing: ",
        "a placeholder.",
    ]
    assert verifier.ended
    for i in range(3):
        for field in ("data", "hash", "sig"):
            changed = [json.loads(r) for r in raw]
            value = changed[i][field]
            changed[i][field] = value[:-1] + ("0" if value[-1] != "0" else "1")
            check = stream.StreamVerifier("1795487852809076247", signer.ss58_address, v, "sr25519")
            with pytest.raises(stream.StreamError):
                for obj in changed:
                    check.feed(json.dumps(obj).encode())


def test_optional_sampling_fields_are_not_sent_unless_set():
    req = request()
    assert b"max_tokens" not in req.body() and b"temperature" not in req.body()
    assert json.loads(req.model_copy(update={"max_tokens": 5}).body())["max_tokens"] == 5


def test_the_docs_stream_vectors_verify_and_a_changed_character_does_not():
    import os
    import re

    from bittensor import http_auth

    doc = open(os.path.join(os.path.dirname(__file__), "..", "docs", "protocol.md")).read()
    block = doc.split("<!-- stream vectors -->", 1)[1]
    v = json.loads(re.search(r"```json\n(.*?)\n```", block, re.DOTALL).group(1))
    req = v["request"]
    nonce = req["headers"]["X-Bittensor-Nonce"]
    assert stream.seed_hash(nonce, v["miner_hotkey"], v["validator_hotkey"]) == v["seed_hash"]
    assert v["seed_text"] == f"btstream/1\n{nonce}\n{v['miner_hotkey']}\n{v['validator_hotkey']}"
    http_auth.verify(
        req["headers"],
        req["body"].encode(),
        method="POST",
        path=STREAM_PATH,
        self_hotkey_ss58=v["miner_hotkey"],
        now_ns=int(nonce),
        nonce_store=http_auth.InMemoryNonceStore(),
    )
    verifier = stream.StreamVerifier(nonce, v["miner_hotkey"], v["validator_hotkey"], "sr25519")
    texts = [verifier.feed(line.encode()).data for line in v["lines"]]
    assert "".join(texts[:-1]) == "Nothing: it is a placeholder statement." and verifier.ended
    for line, signed in zip(v["lines"], v["signed"]):
        assert signed == "btstream/1\n" + json.loads(line)["hash"]
    bad = json.loads(v["lines"][0])
    bad["data"] = bad["data"].replace("N", "n")
    check = stream.StreamVerifier(nonce, v["miner_hotkey"], v["validator_hotkey"], "sr25519")
    with pytest.raises(stream.StreamError):
        check.feed(json.dumps(bad).encode())


# --- the edge cases docs/protocol.md 10.2-10.3 settles, the validator and the
# conformance tool agreeing on each --------------------------------------------------


async def crlf_and_blank_lines(lines, nonce, caller):
    yield b"\n  \n"
    yield lines.delta("one ").replace(b"\n", b"\r\n")
    yield b"\r\n"
    yield lines.delta("two").replace(b"\n", b"\r\n")
    yield lines.end({})


async def extra_fields(lines, nonce, caller):
    obj = json.loads(lines.delta("kept"))
    obj["later"] = {"x": 1}  # not signed, not used
    yield json.dumps(obj).encode() + b"\n"
    yield lines.end({"answer": 0.1})


async def no_delta(lines, nonce, caller):
    yield lines.end({})


async def end_not_object(lines, nonce, caller):
    yield lines.delta("text")
    yield lines.line(stream.END, "[1, 2]")


async def upper_case_sig(lines, nonce, caller):
    raw = json.loads(lines.delta("text"))
    raw["sig"] = "0x" + raw["sig"][2:].upper()  # the same signature, other case
    yield json.dumps(raw).encode() + b"\n"
    yield lines.end({})


async def lone_surrogate(lines, nonce, caller):
    # JSON may spell a lone surrogate; it is no Unicode text, so it has no UTF-8 hash
    yield b'{"i": 1, "type": "delta", "data": "\\ud800", "hash": "' + b"0" * 64 + b'", '
    yield b'"sig": "0x' + b"0" * 128 + b'"}\n'


def escaped(text: str):
    """A delta sent with every non-ASCII character \\u-escaped (the longest form)."""

    async def behaviour(lines, nonce, caller):
        obj = json.loads(lines.delta(text))
        yield json.dumps(obj, ensure_ascii=True).encode() + b"\n"
        yield lines.end({})

    return behaviour


async def keep_alive(lines, nonce, caller):
    for _ in range(6):  # thinking (1.8 s): empty deltas, each a verified line
        yield lines.delta("")
        await asyncio.sleep(0.3)
    yield lines.delta("at last")
    yield lines.end({})


async def blank_keep_alive(lines, nonce, caller):
    for _ in range(12):  # blank lines are no lines: they do not hold the stall limit off
        yield b"\n"
        await asyncio.sleep(0.2)
    yield lines.delta("too late")
    yield lines.end({})


async def slow_first_line(lines, nonce, caller):
    await asyncio.sleep(2.4)
    yield lines.delta("too late")
    yield lines.end({})


def plain(text: str):
    async def behaviour(lines, nonce, caller):
        yield lines.delta(text)
        yield lines.end({})

    return behaviour


EMOJI_DELTA = "\U0001f600" * stream.MAX_DELTA_CHARS  # 12 bytes each when escaped

EDGE_CASES = [
    # behaviour, headers sent, status, the error's words (ok: the completion)
    (crlf_and_blank_lines, True, "ok", "one two"),
    (extra_fields, True, "ok", "kept"),
    (no_delta, True, "ok", ""),
    (escaped(EMOJI_DELTA), True, "ok", EMOJI_DELTA),
    (keep_alive, True, "ok", "at last"),
    (plain("fine"), False, "invalid", "X-Bittensor-Stream absent"),
    (end_not_object, True, "invalid", "not a JSON object"),
    (upper_case_sig, True, "forged", "lower-case hex"),
    (lone_surrogate, True, "invalid", "not Unicode text"),
    (plain("x" * (stream.MAX_DELTA_CHARS + 1)), True, "invalid", "over 16000 characters"),
    (blank_keep_alive, True, "timeout", "stalled"),
    (slow_first_line, True, "timeout", "stalled"),
]


def conformance_checker(wallets, port: int):
    """scripts/miner_conformance.py's Checker, as the tool runs it."""
    from tests.test_conformance import load_tool

    return load_tool().Checker(
        f"http://127.0.0.1:{port}", wallets["miner"].hotkey.ss58_address, wallets["validator"], 5
    )


@pytest.mark.parametrize(
    "behaviour,headers,status,words", EDGE_CASES, ids=[str(i) for i in range(len(EDGE_CASES))]
)
async def test_stream_edge_cases_as_the_spec_settles_them(
    wallets, behaviour, headers, status, words
):
    """Section 10.2-10.3 decides each case; the validator's client and the conformance
    tool (reading the whole body with the same reader) give the same verdict."""
    server = HostileStreamer(wallets, behaviour, bare=not headers)
    client = MinerClient(wallets["validator"], timeout=5)
    checker = conformance_checker(wallets, server.port)
    try:
        result = await client.query_stream(
            neuron(1, wallets["miner"], server.port), request(), stall_s=1.0
        )
        body = checker.body()
        response = await asyncio.to_thread(
            checker.post, body, checker.sign(body, path=STREAM_PATH), STREAM_PATH
        )
        problem, _ = checker.stream_problem(response)
    finally:
        await client.aclose()
        checker.http.close()
        server.stop()
    assert result.status == status, result
    if status == "ok":
        assert result.completion == words and problem is None
    else:
        assert words in result.error, result.error
        if status != "timeout":  # the tool reads a whole body, with no stall limit
            assert problem is not None and problem.startswith(status) and words in problem


def test_the_line_cap_holds_any_delta_the_delta_cap_allows(wallets):
    """16,000 code points escaped as \\u surrogate pairs (12 bytes each) still fit."""
    signer = resolve_signer(wallets["miner"], role="hotkey")
    lines = stream.StreamSigner(signer, "1", wallets["validator"].hotkey.ss58_address)
    obj = json.loads(lines.delta(EMOJI_DELTA))
    assert len(json.dumps(obj, ensure_ascii=True)) <= stream.MAX_LINE_BYTES


async def test_the_organic_deadline_not_the_clients_own_timeout_bounds_a_stream(wallets):
    """A client made with a 1 s timeout (as --neuron.timeout makes the validator's) asked
    for a stream with a 4 s deadline and a 1.5 s stall limit: a first line at 1.3 s and
    the rest 0.3 s apart are not cut at 1 s (the client's own read timeout did)."""

    async def steady(lines, nonce, caller):
        await asyncio.sleep(1.3)
        for word in ("a ", "b ", "c ", "d"):
            yield lines.delta(word)
            await asyncio.sleep(0.3)
        yield lines.end({})

    server = HostileStreamer(wallets, steady)
    client = MinerClient(wallets["validator"], timeout=1.0)
    miner = neuron(1, wallets["miner"], server.port)
    try:
        result = await client.query_stream(miner, request(), timeout=4.0, stall_s=1.5)
        cut = await client.query_stream(miner, request(), timeout=1.2, stall_s=1.5)
    finally:
        await client.aclose()
        server.stop()
    assert result.status == "ok" and result.completion == "a b c d", result
    assert result.latency > 2.2
    assert cut.status == "timeout" and "within 1.2 s" in cut.error, cut


async def test_a_slow_whole_answer_keeps_the_stream_alive_with_empty_deltas(wallets):
    """The reference miner's answer function writes its whole text in 2.5 s: the stream
    sends an empty delta every second meanwhile, so a 1.5 s stall limit (counted from
    the request) does not cut it; the first text is still timed as the first text."""

    def slow(req: PromptRequest) -> str:
        time.sleep(2.5)
        return "all at once"

    server = ServerThread(
        slow,
        wallets["miner"],
        Authorizer(CallerPolicy(min_stake=100.0), lambda: validator_graph(wallets)),
    )
    result = await stream_once(server, wallets, timeout=8, stall_s=1.5)
    assert result.status == "ok" and result.completion == "all at once", result
    assert len(result.chunk_times) >= 3 and 2.4 < result.ttft < 4.0  # 2 keep-alives
