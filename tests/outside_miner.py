"""A miner written from docs/protocol.md alone: the standard library's HTTP server and
bittensor's btauth/1, nothing from ``prompting``. It answers with the first sentences
of the passage in the challenge (or the whole prompt), which scores above zero.

    python tests/outside_miner.py --wallet.path DIR [--port 8099] [--sign-wrong]

``--sign-wrong`` signs answers with another hotkey, as a miner answering for someone
else would: the validator must record them as ``forged``.
"""

from __future__ import annotations

import argparse
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import bittensor as bt
from bittensor import http_auth

PATH = "/v1/prompt"
MAX_BODY = 256 * 1024


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


def make_handler(me: bt.Wallet, signer: bt.Wallet):
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
            if self.path != PATH:
                return self._refuse(404, "not found")
            size = int(self.headers.get("Content-Length") or 0)
            if size > MAX_BODY:
                return self._refuse(413, "body too large")
            body = self.rfile.read(size)
            headers = dict(self.headers.items())
            try:  # on the raw bytes, before parsing (protocol 2.1)
                caller = http_auth.verify(
                    headers, body, method="POST", path=PATH, self_hotkey_ss58=my_hotkey
                )
            except http_auth.AuthError as exc:
                return self._refuse(401, str(exc))
            try:
                request = json.loads(body)
                text = answer_text(request)
            except (ValueError, KeyError, TypeError):
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
    args = parser.parse_args()
    me = wallet_at(args.wallet_path, "default")
    signer = wallet_at(args.wallet_path, "someone-else") if args.sign_wrong else me
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(me, signer))
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{server.server_address[1]}\n{me.hotkey.ss58_address}\n")
        os.replace(tmp, args.port_file)
    print(f"listening on 127.0.0.1:{server.server_address[1]} as {me.hotkey.ss58_address}")
    server.serve_forever()


if __name__ == "__main__":
    main()
