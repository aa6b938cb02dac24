"""The miner's HTTP server: a Starlette app with a pluggable answer function.

Order of checks on ``POST /v1/prompt`` (docs/protocol.md, section 5): body size and
body deadline (413, 408), btauth/1 header forms, signature over the request target as
sent, receiver, freshness and replay (401), caller policy against the metagraph (403),
per-caller rate limit (429), concurrency (503), request shape (422), then the answer
function. Refusals carry a short reason and never a traceback. An
answer is signed with the miner's hotkey for the caller and the request's nonce, so a
validator can tell who wrote it (see ``MinerClient``). ``POST /v1/prompt/stream`` passes
the same checks, then streams the answer as btstream/1 lines, each signed
(``prompting.network.stream``).

Slow clients: a connection whose request headers are not complete within
``HEADER_TIMEOUT_S`` is closed (uvicorn itself has no such deadline, so one slowloris
client per connection slot could lock everyone out), a body must arrive within
``BODY_TIMEOUT_S``, and a connection answered before its body was read (a refusal) is
closed, not kept alive for the rest of that body (``Connection: close``, lingering so
the answer arrives). None holds an answer slot: slots are taken after the checks.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import socket
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Union

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from prompting.network.auth import Authorizer, request_nonce, sign_response, verify
from prompting.network.stream import (
    STREAM_CONTEXT,
    STREAM_HEADER,
    STREAM_MEDIA_TYPE,
    StreamSigner,
    chunk_text,
)
from prompting.protocol import (
    HEALTH_PATH,
    PROMPT_PATH,
    STREAM_PATH,
    PromptRequest,
    PromptResponse,
)

log = logging.getLogger(__name__)
# An answer function returns the whole text, or (to stream as it generates) an iterator
# or async iterator of text pieces; either serves both routes.
Answer = Callable[[PromptRequest], Union[str, Awaitable[str], Iterator[str], AsyncIterator[str]]]
MAX_REQUEST_BYTES = 256 * 1024
RATE_WINDOW_S = 10.0  # --miner.rate_limit counts requests in this window
HEADER_TIMEOUT_S = 5.0
BODY_TIMEOUT_S = 5.0
SHUTDOWN_GRACE_S = 5.0
LINGER_S = 1.0  # a refused connection is closed this long after its answer
# A streamed answer not yet started sends an empty delta this often: well under any
# validator's stall limit (--organic.stall_s, 5 s by default).
KEEPALIVE_S = 1.0


class RateLimiter:
    """At most ``limit`` requests per caller in any ``window`` seconds."""

    def __init__(self, limit: int, window: float = RATE_WINDOW_S):
        self.limit, self.window = limit, window
        self._seen: dict[str, deque] = defaultdict(deque)

    def allow(self, caller: str) -> bool:
        now = time.monotonic()
        times = self._seen[caller]
        while times and now - times[0] > self.window:
            times.popleft()
        if len(times) >= self.limit:
            return False
        times.append(now)
        return True


def request_target(request: Request) -> str:
    """The request target as the client sent it (what btauth/1 signs): the path, still
    percent-encoded, and ``?query`` when there is a query."""
    path = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string", b"")
    return (path + b"?" + query if query else path).decode("latin-1")


def _refuse(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status)


class BodyRefused(Exception):
    """The body cannot be read: ``status`` 413 (over the cap), 408 (not within the
    deadline) or 400 (the client left while sending it; nobody reads that answer)."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


async def read_body(request: Request, cap: int, deadline_s: float) -> bytes:
    """The request body, at most ``cap`` bytes (a larger declared length is refused
    before a byte is read), all within ``deadline_s`` seconds: a client that sends its
    body slowly holds a connection that long at most. Raises BodyRefused; a client that
    disconnects mid-body is one, not a traceback in the log."""
    from starlette.requests import ClientDisconnect

    declared = request.headers.get("content-length")
    if declared and (not declared.isdigit() or int(declared) > cap):
        raise BodyRefused(413, f"body over {cap} bytes")

    async def read() -> bytes:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > cap:
                raise BodyRefused(413, f"body over {cap} bytes")
        return bytes(body)

    try:
        return await asyncio.wait_for(read(), deadline_s)
    except asyncio.TimeoutError:
        raise BodyRefused(408, f"body not received within {deadline_s:g} s") from None
    except ClientDisconnect:
        raise BodyRefused(400, "the client disconnected while sending the body") from None


def create_app(
    answer: Answer,
    wallet,
    authorizer: Authorizer,
    max_concurrency: int = 8,
    rate_limit: int = 60,
    max_request_bytes: int = MAX_REQUEST_BYTES,
    body_timeout: float = BODY_TIMEOUT_S,
) -> Starlette:
    """``wallet``: the miner's (or its resolved hotkey signer); it signs every answer."""
    from bittensor.signing import resolve_signer

    signer = resolve_signer(wallet, role="hotkey")
    hotkey = signer.ss58_address
    slots = asyncio.Semaphore(max_concurrency)
    limiter = RateLimiter(rate_limit)
    is_async = inspect.iscoroutinefunction(answer)

    async def admit(request: Request) -> tuple[str, PromptRequest, bytes] | JSONResponse:
        """The checks of docs/protocol.md section 5, in order, shared by both routes:
        (caller, request, body) or the refusal."""
        try:
            body = await read_body(request, max_request_bytes, body_timeout)
        except BodyRefused as refused:
            return _refuse(refused.status, refused.reason)
        from bittensor.http_auth import AuthError

        try:
            caller = verify(request.headers, body, request_target(request), hotkey)
        except AuthError as exc:
            return _refuse(401, f"{type(exc).__name__}: {exc}"[:200])
        reason = authorizer.reason_to_refuse(caller)
        if reason:
            return _refuse(403, reason)
        if not limiter.allow(caller):
            return _refuse(429, "rate limit")
        if slots.locked():
            return _refuse(503, "busy")
        try:
            req = PromptRequest.model_validate_json(body)
        except ValidationError as exc:
            return _refuse(422, str(exc).splitlines()[0][:200])
        return caller, req, body

    async def run_answer(req: PromptRequest):
        if is_async:
            return await answer(req)
        return await asyncio.to_thread(answer, req)

    async def prompt(request: Request) -> Response:
        admitted = await admit(request)
        if isinstance(admitted, Response):
            return admitted
        caller, req, _ = admitted
        async with slots:
            start = time.perf_counter()
            try:
                text = await run_answer(req)
                if not isinstance(text, str):  # a streaming answer function, asked whole
                    text = "".join([piece async for piece in _pieces(text)])
            except Exception:  # noqa: BLE001 - the miner's own bug, logged here
                log.exception("answer failed")
                return _refuse(500, "answer failed")
            took = time.perf_counter() - start
        raw = PromptResponse(completion=text, timings={"answer": took}).model_dump_json().encode()
        headers = sign_response(signer, PROMPT_PATH, raw, caller, request_nonce(request.headers))
        return Response(raw, media_type="application/json", headers=headers)

    async def stream(request: Request) -> Response:
        """The same checks, then the answer as btstream/1 lines (docs/protocol.md 10).
        An answer whose first text takes longer than ``KEEPALIVE_S`` (a model that
        writes the whole text first) streams empty deltas meanwhile, one every
        ``KEEPALIVE_S``: the validator's stall limit counts the first line too. The
        answer slot is held until the last line is sent or the caller leaves."""
        admitted = await admit(request)
        if isinstance(admitted, Response):
            return admitted
        caller, req, _ = admitted
        await slots.acquire()
        start = time.perf_counter()

        async def first_piece() -> tuple[AsyncIterator[str], str | None]:
            pieces = _pieces(await run_answer(req))
            return pieces, await anext(pieces, None)

        def release_after(task: asyncio.Future) -> None:
            if not task.cancelled():
                task.exception()  # retrieved: it was logged, or nobody waits for it
            slots.release()

        opening = asyncio.ensure_future(first_piece())
        await asyncio.wait({opening}, timeout=KEEPALIVE_S)
        if opening.done() and opening.exception() is not None:  # before any line: a 500
            slots.release()
            log.error("answer failed", exc_info=opening.exception())
            return _refuse(500, "answer failed")
        lines = StreamSigner(signer, request_nonce(request.headers), caller)

        async def body():
            try:
                while not opening.done():  # thinking: show the validator it is alive
                    yield lines.delta("")
                    await asyncio.wait({opening}, timeout=KEEPALIVE_S)
                pieces, first = opening.result()
                if first is not None:
                    yield lines.delta(first)
                    first_at = time.perf_counter() - start
                    async for piece in pieces:
                        if piece:
                            yield lines.delta(piece)
                else:
                    first_at = time.perf_counter() - start
                yield lines.end({"answer": time.perf_counter() - start, "first": first_at})
            except Exception:  # noqa: BLE001 - the stream ends without its end line
                log.exception("answer failed mid-stream")
            finally:  # the slot is free once the answer function is (not when the caller
                # leaves mid-thought: a thread cannot be cancelled)
                opening.add_done_callback(release_after)

        return StreamingResponse(
            body(), media_type=STREAM_MEDIA_TYPE, headers={STREAM_HEADER: STREAM_CONTEXT}
        )

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"hotkey": hotkey, "ok": True})

    return Starlette(
        routes=[
            Route(PROMPT_PATH, prompt, methods=["POST"]),
            Route(STREAM_PATH, stream, methods=["POST"]),
            Route(HEALTH_PATH, health, methods=["GET"]),
        ]
    )


async def _pieces(produced) -> AsyncIterator[str]:
    """An answer function's result as deltas: a finished text is cut into a few words
    per delta (``chunk_text``); an async or plain iterator of texts streams as it comes
    (a plain one is advanced off the event loop: a model may generate inside it)."""
    if isinstance(produced, str):
        for piece in chunk_text(produced):
            yield piece
    elif hasattr(produced, "__aiter__"):
        async for piece in produced:
            for part in chunk_text(str(piece), words_per_chunk=1 << 30):
                yield part
    else:
        iterator = iter(produced)
        done = object()
        while (piece := await asyncio.to_thread(next, iterator, done)) is not done:
            for part in chunk_text(str(piece), words_per_chunk=1 << 30):
                yield part


def bind(host: str, port: int) -> socket.socket:
    """A listening socket; port 0 picks a free one (read it from getsockname)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


class _Lingering:
    """A connection's transport whose ``close``, while the request's body is still
    coming (the answer was a refusal sent before it was read), half-closes first and
    closes ``LINGER_S`` later: the client reads the answer and an end. A plain close
    with unread bytes sends a reset, which can destroy the answer before the client
    reads it."""

    def __init__(self, transport, protocol):
        self._transport, self._protocol = transport, protocol

    def close(self) -> None:
        import h11

        waiting = self._protocol.conn.their_state is h11.SEND_BODY
        if waiting and not self._transport.is_closing() and self._transport.can_write_eof():
            self._transport.pause_reading()  # the rest of the body is not read
            self._transport.write_eof()
            self._protocol.loop.call_later(LINGER_S, self._transport.close)
        else:
            self._transport.close()

    def __getattr__(self, name: str):
        return getattr(self._transport, name)


def _header_deadline_protocol(timeout: float):
    """uvicorn's h11 protocol, closing connections that do not finish their request
    headers within ``timeout`` seconds of connecting or of their last response, and
    lingering on a close that leaves a body unread (``_Lingering``)."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderDeadline(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport) -> None:
            super().connection_made(_Lingering(transport, self))
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def connection_lost(self, exc) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            self._deadline = self.loop.call_later(timeout, self._expire)

        def _expire(self) -> None:
            if self.cycle is None or self.cycle.response_complete:  # no request under way
                self.transport.close()

    return HeaderDeadline


def _close_if_unread(app):
    """ASGI middleware: an answer sent before the request's body was read (a refusal)
    says ``Connection: close``, so the client opens a new connection for its next
    request instead of sending it down this one, which is closed after the answer."""

    async def wrapped(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)
        headers = dict(scope["headers"])
        read = {
            "done": not (
                headers.get(b"content-length", b"0") != b"0" or b"transfer-encoding" in headers
            )
        }

        async def tracked_receive():
            message = await receive()
            if message["type"] == "http.disconnect" or not message.get("more_body", False):
                read["done"] = True
            return message

        async def tracked_send(message):
            if message["type"] == "http.response.start" and not read["done"]:
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (b"connection", b"close")],
                }
            await send(message)

        return await app(scope, tracked_receive, tracked_send)

    return wrapped


def make_server(app: Starlette, sock: socket.socket, header_timeout: float = HEADER_TIMEOUT_S):
    """A uvicorn server on ``sock`` that slow clients cannot hold (see the module doc),
    nor its shutdown: answers still being sent get ``SHUTDOWN_GRACE_S``."""
    import uvicorn

    config = uvicorn.Config(
        _close_if_unread(app),
        http=_header_deadline_protocol(header_timeout),
        log_level="warning",
        timeout_keep_alive=5,
        limit_concurrency=1024,
        h11_max_incomplete_event_size=64 * 1024,
        lifespan="off",
        loop="asyncio",
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
    )
    server = uvicorn.Server(config)
    return server, server.serve(sockets=[sock])
