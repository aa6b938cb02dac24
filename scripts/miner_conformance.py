"""Check a miner, in any language, against docs/protocol.md: one request per rule.

    python scripts/miner_conformance.py --endpoint 127.0.0.1:8099 --hotkey SS58 [--json]

Sends the signed good case and every refusal case the protocol names (replay, stale,
future, wrong receiver, tampered body, unsigned, wrong version, header forms, query
string, unregistered caller, oversize, bad body, unknown fields, chunked body) and prints
one line per rule: PASS or FAIL, the doc's section, what came back. Exit code 1 when a
MUST rule fails. It signs as the local validator's wallet (``<--neuron.full_path>/
wallets``), which it registers as a validator on that folder's local chain, as the
validator itself does at start; the unregistered caller is a key made for the run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from prompting.config import DEFAULT_STATE_DIR, OneLineParser
from prompting.network.addresses import endpoint, ss58


@dataclass
class Case:
    """One rule of the doc: its section, what to send, and which statuses conform."""

    name: str
    section: str
    expect: tuple[int, ...]
    send: Callable[[], object]  # returns the httpx response
    check_answer: bool = False  # a 200 must also carry a valid signed answer


@dataclass
class Outcome:
    name: str
    section: str
    passed: bool
    detail: str


class Checker:
    def __init__(self, url_base: str, miner_hotkey: str, wallet, timeout: float):
        import httpx
        from bittensor.http_auth import InMemoryNonceStore

        self.base, self.miner = url_base, miner_hotkey
        self.wallet, self.me = wallet, wallet.hotkey.ss58_address
        self.http = httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False)
        self.answers = InMemoryNonceStore()

    def body(self, without: str = "", **extra) -> bytes:
        request = {
            "task": "qa",
            "challenge_id": "qa:conformance:0",
            "messages": [{"role": "user", "content": "What does the pass statement do?"}],
            "timeout": 10.0,
            "step": 0,
        }
        request.pop(without, None)
        return json.dumps({**request, **extra}).encode()

    def sign(self, body: bytes, *, signer=None, path="/v1/prompt", receiver=None, at=None):
        from bittensor import http_auth

        return http_auth.sign(
            signer or self.wallet,
            method="POST",
            path=path,
            body=body,
            receiver_ss58=receiver or self.miner,
            nonce_ns=at,
        )

    def post(self, body, headers: dict[str, str], target: str = "/v1/prompt"):
        return self.http.post(self.base + target, content=body, headers=headers)

    def answer_problem(self, response) -> str | None:
        """Why a 200 is not a conforming answer (section 6), or None."""
        from bittensor.http_auth import AuthError

        from prompting.network import auth
        from prompting.protocol import PROMPT_PATH, PromptResponse

        try:
            signer = auth.verify_response(
                response.headers,
                response.content,
                PROMPT_PATH,
                self.me,
                response.request.headers.get("X-Bittensor-Nonce", ""),
                self.answers,
            )
        except AuthError as exc:
            return f"answer signature: {type(exc).__name__}: {exc}"
        if signer != self.miner:
            return f"answer signed by {signer}, not the miner's hotkey"
        try:
            PromptResponse.model_validate_json(response.content)
        except ValueError as exc:
            return f"answer body: {str(exc).splitlines()[0]}"
        return None

    def cases(self) -> list[Case]:
        from bittensor.sp_core import Keypair

        good = self.body()
        good_headers = self.sign(good)
        stranger = Keypair.create_from_seed(os.urandom(32))  # on no chain

        def tampered():
            h = self.sign(good)
            return self.post(good.replace(b"pass statement", b"pass_statement"), h)

        def with_header(key, value):
            def send():
                h = self.sign(good)
                return self.post(good, {**h, key: value(h) if callable(value) else value})

            return send

        def chunked():
            h = self.sign(good)
            return self.http.post(self.base + "/v1/prompt", content=iter([good]), headers=h)

        def unknown_fields():
            body = self.body(
                later_field={"x": 1},
                messages=[{"role": "user", "content": "What is pass?", "name": "someone"}],
            )
            return self.post(body, self.sign(body))

        def bad(body: bytes, sign: bool = True):
            return lambda: self.post(body, self.sign(body) if sign else {})

        now = time.time_ns()
        return [
            Case("good request", "6", (200,), lambda: self.post(good, good_headers), True),
            Case("unknown fields ignored", "2", (200,), unknown_fields, check_answer=True),
            Case("replay", "3.3", (401,), lambda: self.post(good, good_headers)),
            Case("stale nonce", "3.3", (401,), bad_at(self, good, now - 15 * 10**9)),
            Case("future nonce", "3.3", (401,), bad_at(self, good, now + 5 * 10**9)),
            Case(
                "wrong receiver",
                "3.3",
                (401,),
                lambda: self.post(good, self.sign(good, receiver=stranger.ss58_address)),
            ),
            Case("tampered body", "3.3", (401,), tampered),
            Case("unsigned", "3.3", (401,), lambda: self.post(good, {})),
            Case("wrong version", "3.1", (401,), with_header("X-Bittensor-Version", "2")),
            Case(
                "nonce with a leading zero",
                "3.1",
                (401,),
                with_header("X-Bittensor-Nonce", lambda h: "0" + h["X-Bittensor-Nonce"]),
            ),
            Case(
                "signature in upper case",
                "3.1",
                (401,),
                with_header(
                    "X-Bittensor-Signature",
                    lambda h: "0x" + h["X-Bittensor-Signature"][2:].upper(),
                ),
            ),
            Case("unknown crypto", "3.1", (401,), with_header("X-Bittensor-Crypto", "ecdsa")),
            Case(
                "crypto in upper case", "3.1", (401,), with_header("X-Bittensor-Crypto", "SR25519")
            ),
            Case(
                "query string not signed",
                "3.2",
                (401,),
                lambda: self.post(good, self.sign(good), "/v1/prompt?x=1"),
            ),
            Case(
                "unregistered caller",
                "4",
                (403,),
                lambda: self.post(good, self.sign(good, signer=stranger)),
            ),
            Case("oversize, before auth", "5", (413,), bad(b" " * (256 * 1024 + 1), False)),
            Case("bad body, auth first", "5", (401,), bad(b'{"task": "qa"}', False)),
            Case("missing field", "2", (422,), bad(self.body(without="step"))),
            Case("not JSON", "2", (422,), bad(b"not json")),
            Case("chunked body", "1", (200, 411), chunked, check_answer=True),
        ]

    def run(self) -> list[Outcome]:
        import httpx

        outcomes = []
        for case in self.cases():
            try:
                response = case.send()
            except httpx.HTTPError as exc:
                outcomes.append(
                    Outcome(case.name, case.section, False, f"{type(exc).__name__}: {exc}")
                )
                continue
            status = response.status_code
            detail = f"{status} (expected {' or '.join(map(str, case.expect))})"
            passed = status in case.expect
            if passed and status == 200 and case.check_answer:
                problem = self.answer_problem(response)
                passed, detail = problem is None, problem or detail
            elif status != 200:
                reason = response.text.strip().replace("\n", " ")[:80]
                detail += f": {reason}" if reason else ""
            outcomes.append(Outcome(case.name, case.section, passed, detail))
        self.http.close()
        return outcomes


def bad_at(checker: Checker, body: bytes, nonce_ns: int):
    return lambda: checker.post(body, checker.sign(body, at=nonce_ns))


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="miner_conformance.py", description=__doc__.split("\n")[0])
    p.add_argument("--endpoint", type=endpoint, required=True, help="HOST:PORT of the miner")
    p.add_argument("--hotkey", type=ss58, required=True, help="the miner's hotkey (ss58)")
    p.add_argument(
        "--neuron.full_path",
        dest="state",
        default=DEFAULT_STATE_DIR,
        help="the local validator's state folder: its wallet signs, its chain lists it",
    )
    p.add_argument("--wallet.name", dest="wallet_name", default="default")
    p.add_argument("--wallet.hotkey", dest="wallet_hotkey", default="default")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    p.add_argument("--json", action="store_true", help="JSON lines out")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from prompting.chain import local_chain_path
    from prompting.chain.local import LocalChain
    from prompting.network.auth import load_or_create_wallet

    state = os.path.abspath(os.path.expanduser(args.state))
    wallet = load_or_create_wallet(
        args.wallet_name, args.wallet_hotkey, os.path.join(state, "wallets")
    )
    LocalChain(local_chain_path(state)).register(  # as the validator does at start
        wallet.hotkey.ss58_address,
        wallet.coldkeypub.ss58_address,
        stake=10_000.0,
        validator_permit=True,
    )
    print(f"signing as validator hotkey {wallet.hotkey.ss58_address}", file=sys.stderr)
    outcomes = Checker(f"http://{args.endpoint}", args.hotkey, wallet, args.timeout).run()
    for o in outcomes:
        if args.json:
            print(json.dumps(o.__dict__))
        else:
            print(f"{'PASS' if o.passed else 'FAIL'}  §{o.section:<5} {o.name:<28} {o.detail}")
    failed = [o for o in outcomes if not o.passed]
    print(f"{len(outcomes) - len(failed)} of {len(outcomes)} rules pass", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
