"""Crash and restart: kill -9 of the validator's process group at each point of its
start-up and of its run, then a restart on the same state folder; local miners that
die with their parent; a restart that takes over an earlier run's miner; start-up
threads that import transformers at once. Real processes, real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from prompting.validator import state as state_io
from tests.conftest import REPO
from tests.helpers import (
    local_validator_cmd,
    logged_steps,
    run_validator,
    validator_env,
    wait_for,
)


def miner_pids(state_dir: Path) -> list[int]:
    """Live reference miners started for ``state_dir`` (from /proc: they run in
    sessions of their own, so killing the validator's group does not reach them)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if (
            state != "Z"
            and b"neurons/miner.py" in b" ".join(argv)
            and str(state_dir).encode() in argv
        ):
            pids.append(int(entry.name))
    return pids


def validator(state_dir: Path, cache: Path, log: Path, *extra: str) -> subprocess.Popen:
    """The real validator in a process group of its own, its output in ``log``."""
    cmd = local_validator_cmd(
        state_dir, "--neuron.step_interval", "0.2", *extra, strategies="model,random"
    )
    env = validator_env(PROMPTING_MODEL_CACHE=str(cache))
    with open(log, "w") as out:
        return subprocess.Popen(
            cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


def building(cache: Path) -> bool:
    """The model miner is converting (building) its model: a temporary folder exists."""
    return any(p.name.startswith(".tiny") for p in cache.glob(".*"))


def scored(state_dir: Path) -> bool:
    """Some miner has earned a score (so that a restart that lost it would show)."""
    path = state_dir / "state.json"
    return path.exists() and max(state_io.load(str(path)).scores, default=0) > 0


def built(cache: Path) -> bool:
    from prompting.llms.embedded import BUILD_FILE

    return any((p / BUILD_FILE).exists() for p in cache.glob("tiny*"))


@pytest.mark.slow
def test_kill_9_at_each_point_of_start_up_and_running_then_a_restart_keeps_the_scores(
    tmp_path,
):
    """The points: miners just spawned; the model miner converting its model (a fresh
    model cache); the model miner loading it; mid-step. After each kill every local
    miner leaves within seconds (parent-death signal), no run prints a traceback, and
    the last restart resumes at the saved step with the saved scores and runs on."""
    state_dir, cache = tmp_path / "state", tmp_path / "models"
    miners_dir = state_dir / "miners"
    points = {
        "miner start": lambda: any(miners_dir.glob("*.log")),
        "model conversion": lambda: building(cache),
        # the tiny model loads in well under a second once built: the kill lands in or
        # just after the load (waiting for "built, not yet serving" missed it in CI)
        "model load": lambda: built(cache),
        "mid-step": lambda: len(logged_steps(state_dir)) >= 2 and scored(state_dir),
    }
    logs = []
    for i, (point, reached) in enumerate(points.items()):
        logs.append(tmp_path / f"run{i}.log")
        proc = validator(state_dir, cache, logs[-1])
        assert wait_for(reached, 120), f"never reached {point}: {logs[-1].read_text()[-2000:]}"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        assert wait_for(lambda: not miner_pids(state_dir), 5), f"miners outlived ({point})"
    before = state_io.load(str(state_dir / "state.json"))  # whole, or its .bak
    # saved, then logged: a kill between the two leaves the state one step ahead
    assert before.step in (logged_steps(state_dir)[-1], logged_steps(state_dir)[-1] + 1)
    assert max(before.scores) > 0
    logs.append(tmp_path / "restart.log")
    proc = validator(state_dir, cache, logs[-1], "--neuron.max_steps", str(before.step + 2))
    assert proc.wait(timeout=180) == 0, logs[-1].read_text()[-3000:]
    out = logs[-1].read_text()
    assert f"resumes at step {before.step}" in out
    assert logged_steps(state_dir)[-2:] == [before.step + 1, before.step + 2]
    after = json.loads((state_dir / "state.json").read_text())
    # two moving-average updates (alpha 0.1) of non-negative rewards: at least 0.81 of
    # each earlier score is left, where a reset would have left nothing
    kept = [a >= 0.81 * b - 1e-9 for a, b in zip(after["scores"], before.scores)]
    assert after["hotkeys"][: len(before.hotkeys)] == before.hotkeys and all(kept)
    for log in logs:
        assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
    assert not miner_pids(state_dir)


def spawn_leftover_miner(state_dir: Path, *flags: str) -> subprocess.Popen:
    """A reference miner on the state folder's first miner wallet, as an earlier run
    would have left it, under a shell that stands in for its (hung) parent."""
    port_file = state_dir / "leftover.port"
    port_file.unlink(missing_ok=True)
    miner = [
        sys.executable, "neurons/miner.py", "--miner.strategy", "echo", "--miner.port", "0",
        "--miner.port_file", str(port_file), "--chain.network", "local",
        "--neuron.full_path", str(state_dir), "--wallet.path", str(state_dir / "wallets"),
        "--wallet.name", "miner-0", *flags,
    ]  # fmt: skip
    script = " ".join(f"'{a}'" for a in miner).replace("'$$'", "$$") + "; sleep 60"
    proc = subprocess.Popen(
        ["sh", "-c", script],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    assert wait_for(port_file.exists, 60), "the leftover miner did not start"
    return proc


def one_echo_miner(state_dir: Path, *extra: str) -> list[str]:
    return local_validator_cmd(state_dir, *extra, miners=1, strategies="echo")


def test_a_restart_stops_an_earlier_runs_miner_that_still_holds_its_hotkey(tmp_path):
    """A local miner of this folder that did not leave (its parent hung, or no
    parent-death signal on this system) holds the hotkey its successor needs: the
    restarted validator stops it, says so, and runs; a process of another kind on that
    hotkey is not touched: the validator names it in one line instead."""
    state_dir = tmp_path / "state"
    other = spawn_leftover_miner(state_dir)  # started by hand: not a local miner
    try:
        refused = run_validator(one_echo_miner(state_dir, "--neuron.max_steps", "1"), 180)
        assert refused.returncode == 1 and "Traceback" not in refused.stderr
        (line,) = [ln for ln in refused.stderr.splitlines() if "error" in ln]
        assert "stop that process first" in line and other.poll() is None
    finally:
        os.killpg(other.pid, signal.SIGKILL)
        other.wait()
    assert wait_for(lambda: not miner_pids(state_dir), 5)
    leftover = spawn_leftover_miner(state_dir, "--miner.exit_with_parent", "$$")
    try:
        (pid,) = miner_pids(state_dir)
        done = run_validator(one_echo_miner(state_dir, "--neuron.max_steps", "2"), 180)
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
        assert f"local miner pid {pid} of an earlier run still holds" in done.stderr
        assert logged_steps(state_dir) == [1, 2] and not miner_pids(state_dir)
    finally:
        os.killpg(leftover.pid, signal.SIGKILL)
        leftover.wait()


def test_a_local_miner_whose_parent_is_already_gone_does_not_start(tmp_path):
    """A validator killed between spawning a miner and the miner's first line: the
    miner's parent is no longer the pid it was given, and it leaves at once."""
    with subprocess.Popen(["sleep", "30"]) as stranger:
        proc = subprocess.run(
            [sys.executable, "neurons/miner.py", "--miner.exit_with_parent", str(stranger.pid)]
            + ["--miner.strategy", "echo", "--chain.network", "local"]
            + ["--neuron.full_path", str(tmp_path), "--wallet.path", str(tmp_path / "w")],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        stranger.kill()
    assert proc.returncode == 0
    assert proc.stderr.strip() == f"miner.py: parent process {stranger.pid} is gone; not starting"
    assert not (tmp_path / "w").exists()  # it left before touching anything


CONCURRENT_LOAD = """
import sys, threading
from prompting.llms.hf import HFLLM
from prompting.rewards.relevance import shared_embedder

failures = []

def load_embedder():
    try:
        shared_embedder()
    except Exception as exc:
        failures.append(f"embedder: {type(exc).__name__}: {exc}")

thread = threading.Thread(target=load_embedder)
thread.start()
try:
    HFLLM("tiny", device="cpu", state_dir=sys.argv[1]).close()
except Exception as exc:
    failures.append(f"llm: {type(exc).__name__}: {exc}")
thread.join()
print("\\n".join(failures) or "ok")
"""


def test_the_embedder_and_the_llm_load_concurrently_in_fresh_processes(model_dir):
    """Both import transformers for the first time in two threads, as the validator's
    start-up does; before the import lock this failed in every run (CompatError from a
    half-imported transformers, or "cannot import name 'AutoModelForCausalLM'")."""
    for _ in range(2):
        proc = subprocess.run(
            [sys.executable, "-c", CONCURRENT_LOAD, str(model_dir)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stdout.splitlines()[-1] == "ok", proc.stdout
