"""Signed, concurrent queries to miners over pooled keep-alive connections.

Every request is signed with btauth/1 for the miner's hotkey. Each miner gets the
same deadline, enforced around the whole exchange (connect, headers, body), the
body is read in chunks and abandoned at the cap, redirects are not followed, and
every outcome is a QueryResult with a status; nothing a miner does raises here. An
answer counts only if its btauth/1 signature is the queried hotkey's, made for this
validator and this request's nonce. ``query_stream`` asks for the streamed form
(docs/protocol.md 10) and verifies every line before it is used.

Where the validator's queries run (in process, or in processes of their own) is
``prompting.network.offload.validator_client``'s choice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx
from pydantic import ValidationError

from prompting.chain.base import Neuron
from prompting.network import auth, stream
from prompting.protocol import (
    MAX_COMPLETION_CHARS,
    PROMPT_PATH,
    STREAM_PATH,
    PromptRequest,
    PromptResponse,
)

log = logging.getLogger(__name__)
# Idle keep-alive connections are dropped after this many seconds: under the reference
# miner's 5 s (server.HEADER_TIMEOUT_S, uvicorn's timeout_keep_alive), so a request never
# goes out on a connection the miner is closing.
KEEPALIVE_S = 4.0

OK, TIMEOUT, REFUSED, HTTP_ERROR, INVALID, UNREACHABLE, FORGED = (
    "ok",
    "timeout",
    "refused",
    "http_error",
    "invalid",
    "unreachable",
    "forged",  # unsigned, or not signed by the hotkey we asked: answering for another
)


@dataclass
class QueryResult:
    uid: int
    hotkey: str
    status: str
    latency: float
    completion: str = ""
    http_status: int | None = None
    error: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    # streamed queries only: seconds from sending to the first verified text (time to
    # first token) and to each verified delta; the delta texts themselves
    ttft: float | None = None
    chunk_times: list[float] = field(default_factory=list)
    streamed: bool = False

    @property
    def ok(self) -> bool:
        return self.status == OK


class MinerClient:
    """Pooled keep-alive connections per miner endpoint.

    One pool per endpoint, not one pool for all: httpcore's pool scans every connection
    for every request, which made 64 concurrent miners cost ~0.5 s of CPU per step on
    2 cores (profile in benchmarks/results/2026-11-23-cpu-validator-profile.json). Every
    connection a pool may open is kept alive: a miner thinking for seconds holds several
    of ours at once, and a pool keeping fewer closed the rest after each answer and
    connected anew for the next query (``connect_tcp`` 7% of the GIL time, 2026-12-06).
    """

    def __init__(
        self,
        wallet,
        timeout: float = 10.0,
        max_body_bytes: int = 1 << 20,
        max_endpoints: int = 1024,
        max_connections_per_miner: int = 4,
    ):
        from bittensor.http_auth import InMemoryNonceStore
        from bittensor.signing import resolve_signer

        # Resolve the hotkey once: signing with the Wallet object unlocks its key file on
        # every call (1.3 ms each, 84 ms for 64 miners); the resolved signer takes 0.07 ms.
        self.signer = resolve_signer(wallet, role="hotkey")
        self.signer.sign(b"")  # the key file is read (a password asked for) now, not mid-step
        self.hotkey = self.signer.ss58_address
        self._response_nonces = InMemoryNonceStore()  # a replayed answer is refused
        self.timeout = timeout
        self.max_body_bytes = max_body_bytes
        self.max_endpoints = max_endpoints
        self.max_connections_per_miner = max_connections_per_miner
        self._clients: dict[str, httpx.AsyncClient] = {}
        raise_open_files_limit()

    def _client(self, endpoint: str) -> httpx.AsyncClient:
        client = self._clients.pop(endpoint, None)  # re-inserted last: LRU order
        if client is None:
            if len(self._clients) >= self.max_endpoints:
                oldest = next(iter(self._clients))
                asyncio.ensure_future(self._clients.pop(oldest).aclose())
            client = httpx.AsyncClient(
                follow_redirects=False,
                trust_env=False,
                timeout=httpx.Timeout(self.timeout),
                limits=httpx.Limits(
                    max_connections=self.max_connections_per_miner,
                    max_keepalive_connections=self.max_connections_per_miner,
                    keepalive_expiry=KEEPALIVE_S,
                ),
            )
        self._clients[endpoint] = client
        return client

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        await asyncio.gather(*(c.aclose() for c in clients), return_exceptions=True)

    async def query(
        self, neuron: Neuron, request: PromptRequest, timeout: float | None = None
    ) -> QueryResult:
        return await self.query_body(neuron, request.body(), timeout)

    async def query_body(
        self, neuron: Neuron, body: bytes, timeout: float | None = None
    ) -> QueryResult:
        """``query`` with the request already serialized (``PromptRequest.body``)."""
        timeout = self.timeout if timeout is None else timeout
        start = time.perf_counter()

        def result(status: str, **kw) -> QueryResult:
            return QueryResult(neuron.uid, neuron.hotkey, status, time.perf_counter() - start, **kw)

        if not neuron.endpoint:
            return result(UNREACHABLE, error="no endpoint served")
        headers = auth.sign(self.signer, PROMPT_PATH, body, neuron.hotkey)
        headers.update({"Content-Type": "application/json", "Accept-Encoding": "identity"})
        url = f"http://{neuron.endpoint}{PROMPT_PATH}"
        try:
            status, raw, reply_headers = await asyncio.wait_for(
                self._post(self._client(neuron.endpoint), url, body, headers), timeout
            )
        except asyncio.TimeoutError:
            return result(TIMEOUT, error=f"no complete answer within {timeout:g} s")
        except httpx.ConnectError as exc:
            return result(REFUSED, error=str(exc)[:200])
        except httpx.TimeoutException:
            return result(TIMEOUT, error="transport timeout")
        except _TooLarge:
            return result(INVALID, error=f"body over {self.max_body_bytes} bytes")
        except (httpx.HTTPError, OSError) as exc:
            return result(HTTP_ERROR, error=f"{type(exc).__name__}: {str(exc)[:200]}")
        if status != 200:
            return result(
                HTTP_ERROR, http_status=status, error=raw[:200].decode("utf-8", "replace")
            )
        from bittensor.http_auth import AuthError

        try:
            signer = auth.verify_response(
                reply_headers,
                raw,
                PROMPT_PATH,
                self.hotkey,
                auth.request_nonce(headers),
                self._response_nonces,
            )
        except AuthError as exc:
            return result(FORGED, http_status=status, error=f"{type(exc).__name__}: {exc}"[:200])
        if signer != neuron.hotkey:
            return result(FORGED, http_status=status, error=f"answer signed by {signer}")
        try:
            response = PromptResponse.model_validate_json(raw)
        except (ValidationError, ValueError) as exc:
            return result(INVALID, http_status=status, error=str(exc).splitlines()[0][:200])
        return result(
            OK,
            http_status=status,
            completion=response.completion[:MAX_COMPLETION_CHARS],
            timings={k: float(v) for k, v in list(response.timings.items())[:16]},
        )

    async def _post(
        self, client: httpx.AsyncClient, url: str, body: bytes, headers: dict
    ) -> tuple[int, bytes, dict[str, str]]:
        async with client.stream("POST", url, content=body, headers=headers) as resp:
            declared = resp.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > self.max_body_bytes:
                raise _TooLarge
            chunks, size = [], 0
            async for chunk in resp.aiter_bytes():
                size += len(chunk)
                if size > self.max_body_bytes:
                    # The exception's traceback keeps this frame alive inside an asyncio
                    # reference cycle until a full gc pass; do not let it keep the body.
                    chunks.clear()
                    raise _TooLarge
                chunks.append(chunk)
            return resp.status_code, b"".join(chunks), dict(resp.headers)

    async def query_many(
        self, neurons: list[Neuron], request: PromptRequest, timeout: float | None = None
    ) -> list[QueryResult]:
        """All miners at once; results in the order of ``neurons``."""
        return await self.query_body_many(neurons, request.body(), timeout)

    async def query_body_many(
        self, neurons: list[Neuron], body: bytes, timeout: float | None = None
    ) -> list[QueryResult]:
        """``query_many`` with the request serialized once for all."""
        return list(await asyncio.gather(*(self.query_body(n, body, timeout) for n in neurons)))

    async def query_stream(
        self,
        neuron: Neuron,
        request: PromptRequest,
        timeout: float | None = None,
        stall_s: float | None = None,
        on_delta: OnDelta | None = None,
    ) -> QueryResult:
        """Ask for a streamed answer (docs/protocol.md 10) and verify it line by line.

        Each delta is checked (running hash, the queried hotkey's signature) before
        ``on_delta(uid, text)`` sees it, so a caller may show it at once. The miner is cut
        off, and the result says why, at the first line that is forged (``forged``), not
        of the protocol's shape or over the caps, or a 200 without the stream's headers
        (``invalid``), when no line arrives for ``stall_s`` seconds, counted from sending
        the request and then from each verified line (``timeout``), or the whole answer
        not within ``timeout`` (``timeout``; this client's own timeout does not apply), or
        when the stream ends without its end line (``invalid``). The completion counts
        only with status ``ok``; ``chunk_times`` and ``ttft`` are kept either way."""
        timeout = self.timeout if timeout is None else timeout
        stall_s = timeout if stall_s is None else stall_s
        start = time.perf_counter()
        res = QueryResult(neuron.uid, neuron.hotkey, OK, 0.0, streamed=True)
        parts: list[str] = []

        def finish(status: str, error: str = "") -> QueryResult:
            res.status, res.error = status, error[:200]
            res.latency = time.perf_counter() - start
            if status == OK:
                res.completion = "".join(parts)[:MAX_COMPLETION_CHARS]
            return res

        if not neuron.endpoint:
            return finish(UNREACHABLE, "no endpoint served")
        body = request.body()
        headers = auth.sign(self.signer, STREAM_PATH, body, neuron.hotkey)
        headers.update({"Content-Type": "application/json", "Accept-Encoding": "identity"})
        url = f"http://{neuron.endpoint}{STREAM_PATH}"
        nonce = auth.request_nonce(headers)

        async def within_stall(awaitable, since: float):
            try:
                return await asyncio.wait_for(awaitable, since + stall_s - time.perf_counter())
            except asyncio.TimeoutError:
                raise _Stop(TIMEOUT, f"stalled: no line for {stall_s:g} s") from None

        async def run() -> None:
            client = self._client(neuron.endpoint)
            sent = client.build_request(
                "POST", url, content=body, headers=headers, timeout=httpx.Timeout(timeout)
            )
            resp = await within_stall(client.send(sent, stream=True), start)
            try:
                res.http_status = resp.status_code
                if resp.status_code != 200:
                    raw = await _read_some(resp, 200)
                    raise _Stop(HTTP_ERROR, raw.decode("utf-8", "replace"))
                scheme = stream.check_headers(resp.headers)
                verifier = stream.StreamVerifier(nonce, neuron.hotkey, self.hotkey, scheme)
                reader = stream.StreamReader(verifier, self.max_body_bytes)
                chunks = resp.aiter_raw()
                last_line = start
                while True:
                    try:
                        chunk = await within_stall(chunks.__anext__(), last_line)
                    except StopAsyncIteration:
                        break
                    for line in reader.feed(chunk):
                        last_line = time.perf_counter()
                        if line.kind == stream.END:
                            res.timings = stream.parse_timings(line.data)
                            continue
                        at = last_line - start
                        res.chunk_times.append(at)
                        if line.data and res.ttft is None:
                            res.ttft = at
                        parts.append(line.data)
                        if on_delta is not None:
                            await on_delta(neuron.uid, line.data)
                for line in reader.close():  # the last line, sent without its LF
                    if line.kind == stream.END:
                        res.timings = stream.parse_timings(line.data)
            finally:
                await resp.aclose()

        try:
            await asyncio.wait_for(run(), timeout)
        except asyncio.TimeoutError:
            return finish(TIMEOUT, f"no complete answer within {timeout:g} s")
        except _Stop as stop:
            return finish(stop.status, stop.reason)
        except stream.StreamError as exc:
            return finish(exc.status, str(exc))
        except httpx.ConnectError as exc:
            return finish(REFUSED, str(exc))
        except httpx.TimeoutException:
            return finish(TIMEOUT, "transport timeout")
        except (httpx.HTTPError, OSError) as exc:
            return finish(HTTP_ERROR, f"{type(exc).__name__}: {str(exc)[:200]}")
        return finish(OK)


OnDelta = Callable[[int, str], Awaitable[None]]


def raise_open_files_limit() -> None:
    """Lift this process's soft limit on open files to the hard one: a validator keeps
    several connections open to each of hundreds of miners, past the common soft 1024."""
    try:
        import resource
    except ImportError:  # not on this platform
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 16)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("open files limit stays %d (%s)", soft, exc)


async def _read_some(resp: httpx.Response, limit: int) -> bytes:
    """At most ``limit`` bytes of a refusal's body, for the error text."""
    out = b""
    async for chunk in resp.aiter_raw():
        out += chunk
        if len(out) >= limit:
            break
    return out[:limit]


class _Stop(Exception):
    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


class _TooLarge(Exception):
    pass
