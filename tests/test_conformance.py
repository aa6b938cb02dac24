"""scripts/miner_conformance.py against real miners on loopback: the reference miner
and the miner written from the doc pass every rule; a miner that skips one check fails,
and the check names the rule and its section."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.test_reliability import wait_for

RULES = 20  # the cases miner_conformance.py sends


def conformance(state, endpoint: str, hotkey: str) -> tuple[int, list[str]]:
    proc = subprocess.run(
        [sys.executable, "scripts/miner_conformance.py", "--neuron.full_path", str(state)]
        + ["--endpoint", endpoint, "--hotkey", hotkey],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "rules pass" in proc.stderr, proc.stderr[-2000:]
    return proc.returncode, proc.stdout.splitlines()


def start(tmp_path, cmd: list[str], port_file) -> tuple[subprocess.Popen, str, str]:
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not wait_for(port_file.exists, 60):
        proc.kill()
        pytest.fail(f"{cmd[1]} did not start")
    port, hotkey = port_file.read_text().split()
    return proc, f"127.0.0.1:{port}", hotkey


def test_the_reference_miner_passes_every_rule(tmp_path):
    state = tmp_path / "state"
    port_file = tmp_path / "miner.port"
    proc, endpoint, hotkey = start(
        tmp_path,
        [
            sys.executable,
            "neurons/miner.py",
            "--miner.strategy",
            "echo",
            "--miner.port",
            "0",
            "--miner.port_file",
            str(port_file),
            "--chain.network",
            "local",
            "--neuron.full_path",
            str(state),
            "--wallet.path",
            str(tmp_path / "wallets"),
        ],  # fmt: skip
        port_file,
    )
    try:
        rc, lines = conformance(state, endpoint, hotkey)
    finally:
        proc.kill()
        proc.wait()
    assert rc == 0 and len(lines) == RULES and all(ln.startswith("PASS") for ln in lines), lines
    doc = (Path(REPO) / "docs" / "protocol.md").read_text()
    for section in {ln.split()[1].lstrip("§") for ln in lines}:  # each names a real section
        assert re.search(rf"^##+ {re.escape(section)}\.? ", doc, re.MULTILINE), section


def outside_miner(tmp_path, state, *skip: str):
    port_file = tmp_path / "outside.port"
    port_file.unlink(missing_ok=True)
    cmd = [
        sys.executable, "tests/outside_miner.py", "--wallet.path", str(tmp_path / "outside"),
        "--port", "0", "--port-file", str(port_file),
        "--chain-file", str(state / "local_chain.json"),
    ]  # fmt: skip
    for check in skip:
        cmd += ["--skip", check]
    return start(tmp_path, cmd, port_file)


@pytest.mark.parametrize(
    "skip, broken",
    [
        ((), set()),
        (("replay",), {("3.3", "replay")}),
        (
            ("forms",),
            {
                ("3.1", "nonce with a leading zero"),
                ("3.1", "signature in upper case"),
                ("3.1", "crypto in upper case"),
            },
        ),
        (("caller",), {("4", "unregistered caller")}),
    ],
)
def test_the_outside_miner_passes_and_a_skipped_check_is_named(tmp_path, skip, broken):
    state = tmp_path / "state"
    proc, endpoint, hotkey = outside_miner(tmp_path, state, *skip)
    try:
        rc, lines = conformance(state, endpoint, hotkey)
    finally:
        proc.kill()
        proc.wait()
    assert len(lines) == RULES, lines
    failed = {
        (ln.split()[1].lstrip("§"), ln.split(None, 2)[2].rsplit("  ", 1)[0].strip())
        for ln in lines
        if ln.startswith("FAIL")
    }
    assert rc == (1 if broken else 0) and failed == broken, lines
