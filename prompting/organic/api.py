"""The OpenAI-compatible HTTP routes of the organic endpoint, and its server.

``POST /v1/chat/completions``, ``GET /v1/models`` and ``GET /health`` (no key: for load
balancers; 503 while the validator stops or no miner can be asked), answered in the
shapes the ``openai`` client reads, errors included (``{"error": {"message", "type",
"param", "code"}}``). Checks on a chat request, in order, each with its status: a
declared body over the cap (413), the API key (401), the key's rate (429, with
Retry-After; nothing is charged yet), the body within its deadline (408, or 413 past
the cap), the body's shape and every parameter (400: what is not honoured is refused,
never ignored; 404 for another model), then the key's rate is charged, then a free slot
(503, with Retry-After, also while the validator stops), a miner to ask (503), then the
miners' answers (502 when none verifies). Honoured: ``messages``, ``stream`` with
``stream_options.include_usage``, ``max_tokens`` / ``max_completion_tokens`` and
``temperature`` (passed to the miners), ``stop`` (the served text ends before it),
``n`` of 1, ``user`` (accepted, not used); the parameters in ``NEUTRAL`` only at the
value that asks for nothing. ``usage`` is counted in the validator's tokenizer.

A streamed answer starts only once the chosen miner's first text has verified; if that
miner then fails, the stream ends with an error event (the ``openai`` client raises
it), never with unverified text.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from prompting.network.server import BODY_TIMEOUT_S, MAX_REQUEST_BYTES, BodyRefused, read_body
from prompting.organic.keys import ApiKeys
from prompting.organic.queue import Full
from prompting.organic.service import Draining, Exchange, NoMiners, OrganicService
from prompting.organic.usage import TokenCounter
from prompting.protocol import MAX_MESSAGE_CHARS, MAX_MESSAGES, MAX_TEMPERATURE, MAX_TOKENS

log = logging.getLogger(__name__)
# What is accepted can be sent on: a user's body is capped as a miner caps a request.
MAX_BODY_BYTES = MAX_REQUEST_BYTES
MAX_STOPS = 4  # as OpenAI: up to four stop sequences
# OpenAI parameters the endpoint does not honour, accepted only at the values that ask
# for nothing (what clients send by default); any other value is refused with 400.
NEUTRAL: dict[str, tuple] = {
    "top_p": (None, 1),
    "presence_penalty": (None, 0),
    "frequency_penalty": (None, 0),
    "logprobs": (None, False),
    "top_logprobs": (None, 0),
    "logit_bias": (None, {}),
    "seed": (None,),
    "tools": (None, []),
    "tool_choice": (None, "none", "auto"),
    "functions": (None, []),
    "function_call": (None, "none", "auto"),
    "parallel_tool_calls": (None, True, False),
    "response_format": (None, {"type": "text"}),
    "modalities": (None, ["text"]),
    "service_tier": (None, "auto", "default"),
    "store": (None, False),
    "metadata": (None, {}),
    "reasoning_effort": (None,),
    "prediction": (None,),
    "audio": (None,),
    "web_search_options": (None,),
}
STRICT = ConfigDict(extra="ignore", strict=True)  # "max_tokens": "5" is refused, not read


class TextPart(BaseModel):
    model_config = STRICT
    type: Literal["text"]
    text: str


class UserMessage(BaseModel):
    model_config = STRICT
    role: Literal["system", "developer", "user", "assistant"]
    content: Union[str, list[TextPart]]

    def as_protocol(self) -> dict:
        text = (
            self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)
        )
        return {"role": "system" if self.role == "developer" else self.role, "content": text}


class StreamOptions(BaseModel):
    model_config = STRICT
    include_usage: bool = False


class ChatRequest(BaseModel):
    """OpenAI's chat completion request: the fields honoured; the others land in
    ``model_extra`` and are judged by ``refusal``."""

    model_config = ConfigDict(extra="allow", strict=True)
    model: str
    messages: list[UserMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    temperature: float | None = Field(default=None, ge=0, le=MAX_TEMPERATURE)
    n: int | None = Field(default=None, ge=1)
    stop: Union[str, list[str], None] = None
    user: str | None = None  # OpenAI's end-user id: accepted, not used

    def stops(self) -> list[str]:
        return [s for s in ([self.stop] if isinstance(self.stop, str) else self.stop or []) if s]


@dataclass
class Refusal:
    status: int
    message: str
    code: str
    param: str | None = None


def refusal(req: ChatRequest, model_name: str) -> Refusal | None:
    """Why the request asks for what the endpoint does not do, or None."""
    if req.model != model_name:
        return Refusal(
            404,
            f"the model {req.model!r} does not exist; use {model_name!r}",
            "model_not_found",
            "model",
        )
    if req.n not in (None, 1):
        return Refusal(400, "n: one answer per request", "unsupported_value", "n")
    if req.stream_options is not None and not req.stream:
        return Refusal(
            400, "stream_options: only with stream true", "invalid_value", "stream_options"
        )
    stops = [req.stop] if isinstance(req.stop, str) else req.stop or []
    if len(stops) > MAX_STOPS:
        return Refusal(400, f"stop: at most {MAX_STOPS} sequences", "invalid_value", "stop")
    for name, value in (req.model_extra or {}).items():
        if name not in NEUTRAL:
            return Refusal(
                400, f"Unrecognized request argument supplied: {name}", "unknown_parameter", name
            )
        if value not in NEUTRAL[name]:
            allowed = " or ".join(json.dumps(v) for v in NEUTRAL[name])
            return Refusal(
                400,
                f"{name}: not supported (answers come from miners); only {allowed}",
                "unsupported_value",
                name,
            )
    return None


def too_long(messages: list[dict]) -> Refusal | None:
    """A message the miner protocol cannot carry (its content cap), refused before the
    key's rate is charged."""
    limit = MAX_MESSAGE_CHARS
    for i, m in enumerate(messages):
        if len(m["content"]) > limit:
            param = f"messages.{i}.content"
            return Refusal(400, f"{param}: over {limit:,} characters", "invalid_body", param)
    return None


class StopCutter:
    """The served text up to the first stop sequence. ``feed`` returns what may be
    shown now, holding back a tail that could be the start of a stop sequence split
    over two pieces; ``end`` the rest."""

    def __init__(self, stops: list[str]):
        self.stops = stops
        self.hold = max((len(s) for s in stops), default=1) - 1
        self.buffer = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        if self.stopped:
            return ""
        self.buffer += text
        found = [i for i in (self.buffer.find(s) for s in self.stops) if i >= 0]
        if found:
            out, self.buffer, self.stopped = self.buffer[: min(found)], "", True
            return out
        cut = max(0, len(self.buffer) - self.hold)
        out, self.buffer = self.buffer[:cut], self.buffer[cut:]
        return out

    def end(self) -> str:
        out, self.buffer = ("" if self.stopped else self.buffer), ""
        return out


def error(
    status: int,
    message: str,
    kind: str,
    code: str,
    param: str | None = None,
    retry_after: float | None = None,
) -> JSONResponse:
    headers = {"Retry-After": str(max(1, round(retry_after)))} if retry_after else None
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def unauthorized() -> JSONResponse:
    return error(401, "missing or unknown API key", "authentication_error", "invalid_api_key")


@dataclass
class Organic:
    """What the routes use, on ``app.state.organic``."""

    service: OrganicService
    keys: ApiKeys
    model_name: str
    tokens: TokenCounter | None  # None: no tokenizer, ``usage`` is null
    body_timeout: float = BODY_TIMEOUT_S


def bearer(request: Request) -> str | None:
    value = request.headers.get("authorization", "")
    return value[7:].strip() if value.lower().startswith("bearer ") else None


async def models(request: Request) -> Response:
    organic: Organic = request.app.state.organic
    if organic.keys.lookup(bearer(request)) is None:
        return unauthorized()
    entry = {"id": organic.model_name, "object": "model", "created": 0, "owned_by": "prompting"}
    return JSONResponse({"object": "list", "data": [entry]})


async def health(request: Request) -> Response:
    """For load balancers, without a key: 200 while requests are admitted and a miner
    can be asked, 503 otherwise."""
    service: OrganicService = request.app.state.organic.service
    if service.draining:
        return JSONResponse({"status": "draining"}, status_code=503)
    miners = service.serving()
    if not miners:
        return JSONResponse({"status": "no_miners"}, status_code=503)
    gate = service.gate
    return JSONResponse(
        {"status": "ok", "miners": miners, "running": gate.running, "waiting": gate.waiting}
    )


async def chat_completions(request: Request) -> Response:
    organic: Organic = request.app.state.organic
    declared = request.headers.get("content-length")
    if declared and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        return error(413, f"body over {MAX_BODY_BYTES} bytes", "invalid_request_error", "too_large")
    entry = organic.keys.lookup(bearer(request))
    if entry is None:
        return unauthorized()
    limit = f"rate limit of {entry.rate_per_minute} requests per minute"
    wait = organic.keys.wait(entry)
    if wait:
        return error(429, limit, "rate_limit_error", "rate_limit_exceeded", retry_after=wait)
    try:
        body = await read_body(request, MAX_BODY_BYTES, organic.body_timeout)
        req = ChatRequest.model_validate_json(body)
        messages = [m.as_protocol() for m in req.messages]
    except BodyRefused as refused:
        code = {413: "too_large", 408: "timeout"}.get(refused.status, "disconnected")
        return error(refused.status, refused.reason, "invalid_request_error", code)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        message = f"{param}: {first['msg']}" if param else first["msg"]
        return error(400, message[:300], "invalid_request_error", "invalid_body", param)
    problem = refusal(req, organic.model_name) or too_long(messages)
    if problem is not None:
        return error(
            problem.status, problem.message, "invalid_request_error", problem.code, problem.param
        )
    wait = organic.keys.allow(entry)  # charged now: a refused request uses nothing
    if wait:
        return error(429, limit, "rate_limit_error", "rate_limit_exceeded", retry_after=wait)
    service = organic.service
    try:
        exchange = await service.open(
            messages,
            entry.name,
            req.stream,
            req.max_completion_tokens or req.max_tokens,
            req.temperature,
        )
    except Draining as exc:
        return error(503, str(exc), "server_error", "stopping", retry_after=10)
    except Full as exc:
        return error(503, f"busy: {exc}", "server_error", "overloaded", retry_after=5)
    except NoMiners as exc:
        return error(503, str(exc), "server_error", "no_miners", retry_after=10)
    except ValueError as exc:  # the request does not fit the miner protocol
        reason = str(exc).splitlines()[0][:300]
        return error(400, reason, "invalid_request_error", "invalid_body")
    answer = Answer(organic, exchange, req, messages)
    return await (answer.streamed() if req.stream else answer.whole())


class Answer:
    """One request's answer in OpenAI's shapes: whole, or as server-sent events."""

    def __init__(self, organic: Organic, exchange: Exchange, req: ChatRequest, messages):
        self.organic, self.exchange, self.messages = organic, exchange, messages
        self.include_usage = bool(req.stream_options and req.stream_options.include_usage)
        self.cutter = StopCutter(req.stops())
        self.ident = "chatcmpl-" + exchange.request.challenge_id.split(":", 1)[1]
        self.created = int(time.time())

    async def usage(self, text: str) -> dict | None:
        tokens = self.organic.tokens
        return None if tokens is None else await tokens.usage(self.messages, text)

    def no_answer(self) -> Response:
        statuses = sorted({r.status for r in self.exchange.answers()})
        return error(
            502,
            f"no miner's answer verified ({', '.join(statuses) or 'none answered'})",
            "server_error",
            "no_verified_answer",
        )

    async def whole(self) -> Response:
        try:
            result = await self.exchange.whole
        except BaseException:
            self.exchange.user_left = True
            raise
        if result is None:
            return self.no_answer()
        text = self.cutter.feed(result.completion) + self.cutter.end()
        return JSONResponse(
            {
                "id": self.ident,
                "object": "chat.completion",
                "created": self.created,
                "model": self.organic.model_name,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": await self.usage(text),
            },
            headers={"X-Prompting-Miner-Uid": str(result.uid)},
        )

    def chunk(self, delta: dict, finish: str | None = None, usage: dict | None = None) -> bytes:
        obj = {
            "id": self.ident,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.organic.model_name,
            "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        if self.include_usage:
            obj["usage"] = usage
        return b"data: " + json.dumps(obj, ensure_ascii=False).encode() + b"\n\n"

    async def streamed(self) -> Response:
        exchange = self.exchange
        try:
            await exchange.decided.wait()
        except BaseException:
            exchange.user_left = True
            raise
        if exchange.served is None:  # every miner is done and none answered ok
            return self.no_answer()

        async def events():
            shown = []
            try:
                yield self.chunk({"role": "assistant", "content": ""})
                while not self.cutter.stopped:
                    piece = await exchange.pieces.get()
                    if not isinstance(piece, str):  # the served miner's end
                        if not piece.ok:
                            reason = f"the miner's stream broke off ({piece.status}: {piece.error})"
                            failure = {
                                "message": reason,
                                "type": "server_error",
                                "code": "miner_failed",
                            }
                            yield b"data: " + json.dumps({"error": failure}).encode() + b"\n\n"
                            return
                        break
                    if text := self.cutter.feed(piece):
                        shown.append(text)
                        yield self.chunk({"content": text})
                if tail := self.cutter.end():
                    shown.append(tail)
                    yield self.chunk({"content": tail})
                yield self.chunk({}, "stop")
                if self.include_usage:
                    yield self.chunk({}, usage=await self.usage("".join(shown)))
                yield b"data: [DONE]\n\n"
            except BaseException:  # the user left (cancelled): the miners go on, scored
                exchange.user_left = True
                raise

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Prompting-Miner-Uid": str(exchange.served)},
        )


def create_api(organic: Organic) -> Starlette:
    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
        ]
    )
    app.state.organic = organic
    return app


def keys_path(config) -> str:
    import os

    return config.organic.keys_file or os.path.join(config.neuron.full_path, "organic_keys.json")


class Endpoint:
    """The endpoint served in the validator's event loop, beside its steps. The
    validator owns the signals (its loop stops on SIGINT/SIGTERM), not uvicorn."""

    def __init__(self, organic: Organic, server, serving, port: int):
        self.organic, self.server, self.serving, self.port = organic, server, serving, port

    @property
    def service(self) -> OrganicService:
        return self.organic.service

    @classmethod
    async def start(cls, validator, config) -> Endpoint:
        """Serving once this returns. Raises KeysFileError (a malformed keys file) or
        OSError (the port)."""
        import asyncio
        import contextlib

        from prompting.network.server import bind, make_server
        from prompting.organic.usage import tokenizer_of

        keys = ApiKeys(keys_path(config))
        if not len(keys):
            log.warning(
                "organic: no API keys in %s, so every request gets 401; issue one with "
                "python scripts/organic_keys.py --file %s add --name NAME",
                keys.path,
                keys.path,
            )
        tokenizer = tokenizer_of(validator.llm)
        organic = Organic(
            OrganicService(validator, config),
            keys,
            config.organic.model_name,
            None if tokenizer is None else TokenCounter(tokenizer),
        )
        sock = bind(config.organic.host, config.organic.port)
        server, serving = make_server(create_api(organic), sock)
        server.capture_signals = contextlib.nullcontext  # uvicorn would take SIGINT
        task = asyncio.ensure_future(serving)
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if task.done():
            task.result()  # the bind or start-up error, raised here
        port = sock.getsockname()[1]
        log.info(
            "organic endpoint on http://%s:%d/v1 (keys: %s)", config.organic.host, port, keys.path
        )
        return cls(organic, server, task, port)

    async def stop(self, drain_s: float) -> None:
        """No new request; the exchanges in flight finish and are scored within
        ``drain_s`` (``OrganicService.stop``); then the server closes."""
        import asyncio

        await self.service.stop(drain_s)
        self.server.should_exit = True
        await asyncio.gather(self.serving, return_exceptions=True)
        if self.organic.tokens is not None:
            self.organic.tokens.close()
