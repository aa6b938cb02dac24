"""Record a signed request and a signed answer of the miner protocol, as JSON.

    python scripts/protocol_vectors.py                           # print them
    python scripts/protocol_vectors.py --write docs/protocol.md  # replace the doc's

Two wallets made from fixed, published seeds (a validator and a miner, in a temporary
folder; never fund them) sign exactly what
the validator and the reference miner send: the request with ``prompting``'s client
signing, the answer with the reference miner's. Each carries the exact bytes signed
(``payload``) for implementations in other languages. sr25519 signatures are
randomized, so each run records new signatures (the hotkeys stay); any must verify.
docs/protocol.md carries one run's output, and tests/test_protocol_doc.py verifies it;
the streamed exchange (section 10) is recorded the same way, its lines signed as the
reference miner signs them.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile

SEEDS = {"validator": "0x" + "11" * 32, "miner": "0x" + "22" * 32}  # public test keys
DOC_BLOCK = re.compile(r"(<!-- vectors -->\n```json\n).*?(\n```)", re.DOTALL)
STREAM_BLOCK = re.compile(r"(<!-- stream vectors -->\n```json\n).*?(\n```)", re.DOTALL)


def payload(headers: dict[str, str], method: str, path: str, body: str) -> str:
    """The btauth/1 bytes that ``headers`` sign (all are text, so shown as a string)."""
    from bittensor import http_auth

    return http_auth.build_payload(
        scheme=headers.get(http_auth.HEADER_CRYPTO, "sr25519"),
        method=method,
        path=path,
        body=body.encode(),
        nonce_ns=int(headers[http_auth.HEADER_NONCE]),
        sender_ss58=headers[http_auth.HEADER_HOTKEY],
        receiver_ss58=headers[http_auth.HEADER_RECEIVER],
    ).decode()


def seeded_wallet(name: str, folder: str):
    """A wallet whose hotkey is made from ``SEEDS[name]``: the same ss58 on every run."""
    import bittensor as bt

    wallet = bt.Wallet(name=name, hotkey="default", path=folder)
    wallet.regenerate_hotkey(seed=SEEDS[name], use_password=False, overwrite=True, suppress=True)
    return wallet


def record() -> dict:
    from prompting.network import auth
    from prompting.protocol import PROMPT_PATH, ChatMessage, PromptRequest, PromptResponse

    with tempfile.TemporaryDirectory() as folder:
        validator = seeded_wallet("validator", folder)
        miner = seeded_wallet("miner", folder)
        v_hotkey, m_hotkey = validator.hotkey.ss58_address, miner.hotkey.ss58_address
        request = PromptRequest(
            task="qa",
            challenge_id="qa:pydoc:pass:0:7",
            messages=[ChatMessage(role="user", content="What does the pass statement do?")],
            timeout=10.0,
            step=1,
        )
        body = request.body()
        headers = auth.sign(validator.hotkey, PROMPT_PATH, body, m_hotkey)
        answer = PromptResponse(completion="Nothing: it is a placeholder statement.")
        raw = answer.model_dump_json().encode()
        answer_headers = auth.sign_response(
            miner.hotkey, PROMPT_PATH, raw, v_hotkey, auth.request_nonce(headers)
        )
    answer_path = auth.response_target(PROMPT_PATH, auth.request_nonce(headers))
    return {
        "validator_seed": SEEDS["validator"],
        "validator_hotkey": v_hotkey,
        "miner_seed": SEEDS["miner"],
        "miner_hotkey": m_hotkey,
        "request": {
            "method": "POST",
            "path": PROMPT_PATH,
            "headers": headers,
            "body": body.decode(),
            "payload": payload(headers, "POST", PROMPT_PATH, body.decode()),
        },
        "answer": {
            "status": 200,
            "headers": answer_headers,
            "body": raw.decode(),
            "payload": payload(answer_headers, auth.RESPONSE_METHOD, answer_path, raw.decode()),
        },
    }


def record_stream() -> dict:
    """A streamed exchange (docs/protocol.md 10): the request signed for the stream path,
    and the answer's lines as the reference miner signs them, with each line's running
    hash and the exact bytes its signature covers."""
    from prompting.network import auth, stream
    from prompting.protocol import STREAM_PATH, ChatMessage, PromptRequest

    with tempfile.TemporaryDirectory() as folder:
        validator = seeded_wallet("validator", folder)
        miner = seeded_wallet("miner", folder)
        v_hotkey, m_hotkey = validator.hotkey.ss58_address, miner.hotkey.ss58_address
        request = PromptRequest(
            task="organic",
            challenge_id="organic:5f1c0a2b",
            messages=[ChatMessage(role="user", content="What does the pass statement do?")],
            timeout=10.0,
            step=0,
            max_tokens=64,
        )
        body = request.body()
        headers = auth.sign(validator.hotkey, STREAM_PATH, body, m_hotkey)
        nonce = auth.request_nonce(headers)
        from bittensor.signing import resolve_signer

        lines = stream.StreamSigner(resolve_signer(miner, role="hotkey"), nonce, v_hotkey)
        seed = lines.hash
        raw = [
            lines.delta("Nothing: it is "),
            lines.delta("a placeholder statement."),
            lines.end({"answer": 0.25}),
        ]
    return {
        "validator_hotkey": v_hotkey,
        "miner_hotkey": m_hotkey,
        "request": {
            "method": "POST",
            "path": STREAM_PATH,
            "headers": headers,
            "body": body.decode(),
            "payload": payload(headers, "POST", STREAM_PATH, body.decode()),
        },
        "seed_text": f"{stream.STREAM_CONTEXT}\n{nonce}\n{m_hotkey}\n{v_hotkey}",
        "seed_hash": seed,
        "lines": [line.decode().rstrip("\n") for line in raw],
        "signed": [stream.signed_bytes(json.loads(line)["hash"]).decode() for line in raw],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", metavar="DOC", help="replace the vectors block in DOC")
    args = parser.parse_args(argv)
    text = json.dumps(record(), indent=2)
    streamed = json.dumps(record_stream(), indent=2, ensure_ascii=False)
    if not args.write:
        print(text)
        print(streamed)
        return 0
    with open(args.write) as f:
        doc = f.read()
    new, count = DOC_BLOCK.subn(lambda m: m.group(1) + text + m.group(2), doc)
    new, stream_count = STREAM_BLOCK.subn(lambda m: m.group(1) + streamed + m.group(2), new)
    if count != 1 or stream_count != 1:
        parser.exit(2, f"protocol_vectors.py: error: no vectors block in {args.write}\n")
    with open(args.write, "w") as f:
        f.write(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
