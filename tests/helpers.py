"""What several test files start the same way, written once: the real validator as a
process, an app served on a loopback port from a thread, a validator config that needs
no model, waiting for a condition. A flag renamed or a start-up changed is then fixed
here and not in every file that had its own copy (issue 29: one home for each rule).

Fixtures stay in ``conftest.py``; these are plain functions and classes, imported by
name, because they take arguments a fixture could not."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time

from prompting.chain.local import LocalChain
from prompting.config import Config, default_config
from prompting.network.server import HEADER_TIMEOUT_S, bind, make_server
from tests.conftest import REPO


def wait_for(predicate, timeout: float) -> bool:
    """Poll ``predicate`` every 0.1 s until it is true (True) or ``timeout`` passes
    (False): the tests assert on the result, so a slow machine fails with a message
    instead of hanging."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


# --- the real validator as a process --------------------------------------------------


def validator_env(**extra: str) -> dict[str, str]:
    """This process's environment with wandb offline: a test never reaches wandb."""
    return {**os.environ, "WANDB_MODE": "offline", **extra}


def validator_cmd(state_dir, *flags: str) -> list[str]:
    """``neurons/validator.py`` on ``state_dir`` with wandb off and seed 1, then
    ``flags``; a flag given again in ``flags`` wins (argparse keeps the last value)."""
    return [
        *(sys.executable, "neurons/validator.py", "--neuron.full_path", str(state_dir)),
        *("--wandb.off", "--neuron.seed", "1", *flags),
    ]


def local_validator_cmd(
    state_dir, *flags: str, miners: int = 2, strategies: str = "echo,random"
) -> list[str]:
    """``validator_cmd`` on the tiny model with ``miners`` local miners and a 2 s query
    timeout: the whole local subnet's plumbing, fast, for tests that are not about the
    text."""
    return validator_cmd(
        state_dir,
        *("--neuron.model_id", "tiny", "--local.miners", str(miners)),
        *("--local.strategies", strategies, "--neuron.timeout", "2", *flags),
    )


def logged_steps(state_dir) -> list[int]:
    """The steps of the events a validator wrote to ``state_dir``, in order ([] before
    its first)."""
    events = state_dir / "events.jsonl"
    if not events.exists():
        return []
    return [json.loads(line)["step"] for line in events.read_text().splitlines() if line]


def run_validator(cmd: list[str], timeout: float) -> subprocess.CompletedProcess:
    """Run ``cmd`` (a ``validator_cmd``) from the repository root to its end, its
    output captured as text (unbuffered: what it wrote before a timeout is kept)."""
    env = validator_env(PYTHONUNBUFFERED="1")
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)


# --- the validator's loop in this process ---------------------------------------------


def subnet_chain(state_dir, validator, miners=(), chain_class=LocalChain, **kw) -> LocalChain:
    """A local chain (``chain_class``: LocalChain or a subclass that injects faults,
    given ``kw``) in ``state_dir`` with ``validator``'s hotkey staked and permitted,
    and each ``(wallet, port)`` of ``miners`` registered as a miner on that loopback
    port."""
    chain = chain_class(
        os.path.join(state_dir, "chain.json"), hotkey=validator.hotkey.ss58_address, **kw
    )
    chain.register(validator.hotkey.ss58_address, "c", stake=1e4, validator_permit=True)
    for wallet, port in miners:
        chain.register(
            wallet.hotkey.ss58_address,
            wallet.coldkeypub.ss58_address,
            endpoint=f"127.0.0.1:{port}",
        )
    return chain


def math_config(state_dir, **overrides) -> Config:
    """The validator's defaults with math alone (ground truth: no model writes a
    challenge, so a validator runs with ``llm=None``), seed 0, its state in
    ``state_dir``; ``overrides`` as ``default_config`` takes them."""
    values = {
        "neuron__full_path": str(state_dir),
        "neuron__seed": 0,
        "neuron__task_weights": {"math": 1.0},
    }
    return default_config(**{**values, **overrides})


def run_for(validator, seconds: float) -> None:
    """Run ``validator``'s loop and ask it to stop after ``seconds`` (as SIGINT does),
    for tests that count what happens in a fixed time."""

    async def run() -> None:
        asyncio.get_running_loop().call_later(seconds, validator.request_stop)
        await validator.run()

    asyncio.run(run())


# --- servers ----------------------------------------------------------------------------


class AppServer:
    """An ASGI app served by the miner's uvicorn set-up (``network.server.make_server``)
    on a free loopback port, in a thread of its own; ``stop`` ends it."""

    def __init__(self, app, header_timeout: float = HEADER_TIMEOUT_S):
        self.sock = bind("127.0.0.1", 0)
        self.port = self.sock.getsockname()[1]
        self.server, serving = make_server(app, self.sock, header_timeout)
        self.thread = threading.Thread(target=asyncio.run, args=(serving,), daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(5)


def gpu_and_vllm_marks() -> list:
    """The marks of a test module that needs a CUDA GPU and vllm: skipped cleanly
    without them (CI, the CPU default)."""
    import importlib.util

    import pytest

    try:
        import torch

        cuda = torch.cuda.is_available()
    except ImportError:
        cuda = False
    return [
        pytest.mark.gpu,
        pytest.mark.skipif(
            not cuda or importlib.util.find_spec("vllm") is None,
            reason="needs a CUDA GPU and vllm",
        ),
    ]
