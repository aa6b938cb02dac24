"""docs/protocol.md holds: its vectors verify, its numbers are the code's, and a miner
written from it alone (tests/outside_miner.py) joins the local subnet with the
documented command and is scored by the validator and by the miner harness."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from bittensor import http_auth

from tests.conftest import REPO

DOC = (Path(REPO) / "docs" / "protocol.md").read_text()


def vectors() -> dict:
    block = DOC.split("<!-- vectors -->", 1)[1]
    return json.loads(re.search(r"```json\n(.*?)\n```", block, re.DOTALL).group(1))


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
    with pytest.raises(http_auth.BadSignature):
        http_auth.verify(
            ans["headers"],
            ans["body"].replace("Nothing", "Anything").encode(),
            method="RESPONSE",
            path=f"{req['path']}?request_nonce={nonce}",
            self_hotkey_ss58=v["validator_hotkey"],
            now_ns=int(ans["headers"]["X-Bittensor-Nonce"]),
            nonce_store=http_auth.InMemoryNonceStore(),
        )


def test_the_doc_states_the_codes_numbers_and_statuses():
    from prompting.config import default_config
    from prompting.network import client
    from prompting.network.server import BODY_TIMEOUT_S, MAX_REQUEST_BYTES
    from prompting.protocol import MAX_COMPLETION_CHARS, PROMPT_PATH

    assert f"{MAX_REQUEST_BYTES // 1024} KiB" in DOC and PROMPT_PATH in DOC
    assert f"{MAX_COMPLETION_CHARS:,}" in DOC
    assert default_config().neuron.max_body_bytes == 1 << 20 and "1 MiB" in DOC
    assert f"within {BODY_TIMEOUT_S:g} s" in DOC
    assert f"at most {http_auth.DEFAULT_MAX_AGE:g} s old" in DOC
    assert f"at most {http_auth.DEFAULT_ALLOWED_SKEW:g} s in the future" in DOC
    for status in (client.OK, client.FORGED, client.INVALID, client.HTTP_ERROR):
        assert f"| `{status}` |" in DOC
    for status in (client.TIMEOUT, client.REFUSED, client.UNREACHABLE):
        assert f"| `{status}` |" in DOC


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
        assert max(r for _, r in by_hotkey[good_hotkey]) > 0
        assert by_hotkey[wrong_hotkey] == [("forged", 0.0)] * 3

        for hotkey, endpoint, status in (
            (good_hotkey, good_at, "ok"),
            (wrong_hotkey, wrong_at, "forged"),
        ):
            harness = run(
                "scripts/miner_harness.py", "--neuron.full_path", str(state),
                "--endpoint", endpoint, "--hotkey", hotkey, "--task", "qa", "-n", "2", "--json",
            )  # fmt: skip
            assert harness.returncode == 0, harness.stderr[-2000:]
            rows = [json.loads(line) for line in harness.stdout.splitlines()]
            assert len(rows) == 2 and {r["status"] for r in rows} == {status}
            if status == "ok":
                assert all(r["reward"] > 0 and "rouge" in r["components"] for r in rows)
    finally:
        for proc in (good, wrong):
            proc.kill()
            proc.wait()
