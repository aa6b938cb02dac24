"""scripts/miner_conformance.py against real miners on loopback: the reference miner
and the miner written from the doc pass every rule, streamed route included; a miner
that skips one check (wrong-typed fields read as lax pydantic reads them included)
fails, and the check names the rule and its section; a miner whose
stream forges a line fails the streamed rules with the line at fault; a miner that
does not stream is reported as not offering it, which section 10 allows."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.helpers import wait_for


def load_tool():
    """scripts/miner_conformance.py as a module (its Checker, its rule tables)."""
    import importlib.util

    module = sys.modules.get("miner_conformance")
    if module is None:
        path = Path(REPO) / "scripts" / "miner_conformance.py"
        spec = importlib.util.spec_from_file_location("miner_conformance", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # its dataclasses look their module up
        spec.loader.exec_module(module)
    return module


WRONG_TYPES = load_tool().WRONG_TYPES

RULES = 29  # the cases miner_conformance.py sends to /v1/prompt (9 of them wrong types)
STREAMED = 32  # the same to /v1/prompt/stream, the validator's own read, both paths crossed
# what a stream whose second line is forged fails: every 200 of the streamed route
STREAM_ANSWERS = {
    ("10.2", "stream: good request"),
    ("10.3", "stream: as the validator reads it"),
    ("2", "stream: unknown fields ignored"),
}


def conformance(state, endpoint: str, hotkey: str, *flags: str) -> tuple[int, list[str]]:
    proc = subprocess.run(
        [sys.executable, "scripts/miner_conformance.py", "--neuron.full_path", str(state)]
        + ["--endpoint", endpoint, "--hotkey", hotkey, *flags],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "rules pass" in proc.stderr, proc.stderr[-2000:]
    return proc.returncode, proc.stdout.splitlines()


def failures(lines: list[str]) -> set[tuple[str, str]]:
    """(section, rule) of each FAIL line."""
    out = set()
    for ln in lines:
        if ln.startswith("FAIL"):
            _, section, rest = ln.split(None, 2)
            out.add((section.lstrip("§"), rest.split("  ", 1)[0].strip()))
    return out


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
    assert rc == 0 and len(lines) == RULES + STREAMED, lines
    assert all(ln.startswith("PASS") for ln in lines), lines
    doc = (Path(REPO) / "docs" / "protocol.md").read_text()
    for section in {ln.split()[1].lstrip("§") for ln in lines}:  # each names a real section
        assert re.search(rf"^##+ {re.escape(section)}\.? ", doc, re.MULTILINE), section
    # the streamed answer was read line by line and verified, the validator's way too
    streamed = next(ln for ln in lines if "stream: good request" in ln)
    assert "end line, each hash and sig verify" in streamed, streamed
    assert any("ok: the text recorded is its" in ln for ln in lines), lines


def outside_miner(tmp_path, state, *flags: str):
    port_file = tmp_path / "outside.port"
    port_file.unlink(missing_ok=True)
    cmd = [
        sys.executable, "tests/outside_miner.py", "--wallet.path", str(tmp_path / "outside"),
        "--port", "0", "--port-file", str(port_file),
        "--chain-file", str(state / "local_chain.json"), *flags,
    ]  # fmt: skip
    return start(tmp_path, cmd, port_file)


def both_routes(*rules: tuple[str, str]) -> set[tuple[str, str]]:
    """A check a miner skips fails on /v1/prompt and on /v1/prompt/stream (10.1)."""
    return {*rules, *((section, f"stream: {name}") for section, name in rules)}


@pytest.mark.parametrize(
    "skip, broken",
    [
        ((), set()),
        (("replay",), both_routes(("3.3", "replay"))),
        (
            ("forms",),
            both_routes(
                ("3.1", "nonce with a leading zero"),
                ("3.1", "signature in upper case"),
                ("3.1", "crypto in upper case"),
            ),
        ),
        (("caller",), both_routes(("4", "unregistered caller"))),
        # fields read without their types (as lax pydantic coerces): all but the content,
        # whose number the answer cannot join, pass where 422 was due
        (
            ("types",),
            both_routes(
                *(("2", f"wrong type: {name}") for name, _ in WRONG_TYPES if name != "content 5")
            ),
        ),
    ],
)
def test_the_outside_miner_passes_and_a_skipped_check_is_named(tmp_path, skip, broken):
    state = tmp_path / "state"
    flags = [arg for check in skip for arg in ("--skip", check)]
    proc, endpoint, hotkey = outside_miner(tmp_path, state, *flags)
    try:
        rc, lines = conformance(state, endpoint, hotkey)
    finally:
        proc.kill()
        proc.wait()
    assert len(lines) == RULES + STREAMED, lines
    assert rc == (1 if broken else 0) and failures(lines) == broken, lines


@pytest.mark.parametrize(
    "fault, reason",
    [
        ("forge", "forged: line 2: signature is not the miner's"),
        ("hash", "forged: line 2: hash is not the running hash"),
    ],
)
def test_a_forged_stream_line_fails_the_streamed_rules_with_the_line_at_fault(
    tmp_path, fault, reason
):
    """Line 2 signed by another hotkey, or with a hash not chained to line 1: every
    streamed 200 fails, naming the line and the fault, the validator's own client
    agreeing; the non-streamed rules and the stream's refusals still pass."""
    state = tmp_path / "state"
    proc, endpoint, hotkey = outside_miner(tmp_path, state, "--stream-fault", fault)
    try:
        rc, lines = conformance(state, endpoint, hotkey, "--json")
    finally:
        proc.kill()
        proc.wait()
    outcomes = [json.loads(ln) for ln in lines]
    assert len(outcomes) == RULES + STREAMED, lines
    failed = {(o["section"], o["name"]): o["detail"] for o in outcomes if o["passed"] is False}
    assert rc == 1 and set(failed) == STREAM_ANSWERS, lines
    assert all(detail == reason for detail in failed.values()), failed
    assert all(o["passed"] for o in outcomes if (o["section"], o["name"]) not in failed)


def test_a_miner_that_does_not_stream_is_skipped_not_failed(tmp_path):
    """Section 10: serving the streamed route is optional. A miner that answers it with
    404 passes every other rule and gets one SKIP line saying what it costs."""
    state = tmp_path / "state"
    proc, endpoint, hotkey = outside_miner(tmp_path, state, "--no-stream")
    try:
        rc, lines = conformance(state, endpoint, hotkey)
    finally:
        proc.kill()
        proc.wait()
    assert rc == 0 and len(lines) == RULES + 1, lines
    assert all(ln.startswith("PASS") for ln in lines[:RULES]), lines
    skip = lines[RULES]
    assert skip.startswith("SKIP") and "§10 " in skip and "not offered" in skip, skip
    assert "404" in skip and "organic" in skip, skip
