"""A miner written from docs/protocol.md alone: the standard library's HTTP server and
bittensor's btauth/1, nothing from ``prompting``. It answers with the first sentences
of the passage in the challenge (or the whole prompt), which scores above zero, on
``/v1/prompt`` and, streamed as btstream/1 lines a few words each, on
``/v1/prompt/stream`` (section 10: organic requests come only that way).

    python tests/outside_miner.py --wallet.path DIR [--port 8099] [--sign-wrong]

``--sign-wrong`` signs answers with another hotkey, as a miner answering for someone
else would: the validator must record them as ``forged``. ``--skip CHECK`` leaves out
one check of the protocol (``replay``, ``forms``, ``caller``), as a careless miner
would: the conformance check must name the rule it breaks. ``--no-stream`` serves no
streamed route (404 there); ``--stream-fault forge`` signs the second line with another
hotkey, ``--stream-fault hash`` sends a second line whose hash is not the running one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import bittensor as bt
from bittensor import http_auth

PATH = "/v1/prompt"
STREAM_PATH = "/v1/prompt/stream"  # protocol 10
MAX_BODY = 256 * 1024
FORMS = {  # protocol 3.1: each header value in one form
    "x-bittensor-nonce": re.compile(r"[1-9][0-9]{0,19}"),
    "x-bittensor-signature": re.compile(r"0x[0-9a-f]{128}"),
    "x-bittensor-crypto": re.compile(r"sr25519|ed25519"),
}


def wallet_at(path: str, name: str) -> bt.Wallet:
    wallet = bt.Wallet(name=name, hotkey="default", path=path)
    if not wallet.hotkey_file.exists_on_device():
        wallet.create_new_coldkey(use_password=False, overwrite=False, suppress=True)
        wallet.create_new_hotkey(use_password=False, overwrite=False, suppress=True)
    return wallet


def well_typed(request) -> bool:
    """Protocol 2: every field present and of its JSON type (a bool is no number)."""

    def number(x) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool)

    if not isinstance(request, dict):
        return False
    messages = request.get("messages")
    optional = {"max_tokens": int, "temperature": float}
    return (
        isinstance(request.get("task"), str)
        and isinstance(request.get("challenge_id"), str)
        and isinstance(messages, list)
        and 1 <= len(messages) <= 64
        and all(
            isinstance(m, dict)
            and m.get("role") in ("system", "user", "assistant")
            and isinstance(m.get("content"), str)
            for m in messages
        )
        and number(request.get("timeout"))
        and 0 < request["timeout"] <= 600
        and type(request.get("step")) is int
        and request["step"] >= 0
        and all(
            request.get(k) is None
            or (type(request[k]) is int if kind is int else number(request[k]))
            for k, kind in optional.items()
        )
    )


def answer_text(request: dict) -> str:
    prompt = "\n".join(m["content"] for m in request["messages"] if m["role"] == "user")
    passage = prompt.split("Passage:", 1)[-1].strip()
    return " ".join(passage.split(". ")[:2])[:1000]


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def stream_lines(
    text: str, nonce: str, signer, miner: str, validator: str, fault: str | None, other=None
):
    """The answer as btstream/1 lines (protocol 10.2): deltas of a few words, then the
    end line; each with the running hash and the hotkey's signature of it. ``fault``
    breaks the second line on purpose (``forge``: signed by ``other``; ``hash``: its
    hash is not chained to the first line's)."""
    words = text.split(" ")
    deltas = [" ".join(words[i : i + 4]) for i in range(0, len(words), 4)]
    deltas = [d + " " for d in deltas[:-1]] + deltas[-1:]
    pieces = [("delta", d) for d in deltas if d] + [("end", json.dumps({"answer": 0.0}))]
    seed = sha256_hex(f"btstream/1\n{nonce}\n{miner}\n{validator}")  # h_0
    running = seed
    for i, (kind, data) in enumerate(pieces, start=1):
        previous = seed if fault == "hash" and i == 2 else running
        running = sha256_hex(f"{previous}\n{i}\n{kind}\n{data}")
        key = other if fault == "forge" and i == 2 else signer
        sig = "0x" + key.sign(f"btstream/1\n{running}".encode()).hex()
        line = {"i": i, "type": kind, "data": data, "hash": running, "sig": sig}
        yield json.dumps(line).encode() + b"\n"


def validators(chain_file: str | None) -> set[str] | None:
    """Hotkeys the local chain lists (protocol 4); None: no chain file given."""
    if chain_file is None:
        return None
    try:
        with open(chain_file) as f:
            return {n["hotkey"] for n in json.load(f)["neurons"]}
    except FileNotFoundError:  # no validator has started there yet
        return set()


def make_handler(
    me: bt.Wallet,
    signer: bt.Wallet,
    chain_file: str | None,
    skip: set[str],
    stream: bool = True,
    fault: str | None = None,
    other: bt.Wallet | None = None,
):
    my_hotkey = me.hotkey.ss58_address
    routes = {PATH, STREAM_PATH} if stream else {PATH}

    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, body: bytes, headers: dict | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def _refuse(self, status: int, reason: str) -> None:
            self._send(status, json.dumps({"error": reason}).encode())

        def do_POST(self) -> None:  # noqa: N802 - http.server's hook
            route = self.path.split("?")[0]
            if route not in routes:
                return self._refuse(404, "not found")
            if self.headers.get("Content-Length") is None:  # chunked: protocol 1 allows 411
                return self._refuse(411, "Content-Length required")
            size = int(self.headers["Content-Length"])
            if size > MAX_BODY:
                return self._refuse(413, "body too large")
            body = self.rfile.read(size)
            headers = dict(self.headers.items())
            bad = [k for k, v in headers.items() if k.lower() in FORMS]
            bad = [k for k in bad if not FORMS[k.lower()].fullmatch(headers[k])]
            if bad and "forms" not in skip:
                return self._refuse(401, f"{bad[0]} is not in its form")
            try:  # on the raw bytes, before parsing, for the target as sent (protocol 3.3)
                caller = http_auth.verify(
                    headers,
                    body,
                    method="POST",
                    path=self.path,
                    self_hotkey_ss58=my_hotkey,
                    nonce_store=http_auth.InMemoryNonceStore() if "replay" in skip else None,
                )
            except http_auth.AuthError as exc:
                return self._refuse(401, str(exc))
            known = validators(chain_file)
            if known is not None and caller.hotkey_ss58 not in known and "caller" not in skip:
                return self._refuse(403, "caller is not registered on this subnet")
            try:
                request = json.loads(body)
                fields = ("task", "challenge_id", "messages", "timeout", "step")
                if not all(k in request for k in fields):  # "types" skipped: fields only
                    raise KeyError("a field is missing")
                if "types" not in skip and not well_typed(request):
                    raise ValueError("a field of another type")
                text = answer_text(request)
            except (ValueError, KeyError, TypeError, AttributeError):
                return self._refuse(422, "not a prompt request")
            nonce = next(v for k, v in headers.items() if k.lower() == "x-bittensor-nonce")
            if route == STREAM_PATH:  # the same checks, then btstream/1 (protocol 10)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-ndjson")
                self.send_header("X-Bittensor-Stream", "btstream/1")
                self.end_headers()  # HTTP/1.0: the stream ends when the connection closes
                for line in stream_lines(
                    text,
                    nonce,
                    signer.hotkey,
                    my_hotkey,
                    caller.hotkey_ss58,
                    fault,
                    other and other.hotkey,
                ):
                    self.wfile.write(line)
                    self.wfile.flush()
                return None
            raw = json.dumps({"completion": text, "timings": {}}).encode()
            signed = http_auth.sign(  # protocol 3.1
                signer.hotkey,
                method="RESPONSE",
                path=f"{PATH}?request_nonce={nonce}",
                body=raw,
                receiver_ss58=caller.hotkey_ss58,
            )
            self._send(200, raw, signed)

        def log_message(self, *args) -> None:
            pass

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wallet.path", dest="wallet_path", required=True)
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--port-file", help="write the bound port here once listening")
    parser.add_argument("--sign-wrong", action="store_true", help="sign with another hotkey")
    parser.add_argument(
        "--chain-file", help="serve only hotkeys this local chain lists (<state>/local_chain.json)"
    )
    parser.add_argument(
        "--skip", action="append", default=[], choices=("replay", "forms", "caller", "types")
    )
    parser.add_argument("--no-stream", action="store_true", help="serve no streamed route")
    parser.add_argument("--stream-fault", choices=("forge", "hash"), help="break line 2")
    args = parser.parse_args()
    me = wallet_at(args.wallet_path, "default")
    wrong = args.sign_wrong or args.stream_fault == "forge"
    other = wallet_at(args.wallet_path, "someone-else") if wrong else None
    signer = other if args.sign_wrong else me
    handler = make_handler(
        me, signer, args.chain_file, set(args.skip), not args.no_stream, args.stream_fault, other
    )
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler)
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{server.server_address[1]}\n{me.hotkey.ss58_address}\n")
        os.replace(tmp, args.port_file)
    print(f"listening on 127.0.0.1:{server.server_address[1]} as {me.hotkey.ss58_address}")
    server.serve_forever()


if __name__ == "__main__":
    main()
