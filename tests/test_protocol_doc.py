"""docs/protocol.md holds: its vectors verify, its numbers are the code's, and a miner
written from it alone (tests/outside_miner.py) joins the local subnet with the
documented command and is scored by the validator and by the miner harness."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from bittensor import http_auth

from prompting.config import TASKS
from tests.conftest import REPO

DOC = (Path(REPO) / "docs" / "protocol.md").read_text()


def vectors() -> dict:
    block = DOC.split("<!-- vectors -->", 1)[1]
    return json.loads(re.search(r"```json\n(.*?)\n```", block, re.DOTALL).group(1))


def test_the_vectors_hotkeys_come_from_their_published_seeds(tmp_path):
    import bittensor as bt

    v = vectors()
    for role in ("validator", "miner"):
        wallet = bt.Wallet(name=role, hotkey="default", path=str(tmp_path))
        wallet.regenerate_hotkey(seed=v[f"{role}_seed"], use_password=False, suppress=True)
        assert wallet.hotkey.ss58_address == v[f"{role}_hotkey"]


def test_the_vectors_payloads_are_the_bytes_btauth_signs():
    v = vectors()
    req, ans = v["request"], v["answer"]
    nonce = req["headers"]["X-Bittensor-Nonce"]
    for part, method, path in (
        (req, "POST", "/v1/prompt"),
        (ans, "RESPONSE", f"/v1/prompt?request_nonce={nonce}"),
    ):
        h = part["headers"]
        lines = part["payload"].split("\n")
        assert lines == [
            "btauth/1",
            "sr25519",
            method,
            path,
            hashlib.sha256(part["body"].encode()).hexdigest(),
            h["X-Bittensor-Nonce"],
            h["X-Bittensor-Hotkey"],
            h["X-Bittensor-Receiver"],
        ]
        expected = http_auth.build_payload(
            scheme="sr25519",
            method=method,
            path=path,
            body=part["body"].encode(),
            nonce_ns=int(h["X-Bittensor-Nonce"]),
            sender_ss58=h["X-Bittensor-Hotkey"],
            receiver_ss58=h["X-Bittensor-Receiver"],
        )
        assert part["payload"].encode() == expected


def test_the_recorded_exchange_verifies_and_a_changed_byte_does_not():
    v = vectors()
    req, ans = v["request"], v["answer"]
    nonce = int(req["headers"]["X-Bittensor-Nonce"])
    caller = http_auth.verify(
        req["headers"],
        req["body"].encode(),
        method="POST",
        path=req["path"],
        self_hotkey_ss58=v["miner_hotkey"],
        now_ns=nonce,
        nonce_store=http_auth.InMemoryNonceStore(),
    )
    assert caller.hotkey_ss58 == v["validator_hotkey"]
    signer = http_auth.verify(
        ans["headers"],
        ans["body"].encode(),
        method="RESPONSE",
        path=f"{req['path']}?request_nonce={nonce}",
        self_hotkey_ss58=v["validator_hotkey"],
        now_ns=int(ans["headers"]["X-Bittensor-Nonce"]),
        nonce_store=http_auth.InMemoryNonceStore(),
    )
    assert signer.hotkey_ss58 == v["miner_hotkey"]
    answer_at = int(ans["headers"]["X-Bittensor-Nonce"])
    path = f"/v1/prompt?request_nonce={nonce}"
    tampered = (  # (headers, body, path): one changed byte each
        (ans["headers"], ans["body"].replace("Nothing", "Nothinh"), path),
        (ans["headers"], ans["body"], f"/v1/prompt?request_nonce={nonce + 1}"),
        ({**ans["headers"], "X-Bittensor-Nonce": str(answer_at + 1)}, ans["body"], path),
    )
    for headers, body, target in tampered:
        with pytest.raises(http_auth.BadSignature):
            http_auth.verify(
                headers,
                body.encode(),
                method="RESPONSE",
                path=target,
                self_hotkey_ss58=v["validator_hotkey"],
                now_ns=answer_at,
                nonce_store=http_auth.InMemoryNonceStore(),
            )
    with pytest.raises(http_auth.StaleRequest):  # at any real time, a recording is stale
        http_auth.verify(
            ans["headers"],
            ans["body"].encode(),
            method="RESPONSE",
            path=path,
            self_hotkey_ss58=v["validator_hotkey"],
            nonce_store=http_auth.InMemoryNonceStore(),
        )


def test_the_doc_states_the_codes_numbers_and_statuses():
    from prompting.config import default_config
    from prompting.network import client
    from prompting.network.server import BODY_TIMEOUT_S, MAX_REQUEST_BYTES
    from prompting.protocol import MAX_COMPLETION_CHARS, PROMPT_PATH, ChatMessage, PromptRequest

    config = default_config()
    assert f"{MAX_REQUEST_BYTES // 1024} KiB" in DOC and PROMPT_PATH in DOC
    content = ChatMessage.model_fields["content"].metadata[0].max_length
    assert f"content up to {content:,} characters" in DOC
    messages = PromptRequest.model_fields["messages"].metadata
    assert f"list of {messages[0].min_length} to {messages[1].max_length}" in DOC
    timeout = PromptRequest.model_fields["timeout"].metadata
    assert f"{timeout[0].gt} < t ≤ {timeout[1].le}" in DOC
    assert f"`--neuron.timeout`, default {config.neuron.timeout:g} s" in DOC
    assert f"`--neuron.unreachable_cooldown_s` ({config.neuron.unreachable_cooldown_s:g} s)" in DOC
    assert f"{MAX_COMPLETION_CHARS:,}" in DOC
    assert config.neuron.max_body_bytes == 1 << 20 and "1 MiB" in DOC
    assert f"within {BODY_TIMEOUT_S:g} s" in DOC
    assert f"at most {http_auth.DEFAULT_MAX_AGE:g} s old" in DOC
    assert f"at most {http_auth.DEFAULT_ALLOWED_SKEW:g} s in the future" in DOC
    from prompting.config import parse_config
    from prompting.network.auth import Authorizer, CallerPolicy

    miner = parse_config("miner", [])
    assert f"`--miner.min_stake`, default {miner.miner.min_stake:g}" in DOC
    assert Authorizer(CallerPolicy(0.0), None).ttl == 60 and "at most once a minute" in DOC
    window = http_auth.DEFAULT_MAX_AGE + http_auth.DEFAULT_ALLOWED_SKEW
    assert f"accepted for at least {window:g} s" in DOC
    retention = http_auth.InMemoryNonceStore().retention  # what the reference miner uses
    assert f"the reference miner keeps them {retention:g} s" in DOC
    for status in (client.OK, client.FORGED, client.INVALID, client.HTTP_ERROR):
        assert f"| `{status}` |" in DOC
    for status in (client.TIMEOUT, client.REFUSED, client.UNREACHABLE):
        assert f"| `{status}` |" in DOC


def test_the_streamed_answer_section_states_the_codes_numbers():
    """Section 10's numbers and names are the code's: the line and delta caps, the
    headers a 200 needs, the organic limits and their defaults."""
    from prompting.config import default_config
    from prompting.network import stream

    organic = default_config().organic
    assert stream.MAX_LINE_BYTES == 256 * 1024 and "256 KiB per line" in DOC
    assert f"at most {stream.MAX_DELTA_CHARS:,} Unicode code points" in DOC
    assert f"`Content-Type: {stream.STREAM_MEDIA_TYPE}`" in DOC
    assert f"`{stream.STREAM_HEADER}: {stream.STREAM_CONTEXT}`" in DOC
    assert f"(`--organic.stall_s`, {organic.stall_s:g} s)" in DOC
    assert f"(`--organic.timeout`, {organic.timeout:g} s)" in DOC
    assert "`--organic.race`" in DOC
    # every delta the delta cap allows fits the line cap, escaped in its longest form
    assert 12 * stream.MAX_DELTA_CHARS + 1024 <= stream.MAX_LINE_BYTES


def start_outside_miner(tmp_path, name, *flags):
    port_file = tmp_path / f"{name}.port"
    proc = subprocess.Popen(
        [sys.executable, "tests/outside_miner.py", "--wallet.path", str(tmp_path / name)]
        + ["--port", "0", "--port-file", str(port_file), *flags],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    from tests.test_reliability import wait_for

    assert wait_for(port_file.exists, 60), "the outside miner did not start"
    port, hotkey = port_file.read_text().split()
    return proc, f"127.0.0.1:{port}", hotkey


def run(*cmd, timeout=300):
    return subprocess.run(
        [sys.executable, *cmd],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "WANDB_MODE": "offline"},
    )


@pytest.mark.slow
def test_a_miner_written_from_the_doc_joins_and_is_scored(tmp_path):
    state = tmp_path / "state"
    good, good_at, good_hotkey = start_outside_miner(tmp_path, "good")
    wrong, wrong_at, wrong_hotkey = start_outside_miner(tmp_path, "wrong", "--sign-wrong")
    try:
        for name, endpoint in (("good", good_at), ("wrong", wrong_at)):
            reg = run(
                "scripts/localnet.py", "--neuron.full_path", str(state), "register",
                "--endpoint", endpoint, "--wallet.path", str(tmp_path / name),
            )  # fmt: skip
            assert reg.returncode == 0, reg.stderr
        proc = run(
            "neurons/validator.py", "--neuron.full_path", str(state), "--wandb.off",
            "--neuron.model_id", "tiny", "--neuron.max_steps", "3", "--neuron.seed", "1",
            "--neuron.task_weights", "qa=1", "--local.miners", "1",
            "--local.strategies", "retrieval",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        events = [json.loads(line) for line in open(state / "events.jsonl")]
        by_hotkey: dict[str, list] = {}
        for e in events:
            for hotkey, status, reward in zip(e["hotkeys"], e["statuses"], e["rewards"]):
                by_hotkey.setdefault(hotkey, []).append((status, reward))
        assert {s for s, _ in by_hotkey[good_hotkey]} == {"ok"}
        # scored, not refused: what its lead-of-the-passage answer earns is the reward
        # stack's business (it may well be nothing: copying the passage is a cheap trick)
        assert all(r >= 0 for _, r in by_hotkey[good_hotkey])
        assert by_hotkey[wrong_hotkey] == [("forged", 0.0)] * 3

        for hotkey, endpoint, status in (
            (good_hotkey, good_at, "ok"),
            (wrong_hotkey, wrong_at, "forged"),
        ):
            harness = run(
                "scripts/miner_harness.py", "--neuron.full_path", str(state),
                "--endpoint", endpoint, "--hotkey", hotkey, "--task", "qa", "-n", "2", "--json",
                "--neuron.model_id", "tiny",
            )  # fmt: skip
            assert harness.returncode == 0, harness.stderr[-2000:]
            rows = [json.loads(line) for line in harness.stdout.splitlines()]
            assert len(rows) == 2 and {r["status"] for r in rows} == {status}
            if status == "ok":
                assert all(r["reward"] >= 0 and r["components"] for r in rows)
    finally:
        for proc in (good, wrong):
            proc.kill()
            proc.wait()


def register(state, *args):
    return run("scripts/localnet.py", "--neuron.full_path", str(state), "register", *args)


def test_register_is_idempotent_outlasts_the_validators_own_and_refuses_bad_input(
    tmp_path, wallets
):
    from prompting.chain import local_chain_path
    from prompting.chain.local import LocalChain

    state, miner = tmp_path / "state", wallets["miner"]
    keys = ["--hotkey", miner.hotkey.ss58_address, "--coldkey", miner.coldkeypub.ss58_address]
    first = register(state, "--endpoint", "http://127.0.0.1:8099/", *keys)
    assert first.returncode == 0, first.stderr
    # what a validator starting on this state folder does: itself, then its local miners
    chain = LocalChain(local_chain_path(str(state)))
    validator = wallets["validator"].hotkey.ss58_address
    chain.register(validator, "c", stake=10_000.0, validator_permit=True)
    chain.register(wallets["miner2"].hotkey.ss58_address, "c", endpoint="127.0.0.1:1")
    again = register(state, "--endpoint", "127.0.0.1:8100", *keys)
    assert again.returncode == 0, again.stderr
    neurons = {n.hotkey: n for n in LocalChain(local_chain_path(str(state))).metagraph()}
    assert len(neurons) == 3
    assert (
        neurons[miner.hotkey.ss58_address].uid,
        neurons[miner.hotkey.ss58_address].endpoint,
    ) == (
        0,
        "127.0.0.1:8100",
    )
    assert first.stdout.split()[1] == again.stdout.split()[1] == "0:"
    # the state folder's flag after the command's name, as the README shows it
    after = run("scripts/localnet.py", "register", "--neuron.full_path", str(state),
                "--endpoint", "127.0.0.1:8101", *keys)  # fmt: skip
    listed = run("scripts/localnet.py", "list", "--neuron.full_path", str(state))
    assert after.returncode == 0 and after.stdout.split()[1] == "0:", after.stderr
    assert "127.0.0.1:8101" in listed.stdout.splitlines()[0]

    bad = {
        ("--endpoint", "https://127.0.0.1:8099", *keys): "expected HOST:PORT",
        ("--endpoint", "127.0.0.1:70000", *keys): "expected HOST:PORT",
        ("--endpoint", "127.0.0.1:8099", "--hotkey", "5Fnot", "--coldkey", "x"): "ss58",
        ("--endpoint", "127.0.0.1:8099"): "give --hotkey and --coldkey",
        ("--endpoint", "127.0.0.1:8099", "--wallet.path", str(tmp_path / "none")): "cannot read",
        (
            "--endpoint",
            "127.0.0.1:8099",
            "--hotkey",
            validator,
            "--coldkey",
            validator,
        ): "validator",
    }
    for args, reason in bad.items():
        proc = register(state, *args)
        assert proc.returncode == 2 and reason in proc.stderr, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert len(LocalChain(local_chain_path(str(state))).metagraph()) == 3


def test_the_harness_reports_a_closed_port_and_refuses_bad_input(tmp_path, wallets):
    import socket

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    hotkey = wallets["miner"].hotkey.ss58_address
    base = ["scripts/miner_harness.py", "--neuron.full_path", str(tmp_path), "--hotkey", hotkey]
    proc = run(*base, "--endpoint", f"http://127.0.0.1:{port}", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["challenge_id"].split(":")[0] for r in rows] == list(TASKS)
    assert {(r["status"], r["reward"]) for r in rows} == {("refused", 0.0)}
    for args, reason in (
        (["--endpoint", "127.0.0.1"], "expected HOST:PORT"),
        (["--endpoint", f"127.0.0.1:{port}", "-n", "0"], "-n"),
        (["--endpoint", f"127.0.0.1:{port}", "--task", "poetry"], "--task"),
    ):
        bad = run(*base, *args)
        assert bad.returncode == 2 and reason in bad.stderr, bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr


def test_the_outside_miner_uses_only_the_standard_library_and_bittensor():
    import ast

    tree = ast.parse((Path(REPO) / "tests" / "outside_miner.py").read_text())
    roots = {
        a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    }
    roots |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert roots - sys.stdlib_module_names == {"bittensor"}


def test_a_wrapped_signature_is_what_the_doc_says_a_verifier_may_accept():
    """Section 3.2: a signer MUST sign the bare payload; bittensor's verifier (so the
    reference miner and the validator) also accepts one over <Bytes>payload</Bytes>."""
    from bittensor.sp_core import Keypair

    from prompting.network import auth

    v = vectors()
    sender = Keypair.create_from_seed(bytes.fromhex(v["validator_seed"][2:]))
    assert sender.ss58_address == v["validator_hotkey"]  # section 3.4: seed -> key pair
    import time

    body, nonce = b"{}", time.time_ns()
    payload = http_auth.build_payload(
        scheme="sr25519", method="POST", path="/v1/prompt", body=body, nonce_ns=nonce,
        sender_ss58=sender.ss58_address, receiver_ss58=v["miner_hotkey"],
    )  # fmt: skip
    for signed in (payload, b"<Bytes>" + payload + b"</Bytes>"):
        headers = {
            "X-Bittensor-Version": "1",
            "X-Bittensor-Hotkey": sender.ss58_address,
            "X-Bittensor-Receiver": v["miner_hotkey"],
            "X-Bittensor-Nonce": str(nonce),
            "X-Bittensor-Signature": "0x" + bytes(sender.sign(signed)).hex(),
        }
        caller = auth.verify(
            headers, body, "/v1/prompt", v["miner_hotkey"], http_auth.InMemoryNonceStore()
        )
        assert caller == sender.ss58_address
