"""The OpenAI-compatible HTTP routes of the organic endpoint.

``POST /v1/chat/completions`` (``stream`` true or false, ``max_tokens`` or
``max_completion_tokens``, ``temperature``) and ``GET /v1/models``, answered in the
shapes the ``openai`` client reads, errors included (``{"error": {"message", "type",
"code"}}``). Checks, in order, each with its status: a body over the cap (413, before
anything else is read), the API key (401), the key's rate (429, with Retry-After),
the body's shape (400), a free slot (503, with Retry-After), a miner to ask (503),
then the miners' answers (502 when none verifies). A streamed answer starts only once
a miner's first piece of text has verified; if that miner then fails, the stream
ends with an error event (the ``openai`` client raises it), never with unverified text.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from prompting.network.client import QueryResult
from prompting.organic.keys import ApiKeys
from prompting.organic.queue import Full
from prompting.organic.service import NoMiners, OrganicService

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 256 * 1024  # as a miner's request cap: what is accepted can be sent on


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text"]
    text: str


class UserMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant"]
    content: Union[str, list[TextPart]]

    def as_protocol(self) -> dict:
        text = (
            self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)
        )
        return {"role": "system" if self.role == "developer" else self.role, "content": text}


class ChatRequest(BaseModel):
    """The fields of OpenAI's chat completion request that the endpoint honours; others
    (``n``, ``tools``, …) are ignored, as a miner ignores unknown fields."""

    model_config = ConfigDict(extra="ignore")
    model: str = ""
    messages: list[UserMessage] = Field(min_length=1, max_length=64)
    stream: bool = False
    max_tokens: int | None = Field(default=None, ge=1, le=8192)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=8192)
    temperature: float | None = Field(default=None, ge=0, le=2)


def error(status: int, message: str, kind: str, code: str, retry_after: float | None = None):
    headers = {"Retry-After": str(max(1, round(retry_after)))} if retry_after else None
    body = {"error": {"message": message, "type": kind, "code": code, "param": None}}
    return JSONResponse(body, status_code=status, headers=headers)


def create_api(service: OrganicService, keys: ApiKeys, model_name: str) -> Starlette:
    async def read_capped(request: Request) -> bytes | None:
        declared = request.headers.get("content-length")
        if declared and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
            return None
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return None
        return bytes(body)

    def bearer(request: Request) -> str | None:
        value = request.headers.get("authorization", "")
        return value[7:].strip() if value.lower().startswith("bearer ") else None

    async def models(request: Request) -> Response:
        if keys.lookup(bearer(request)) is None:
            return error(
                401, "missing or unknown API key", "authentication_error", "invalid_api_key"
            )
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {"id": model_name, "object": "model", "created": 0, "owned_by": "prompting"}
                ],
            }
        )

    async def chat(request: Request) -> Response:
        body = await read_capped(request)
        if body is None:
            return error(
                413, f"body over {MAX_BODY_BYTES} bytes", "invalid_request_error", "too_large"
            )
        entry = keys.lookup(bearer(request))
        if entry is None:
            return error(
                401, "missing or unknown API key", "authentication_error", "invalid_api_key"
            )
        wait = keys.allow(entry)
        if wait:
            return error(
                429,
                f"rate limit of {entry.rate_per_minute} requests per minute",
                "rate_limit_error",
                "rate_limit_exceeded",
                retry_after=wait,
            )
        try:
            req = ChatRequest.model_validate_json(body)
            messages = [m.as_protocol() for m in req.messages]
            if any(len(m["content"]) > 200_000 for m in messages):
                raise ValueError("a message over 200,000 characters")
        except (ValidationError, ValueError) as exc:
            first = str(exc).splitlines()
            reason = " ".join(first[:3])[:300] if first else "invalid body"
            return error(400, reason, "invalid_request_error", "invalid_body")
        try:
            await service.gate.acquire()
        except Full as exc:
            return error(503, f"busy: {exc}", "server_error", "overloaded", retry_after=5)
        try:
            exchange = service.start(
                messages, entry.name, req.max_completion_tokens or req.max_tokens, req.temperature
            )
        except NoMiners as exc:
            service.gate.release()
            return error(503, str(exc), "server_error", "no_miners", retry_after=10)
        except ValueError as exc:  # the request does not fit the miner protocol
            service.gate.release()
            return error(
                400, str(exc).splitlines()[0][:300], "invalid_request_error", "invalid_body"
            )
        ident = "chatcmpl-" + exchange.request.challenge_id.split(":", 1)[1]
        created = int(time.time())
        if req.stream:
            return await streamed(exchange, ident, created)
        return await whole(exchange, ident, created)

    async def whole(exchange, ident: str, created: int) -> Response:
        try:
            result: QueryResult | None = await exchange.first_ok
        except BaseException:
            exchange.user_left = True
            raise
        if result is None:
            return no_answer(exchange)
        return JSONResponse(
            {
                "id": ident,
                "object": "chat.completion",
                "created": created,
                "model": model_name,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": result.completion},
                        "finish_reason": "stop",
                    }
                ],
            },
            headers={"X-Prompting-Miner-Uid": str(result.uid)},
        )

    def no_answer(exchange) -> Response:
        statuses = sorted({r.status for r in exchange.results.values()})
        return error(
            502,
            f"no miner's answer verified ({', '.join(statuses) or 'none answered'})",
            "server_error",
            "no_verified_answer",
        )

    async def streamed(exchange, ident: str, created: int) -> Response:
        await exchange.chosen.wait()
        if exchange.winner is None:  # every miner is done and none sent text
            result = exchange.first_answer()
            if result is None:
                return no_answer(exchange)
            exchange.winner = result.uid
            exchange.pieces.put_nowait(result)

        def chunk(delta: dict, finish: str | None = None) -> bytes:
            obj = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model_name,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            return b"data: " + json.dumps(obj, ensure_ascii=False).encode() + b"\n\n"

        async def events():
            try:
                yield chunk({"role": "assistant", "content": ""})
                while True:
                    piece = await exchange.pieces.get()
                    if isinstance(piece, str):
                        if piece:
                            yield chunk({"content": piece})
                        continue
                    if piece.ok:
                        yield chunk({}, "stop")
                        yield b"data: [DONE]\n\n"
                    else:
                        failure = {
                            "message": f"the miner's stream broke off ({piece.status}: "
                            f"{piece.error})",
                            "type": "server_error",
                            "code": "miner_failed",
                        }
                        yield b"data: " + json.dumps({"error": failure}).encode() + b"\n\n"
                    return
            except BaseException:  # the user left (cancelled): the miners go on, scored
                exchange.user_left = True
                raise

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Prompting-Miner-Uid": str(exchange.winner)},
        )

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
        ]
    )


def keys_path(config) -> str:
    import os

    return config.organic.keys_file or os.path.join(config.neuron.full_path, "organic_keys.json")


async def serve(service: OrganicService, keys: ApiKeys, config) -> tuple[object, object, int]:
    """Start the endpoint in the running loop: (server, its serving task, port). The
    validator owns the signals (its loop stops on SIGINT/SIGTERM), not uvicorn."""
    import asyncio
    import contextlib

    from prompting.network.server import bind, make_server

    app = create_api(service, keys, config.organic.model_name)
    sock = bind(config.organic.host, config.organic.port)
    server, serving = make_server(app, sock)
    server.capture_signals = contextlib.nullcontext  # uvicorn would take SIGINT from the loop
    task = asyncio.ensure_future(serving)
    port = sock.getsockname()[1]
    log.info(
        "organic endpoint on http://%s:%d/v1 (keys: %s)",
        config.organic.host,
        port,
        keys_path(config),
    )
    return server, task, port


async def run_with_organic(validator, config, on_ready=None) -> OrganicService:
    """The validator's loop with the organic endpoint beside it, in one event loop; the
    endpoint stops with the loop, after the exchanges in progress (up to their timeout)."""
    import asyncio

    keys = ApiKeys(keys_path(config))  # a malformed file: KeysFileError, before serving
    if not keys._keys:
        log.warning(
            "organic: no API keys in %s, so every request gets 401; issue one with "
            "python scripts/organic_keys.py --file %s add --name NAME",
            keys.path,
            keys.path,
        )
    service = OrganicService(validator, config)
    server, task, port = await serve(service, keys, config)
    try:
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if task.done():
            task.result()  # the bind or start-up error, raised here
        if on_ready is not None:
            on_ready(service, port)
        await validator.run()
    finally:
        server.should_exit = True
        await service.drain(config.organic.timeout)
        await asyncio.gather(task, return_exceptions=True)
    return service
