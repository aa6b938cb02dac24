"""Record a signed request and a signed answer of the miner protocol, as JSON.

    python scripts/protocol_vectors.py > vectors.json

Two fresh wallets (a validator and a miner, in a temporary folder) sign exactly what
the validator and the reference miner send: the request with ``prompting``'s client
signing, the answer with the reference miner's. sr25519 signatures are randomized, so
each run prints new vectors; any of them must verify. docs/protocol.md carries one
run's output, and tests/test_protocol_doc.py verifies it with the SDK.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def record() -> dict:
    from prompting.network import auth
    from prompting.protocol import PROMPT_PATH, ChatMessage, PromptRequest, PromptResponse

    with tempfile.TemporaryDirectory() as folder:
        validator = auth.load_or_create_wallet("validator", "default", folder)
        miner = auth.load_or_create_wallet("miner", "default", folder)
        v_hotkey, m_hotkey = validator.hotkey.ss58_address, miner.hotkey.ss58_address
        request = PromptRequest(
            task="qa",
            challenge_id="qa:pydoc:pass:0:7",
            messages=[ChatMessage(role="user", content="What does the pass statement do?")],
            timeout=10.0,
            step=1,
        )
        body = request.model_dump_json().encode()
        headers = auth.sign(validator.hotkey, PROMPT_PATH, body, m_hotkey)
        answer = PromptResponse(completion="Nothing: it is a placeholder statement.")
        raw = answer.model_dump_json().encode()
        answer_headers = auth.sign_response(
            miner.hotkey, PROMPT_PATH, raw, v_hotkey, auth.request_nonce(headers)
        )
    return {
        "validator_hotkey": v_hotkey,
        "miner_hotkey": m_hotkey,
        "request": {
            "method": "POST",
            "path": PROMPT_PATH,
            "headers": headers,
            "body": body.decode(),
        },
        "answer": {"status": 200, "headers": answer_headers, "body": raw.decode()},
    }


if __name__ == "__main__":
    print(json.dumps(record(), indent=2))
