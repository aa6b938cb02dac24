"""Crashes, signals and a chain that fails: the validator keeps its scores."""

import asyncio
import json
import random
import signal
import socket
import subprocess
import sys
import time

import pytest

from prompting.chain import ChainError
from prompting.chain.base import WeightsResult
from prompting.chain.local import LocalChain
from prompting.config import default_config
from prompting.validator import state as state_io
from prompting.validator.loop import Validator
from tests.conftest import REPO
from tests.helpers import (
    local_validator_cmd,
    math_config,
    run_for,
    run_validator,
    subnet_chain,
    validator_env,
    wait_for,
)

SAVER = """
import sys
from prompting.validator.state import ValidatorState, save
path = sys.argv[1]
step = int(sys.argv[2])
while True:
    step += 1
    save(ValidatorState(step=step, scores=[step / 1e6] * 2000, hotkeys=["h"] * 2000), path)
    print(step, flush=True)
"""


def test_kill_9_at_random_points_never_loses_the_state(tmp_path):
    path = str(tmp_path / "state.json")
    rng = random.Random(7)
    last_acknowledged = 0
    for _ in range(25):
        proc = subprocess.Popen(
            [sys.executable, "-c", SAVER, path, str(last_acknowledged)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        proc.stdout.readline()  # at least one save completed in this trial
        time.sleep(rng.uniform(0.0, 0.15))
        proc.kill()
        printed = proc.communicate()[0].split()
        state = state_io.load(path)  # never raises: main file or .bak is whole
        assert len(state.scores) == 2000 and state.scores[0] == pytest.approx(state.step / 1e6)
        # The step printed last was fully saved before printing; a later one may be too.
        if printed:
            assert state.step >= int(printed[-1])
        assert state.step > last_acknowledged
        last_acknowledged = state.step


def test_a_second_validator_on_one_state_folder_refuses_and_names_the_first(tmp_path):
    """Two validators on one state folder would interleave events and steal each
    other's miners: the second exits at once with one line naming the first; once the
    first is killed (-9: the kernel drops its lock) the folder is free again."""
    state_dir = tmp_path / "state"
    lock = state_dir / "validator.lock"
    first = subprocess.Popen(
        local_validator_cmd(state_dir, "--local.miners", "0"),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=validator_env(),
    )
    try:
        assert wait_for(lambda: lock.exists() and f"pid {first.pid}" in lock.read_text(), 60)
        second = run_validator(local_validator_cmd(state_dir, "--local.miners", "0"), 60)
        assert second.returncode == 2
        (line,) = [ln for ln in second.stderr.splitlines() if "error" in ln]
        assert f"pid {first.pid}" in line and "already in use" in line
    finally:
        first.kill()
        first.wait()
    third = run_validator(
        local_validator_cmd(state_dir, "--local.miners", "1", "--neuron.max_steps", "1"), 120
    )
    assert third.returncode == 0, third.stderr[-2000:]


@pytest.mark.slow
def test_sigterm_saves_stops_miners_and_exits_0(tmp_path):
    state_dir = tmp_path / "state"
    proc = subprocess.Popen(
        local_validator_cmd(state_dir, "--neuron.step_interval", "0.2"),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=validator_env(),
    )
    events = state_dir / "events.jsonl"
    assert wait_for(lambda: events.exists() and len(events.read_text().splitlines()) >= 3, 120)
    ports = [int(p.read_text().split()[0]) for p in (state_dir / "miners").glob("*.port")]
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out[-2000:]
    assert "final scoreboard" in out
    saved = json.loads((state_dir / "state.json").read_text())
    logged = [json.loads(line)["step"] for line in events.read_text().splitlines()]
    assert saved["step"] >= logged[-1]
    for port in ports:  # the miners it started are gone
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()


class FaultyChain(LocalChain):
    """The local chain with injected faults: sync and set_weights fail on demand."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.fail_metagraph = 0
        self.fail_weights = 0
        self.weight_calls = 0
        self.metagraph_calls = 0

    def metagraph(self):
        self.metagraph_calls += 1
        if self.fail_metagraph:
            self.fail_metagraph -= 1
            raise ChainError("metagraph sync timed out after 30 s")
        return super().metagraph()

    def set_weights(self, uids, weights):
        self.weight_calls += 1
        if self.fail_weights:
            self.fail_weights -= 1
            if self.fail_weights % 2:
                raise ChainError("set_weights refused: connection reset")
            return WeightsResult(False, "rate limited: wait 12 blocks")
        return super().set_weights(uids, weights)


class ConstantStack:
    """Rewards every completion 1.0 (this test is about the chain, not scoring); takes
    the stack's arguments, latencies included, and ignores them."""

    def score(self, challenge, completions, latencies=None):
        import numpy as np

        from prompting.rewards.stack import RewardResult

        return RewardResult(totals=np.ones(len(completions)))


def test_chain_faults_keep_scores_and_retry_weights(tmp_path, wallets):
    from prompting.network.auth import Authorizer, CallerPolicy
    from tests.test_network import ServerThread

    v, m = wallets["validator"], wallets["miner"]
    server = ServerThread(
        lambda req: "an answer",
        m,
        Authorizer(CallerPolicy(0, frozenset({v.hotkey.ss58_address})), None),
    )
    try:
        chain = subnet_chain(tmp_path, v, [(m, server.port)], FaultyChain, block_seconds=0.05)
        config = math_config(tmp_path, neuron__epoch_length=2, neuron__resync_seconds=0.0)
        validator = Validator(config, v, chain, None, ConstantStack())

        async def steps(n):
            return [(await validator.step()).step for _ in range(n)]

        async def scenario():
            chain.fail_metagraph = 1
            assert await validator.step() is None  # no metagraph yet: skipped, not crashed
            assert await steps(2) == [1, 2] and chain.weight_calls == 1  # set at step 2
            chain.fail_weights, chain.fail_metagraph = 2, 1
            # sync fails once (the last metagraph is used); weights are due at step 4 and
            # refused (a reset names no wait: RETRY_BLOCKS, 0.5 s); step 5 does not retry
            assert await steps(3) == [3, 4, 5] and chain.weight_calls == 2
            await asyncio.sleep(0.55)
            # refused again, naming 12 blocks (0.6 s): steps 6 and 7 wait it out
            assert await steps(1) == [6] and chain.weight_calls == 3
            assert await steps(1) == [7] and chain.weight_calls == 3 and validator.weights_due
            await asyncio.sleep(0.65)
            assert await steps(1) == [8]
            await validator.client.aclose()

        asyncio.run(scenario())
        assert chain.weight_calls == 4 and not validator.weights_due
        assert validator.state.scores[1] == pytest.approx(1 - 0.9**8)  # eight rewards of 1.0
        assert validator.state.last_weights_step == 8
        assert chain.weights()[-1]["uids"] == [1]
    finally:
        server.stop()


def refusing_miners_config(tmp_path, query_rate: float):
    """For the rate-bound tests, where every miner refuses at once: weights due every
    step, the metagraph every second, and no cool-down that would keep a refusing miner
    out of the sample, so only the bounds under test hold the loop back."""
    return math_config(
        tmp_path,
        neuron__epoch_length=1,
        neuron__resync_seconds=1.0,
        neuron__miner_query_rate=query_rate,
        neuron__unreachable_cooldown_s=0.0,
    )


def test_failing_miners_cannot_speed_up_steps_or_chain_calls(tmp_path, wallets):
    """Every miner refuses at once, weights are due every step and the subnet limits
    them to one per 5 blocks: the step rate stays under the miners' query-rate bound
    (all four miners in every sample, 5 queries/s each: 5 steps/s) and the metagraph
    and weights calls under their cadence, instead of thousands of steps a minute."""
    v = wallets["validator"]
    chain = subnet_chain(tmp_path, v, chain_class=FaultyChain, block_seconds=0.1)
    chain.set_weights_rate_limit(5)  # 0.5 s
    for i in range(4):  # nothing listens there
        chain.register(f"5Miner{i}", f"c{i}", endpoint="127.0.0.1:9", stake=1.0)
    config = refusing_miners_config(tmp_path, query_rate=5.0)
    validator = Validator(config, v, chain, None, ConstantStack())
    seconds = 3.0
    run_for(validator, seconds)
    steps = validator.state.step
    assert 5 <= steps <= seconds / 0.2 + 1
    assert chain.metagraph_calls <= seconds / 1.0 + 1
    assert 2 <= chain.weight_calls <= seconds / 0.5 + 1
    assert chain.weights()  # some weights landed, inside the limit


def test_with_no_miner_to_query_no_challenge_is_written(tmp_path, wallets, caplog):
    """Steps are skipped (with the back-off) before the model writes a challenge that
    nobody would be asked; it used to write one every 2 s for nothing."""
    from test_tasks import ScriptedLLM

    v = wallets["validator"]
    chain = subnet_chain(tmp_path, v)
    config = default_config(neuron__full_path=str(tmp_path), neuron__task_weights={"qa": 1.0})
    llm = ScriptedLLM([])
    validator = Validator(config, v, chain, llm, ConstantStack())

    with caplog.at_level("WARNING"):
        run_for(validator, 2.5)
    assert llm.batches == [] and validator.state.step == 0
    assert "no miner to query" in caplog.text


def test_a_failing_step_is_logged_and_the_loop_goes_on(tmp_path, wallets):
    v = wallets["validator"]
    chain = subnet_chain(tmp_path, v)
    chain.register("nobody", "c", endpoint="127.0.0.1:9")  # refuses connections

    class FlakyStack(ConstantStack):
        calls = 0

        def score(self, challenge, completions, latencies=None):
            FlakyStack.calls += 1
            if FlakyStack.calls == 2:
                raise RuntimeError("reward model crashed")
            return super().score(challenge, completions, latencies)

    config = math_config(
        tmp_path,
        neuron__max_steps=3,
        neuron__unreachable_cooldown_s=0.0,  # the one miner stays in the sample: every step runs
    )
    validator = Validator(config, v, chain, None, FlakyStack())
    asyncio.run(validator.run())
    assert validator.state.step == 3 and FlakyStack.calls == 4
    assert state_io.load(str(tmp_path / "state.json")).step == 3


def test_the_sdks_rate_limit_refusal_is_retried_after_the_blocks_it_names(tmp_path, wallets):
    """The validator on the real bittensor adapter, the SDK's own SetWeights preflight
    against a node in memory (blocks of 0.05 s, weights_rate_limit 40 blocks, weights
    just set by an earlier run), every miner refusing at once and weights due every
    step: the first attempt is refused with "Retry in ~N blocks", the next comes when
    those N blocks are over, not on the next step, while the steps run at the rate bound."""
    from prompting.chain.bittensor import BittensorChain
    from tests.fake_subtensor import FakeSubtensor

    v = wallets["validator"]
    miners = [f"5Miner{i}" for i in range(4)]
    node = FakeSubtensor(
        1,
        [(v.hotkey.ss58_address, True, None)] + [(hk, False, "127.0.0.1:9") for hk in miners],
        WeightsSetRateLimit=40,
    )
    node.block_seconds = 0.05
    set_before = node.storage["LastUpdate"][0] = node.now()
    chain = BittensorChain("test", 1, wallet=v, client_factory=lambda n: node)
    config = refusing_miners_config(tmp_path, query_rate=20.0)
    validator = Validator(config, v, chain, None, ConstantStack())
    validator.state.hotkeys = [v.hotkey.ss58_address, *miners]  # scores of the earlier run
    validator.state.scores = [0.0, 0.4, 0.3, 0.2, 0.1]
    seconds = 3.0
    run_for(validator, seconds)
    attempts, landed = node.attempt_blocks, [b for b, _, _ in node.applied]
    steps = validator.state.step
    assert len(attempts) == 2 and len(landed) == 1  # refused once, then set
    assert set_before + 40 <= landed[0] <= set_before + 40 + 4  # when allowed, not later
    assert 20 <= steps <= seconds / 0.05 + 1  # steps went on at the rate bound meanwhile
    assert node.calls["metagraph"] <= seconds / 1.0 + 1
    assert node.calls["hyperparameters"] <= 3  # two attempts, one rate-limit read


def test_a_second_miner_with_one_hotkey_refuses_and_names_the_first(tmp_path):
    """Two processes signing with one hotkey on one machine confuse every validator: the
    second miner (another state folder, the same wallet) exits with one line naming the
    first's pid and command."""
    wallets = str(tmp_path / "wallets")

    def miner(state: str, port_file: str) -> list[str]:
        return [
            sys.executable,
            "neurons/miner.py",
            *("--miner.strategy", "echo", "--miner.port", "0"),
            *("--miner.port_file", port_file, "--chain.network", "local"),
            *("--neuron.full_path", str(tmp_path / state), "--wallet.path", wallets),
        ]

    port_file = tmp_path / "first.port"
    first = subprocess.Popen(
        miner("a", str(port_file)), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        assert wait_for(port_file.exists, 60), "the first miner did not start"
        second = subprocess.run(
            miner("b", str(tmp_path / "second.port")),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        first.kill()
        first.wait()
    assert second.returncode == 2
    (line,) = second.stderr.strip().splitlines()
    assert line.startswith("miner.py: error: hotkey ") and f"pid {first.pid}:" in line
    assert "neurons/miner.py" in line and not (tmp_path / "second.port").exists()
