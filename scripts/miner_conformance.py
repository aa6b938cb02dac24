"""Check a miner, in any language, against docs/protocol.md: one request per rule.

    python scripts/miner_conformance.py --endpoint 127.0.0.1:8099 --hotkey SS58 [--json]

Sends the signed good case and every refusal case the protocol names (replay, stale,
future, wrong receiver, tampered body, unsigned, wrong version, header forms, query
string, unregistered caller, oversize, bad body, wrong-typed fields, unknown fields,
chunked body) and prints
one line per rule: PASS or FAIL, the doc's section, what came back. Exit code 1 when a
MUST rule fails. It signs as the local validator's wallet (``<--neuron.full_path>/
wallets``), which it registers as a validator on that folder's local chain, as the
validator itself does at start; the unregistered caller is a key made for the run.

Then the streamed route (btstream/1, section 10): the same cases sent to
``/v1/prompt/stream`` (10.1: the same checks and status codes), each 200 read as a
stream whose every line must verify with the validator's own line verifier (its ``i``,
the running hash, the miner's hotkey signature; one end line, last); a request signed
for the other path (401, both ways); and one streamed request through the validator's
own client, as an organic request goes (stall limit, deadline), whose verified chunks
must be the text it records. Serving the streamed route is optional (section 10): a
miner that answers the signed good request there with 404 gets one SKIP line (it
scores 0 on every organic request), not a failure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from prompting.config import DEFAULT_STATE_DIR, OneLineParser, default_config
from prompting.network.addresses import endpoint, ss58
from prompting.protocol import PROMPT_PATH as PROMPT
from prompting.protocol import STREAM_PATH as STREAM

# Section 2: a field of another JSON type is refused (422), never coerced.
WRONG_TYPES = [
    ('step "3"', {"step": "3"}),
    ("step true", {"step": True}),
    ("step 3.0", {"step": 3.0}),
    ('timeout "10"', {"timeout": "10"}),
    ("timeout true", {"timeout": True}),
    ("task 5", {"task": 5}),
    ("content 5", {"messages": [{"role": "user", "content": 5}]}),
    ('max_tokens "64"', {"max_tokens": "64"}),
    ('temperature "0.5"', {"temperature": "0.5"}),
]


@dataclass
class Case:
    """One rule of the doc: its section, what to send, and which statuses conform."""

    name: str
    section: str
    expect: tuple[int, ...]
    send: Callable[[], object]  # returns the httpx response
    check_answer: bool = False  # a 200 must also carry a valid signed answer
    path: str = PROMPT  # a 200 from the streamed route must be a verified stream
    # judges what ``send`` returned itself, not by an HTTP status: (passed, detail)
    judge: Callable[[object], tuple[bool, str]] | None = None


@dataclass
class Outcome:
    name: str
    section: str
    passed: bool | None  # None: skipped, the rule does not apply (a route not offered)
    detail: str


class Checker:
    def __init__(self, url_base: str, miner_hotkey: str, wallet, timeout: float):
        import httpx
        from bittensor.http_auth import InMemoryNonceStore

        self.base, self.miner = url_base, miner_hotkey
        self.wallet, self.me = wallet, wallet.hotkey.ss58_address
        self.http = httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False)
        self.answers = InMemoryNonceStore()
        # the validator's defaults: the body cap of a whole stream, an organic request's
        # deadline and stall limit
        self.limits = default_config()

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

    def sign(self, body: bytes, *, signer=None, path=PROMPT, receiver=None, at=None):
        from bittensor import http_auth

        return http_auth.sign(
            signer or self.wallet,
            method="POST",
            path=path,
            body=body,
            receiver_ss58=receiver or self.miner,
            nonce_ns=at,
        )

    def post(self, body, headers: dict[str, str], target: str = PROMPT):
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

    def stream_problem(self, response) -> tuple[str | None, str]:
        """Why a 200 from the streamed route is not a conforming btstream/1 answer
        (section 10.2; every line checked as the validator checks it, 10.3, by its own
        verifier), or None; and what the stream carried."""
        from prompting.network import stream

        deltas: list[str] = []
        try:
            verifier = stream.StreamVerifier(
                response.request.headers["X-Bittensor-Nonce"],
                self.miner,
                self.me,
                stream.check_headers(response.headers),
            )
            # read as the validator reads it
            reader = stream.StreamReader(verifier, self.limits.neuron.max_body_bytes)
            for line in [*reader.feed(response.content), *reader.close()]:
                if line.kind == stream.DELTA:
                    deltas.append(line.data)
        except stream.StreamError as exc:
            return f"{exc.status}: {exc}", ""
        n, text = len(deltas), "".join(deltas)
        return (
            None,
            f"{n} delta{'s' * (n != 1)} + end line, each hash and sig verify: {text[:32]!r}",
        )

    def cases(self, path: str = PROMPT) -> list[Case]:
        """The rules of sections 1 to 6 sent to ``path``: the non-streamed route, or the
        streamed one, for which section 10.1 asks the same checks and status codes."""
        from bittensor.sp_core import Keypair

        good = self.body()
        good_headers = self.sign(good, path=path)
        stranger = Keypair.create_from_seed(os.urandom(32))  # on no chain

        def sign(body: bytes, **kw):
            return self.sign(body, path=path, **kw)

        def post(body, headers, target=path):
            return self.post(body, headers, target)

        def tampered():
            h = sign(good)
            return post(good.replace(b"pass statement", b"pass_statement"), h)

        def with_header(key, value):
            def send():
                h = sign(good)
                return post(good, {**h, key: value(h) if callable(value) else value})

            return send

        def chunked():
            h = sign(good)
            return self.http.post(self.base + path, content=iter([good]), headers=h)

        def unknown_fields():
            body = self.body(
                later_field={"x": 1},
                messages=[{"role": "user", "content": "What is pass?", "name": "someone"}],
            )
            return post(body, sign(body))

        def bad(body: bytes, signed: bool = True):
            return lambda: post(body, sign(body) if signed else {})

        def signed_at(nonce_ns: int):
            return lambda: post(good, sign(good, at=nonce_ns))

        now = time.time_ns()
        cases = [
            Case("good request", "6", (200,), lambda: post(good, good_headers), True),
            Case("unknown fields ignored", "2", (200,), unknown_fields, check_answer=True),
            Case("replay", "3.3", (401,), lambda: post(good, good_headers)),
            Case("stale nonce", "3.3", (401,), signed_at(now - 15 * 10**9)),
            Case("future nonce", "3.3", (401,), signed_at(now + 5 * 10**9)),
            Case(
                "wrong receiver",
                "3.3",
                (401,),
                lambda: post(good, sign(good, receiver=stranger.ss58_address)),
            ),
            Case("tampered body", "3.3", (401,), tampered),
            Case("unsigned", "3.3", (401,), lambda: post(good, {})),
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
                lambda: post(good, sign(good), path + "?x=1"),
            ),
            Case(
                "unregistered caller",
                "4",
                (403,),
                lambda: post(good, sign(good, signer=stranger)),
            ),
            Case("oversize, before auth", "5", (413,), bad(b" " * (256 * 1024 + 1), False)),
            Case("bad body, auth first", "5", (401,), bad(b'{"task": "qa"}', False)),
            Case("missing field", "2", (422,), bad(self.body(without="step"))),
            Case("not JSON", "2", (422,), bad(b"not json")),
            *(
                Case(f"wrong type: {name}", "2", (422,), bad(self.body(**fields)))
                for name, fields in WRONG_TYPES
            ),
            Case("chunked body", "1", (200, 411), chunked, check_answer=True),
        ]
        for case in cases:
            case.path = path
        return cases

    def stream_cases(self) -> list[Case]:
        """Section 10: the rules above on the streamed route (its good request first: a
        404 there is a route not offered), a request signed for one path refused on the
        other, and a streamed request as the validator's own client makes it."""
        cases = self.cases(STREAM)
        cases[0].section = "10.2"  # its answer: a verified btstream/1 stream
        for case in cases:
            case.name = f"stream: {case.name}"
        good = self.body()
        validator = Case(
            "stream: as the validator reads it",
            "10.3",
            (200,),
            self.validator_stream,
            judge=judge_validator_stream,
        )
        return [
            cases[0],
            validator,
            *cases[1:],
            Case(
                "stream: signed for /v1/prompt",
                "10.1",
                (401,),
                lambda: self.post(good, self.sign(good, path=PROMPT), STREAM),
                path=STREAM,
            ),
            Case(
                "prompt: signed for the stream",
                "10.1",
                (401,),
                lambda: self.post(good, self.sign(good, path=STREAM), PROMPT),
            ),
        ]

    def validator_stream(self):
        """One streamed request through the validator's own client, as an organic one
        goes (``MinerClient.query_stream``: each line verified as it arrives, the stall
        limit, the deadline): its result and the verified chunks it handed on."""
        import asyncio

        from prompting.chain.base import Neuron
        from prompting.network.client import MinerClient
        from prompting.protocol import PromptRequest

        organic = self.limits.organic
        request = PromptRequest.model_validate_json(self.body(timeout=organic.timeout))
        miner = Neuron(0, self.miner, "", 0.0, self.base.removeprefix("http://"), False)
        shown: list[str] = []

        async def on_delta(uid: int, text: str) -> None:
            shown.append(text)

        async def ask():
            client = MinerClient(self.wallet, max_body_bytes=self.limits.neuron.max_body_bytes)
            try:
                return await client.query_stream(
                    miner,
                    request,
                    timeout=organic.timeout,
                    stall_s=organic.stall_s,
                    on_delta=on_delta,
                )
            finally:
                await client.aclose()

        return asyncio.run(ask()), shown

    def run_case(self, case: Case) -> tuple[Outcome, int | None]:
        """One case: its outcome, and the HTTP status it got (None: none, or judged)."""
        import httpx

        try:
            response = case.send()
        except httpx.HTTPError as exc:
            return Outcome(case.name, case.section, False, f"{type(exc).__name__}: {exc}"), None
        if case.judge is not None:
            return Outcome(case.name, case.section, *case.judge(response)), None
        status = response.status_code
        detail = f"{status} (expected {' or '.join(map(str, case.expect))})"
        passed = status in case.expect
        if passed and status == 200 and case.check_answer:
            if case.path == STREAM:
                problem, carried = self.stream_problem(response)
                detail = carried
            else:
                problem = self.answer_problem(response)
            passed, detail = problem is None, problem or detail
        elif status != 200:
            reason = response.text.strip().replace("\n", " ")[:80]
            detail += f": {reason}" if reason else ""
        return Outcome(case.name, case.section, passed, detail), status

    def run(self) -> list[Outcome]:
        outcomes = [self.run_case(case)[0] for case in self.cases()]
        cases = self.stream_cases()
        first, status = self.run_case(cases[0])
        if status == 404:  # section 10: serving the streamed route is optional
            why = "404 on the signed good request; organic requests (10.5) will score 0"
            outcomes.append(Outcome("stream: not offered", "10", None, why))
        else:
            outcomes += [first] + [self.run_case(case)[0] for case in cases[1:]]
        self.http.close()
        return outcomes


def judge_validator_stream(sent) -> tuple[bool, str]:
    """What the validator records of the streamed answer: ``ok``, and the text it scores
    is exactly the verified chunks it handed on (what a user was shown)."""
    result, shown = sent
    if not result.ok:
        return False, f"{result.status}: {result.error}"[:200]
    if result.completion != "".join(shown):
        return False, "the text recorded is not the verified chunks joined"
    first = "no text" if result.ttft is None else f"first text at {result.ttft:.3f} s"
    return True, f"ok: the text recorded is its {len(shown)} verified chunks; {first}"


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
            verdict = {True: "PASS", False: "FAIL", None: "SKIP"}[o.passed]
            print(f"{verdict}  §{o.section:<5} {o.name:<36}  {o.detail}")
    failed = [o for o in outcomes if o.passed is False]
    skipped = sum(o.passed is None for o in outcomes)
    ran = len(outcomes) - skipped
    note = f" ({skipped} skipped: not offered)" if skipped else ""
    print(f"{ran - len(failed)} of {ran} rules pass{note}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
