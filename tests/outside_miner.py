"""A miner written from docs/protocol.md alone: the standard library's HTTP server and
bittensor's btauth/1, nothing from ``prompting``. It answers with the first sentences
of the passage in the challenge (or the whole prompt), which scores above zero.

    python tests/outside_miner.py --wallet.path DIR [--port 8099] [--sign-wrong]

``--sign-wrong`` signs answers with another hotkey, as a miner answering for someone
else would: the validator must record them as ``forged``. ``--skip CHECK`` leaves out
one check of the protocol (``replay``, ``forms``, ``caller``), as a careless miner
would: the conformance check must name the rule it breaks.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import bittensor as bt
from bittensor import http_auth

PATH = "/v1/prompt"
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


def answer_text(request: dict) -> str:
    prompt = "\n".join(m["content"] for m in request["messages"] if m["role"] == "user")
    passage = prompt.split("Passage:", 1)[-1].strip()
    return " ".join(passage.split(". ")[:2])[:1000]


def validators(chain_file: str | None) -> set[str] | None:
    """Hotkeys the local chain lists (protocol 4); None: no chain file given."""
    if chain_file is None:
        return None
    try:
        with open(chain_file) as f:
            return {n["hotkey"] for n in json.load(f)["neurons"]}
    except FileNotFoundError:  # no validator has started there yet
        return set()


def make_handler(me: bt.Wallet, signer: bt.Wallet, chain_file: str | None, skip: set[str]):
    my_hotkey = me.hotkey.ss58_address

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
            if self.path.split("?")[0] != PATH:
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
                if not all(k in request for k in fields):
                    raise KeyError("a field is missing")
                text = answer_text(request)
            except (ValueError, KeyError, TypeError, AttributeError):
                return self._refuse(422, "not a prompt request")
            raw = json.dumps({"completion": text, "timings": {}}).encode()
            nonce = next(v for k, v in headers.items() if k.lower() == "x-bittensor-nonce")
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
        "--skip", action="append", default=[], choices=("replay", "forms", "caller")
    )
    args = parser.parse_args()
    me = wallet_at(args.wallet_path, "default")
    signer = wallet_at(args.wallet_path, "someone-else") if args.sign_wrong else me
    handler = make_handler(me, signer, args.chain_file, set(args.skip))
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
