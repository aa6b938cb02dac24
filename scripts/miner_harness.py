"""Score any miner as the validator would, before it joins a subnet.

    python scripts/miner_harness.py --endpoint 127.0.0.1:8099 --hotkey SS58 [--task qa] [-n 2]

Sends signed challenges of every task (or ``--task``), ``-n`` seeds each, to the
endpoint through the validator's own client (btauth/1 for that hotkey, the answer's
signature checked), then scores each answer with the validator's reward stack, and
prints per challenge: status, latency, reward and its components. It signs as the
local validator's wallet (``<--neuron.full_path>/wallets``; its hotkey is printed, so a
miner that serves only known callers can allow it). The model decides as in the
validator, but the harness defaults to ``--neuron.model_id tiny``: challenges built
without an LLM, in seconds; ``--neuron.model_id smollm2`` (or any real model) has that
model write them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys

from prompting.config import TASKS, TINY_MODEL, parse_config, posint
from prompting.network.addresses import endpoint, ss58


def extra(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("harness")
    g.add_argument(
        "--endpoint", dest="harness.endpoint", type=endpoint, required=True, help="HOST:PORT"
    )
    g.add_argument("--hotkey", dest="harness.hotkey", type=ss58, required=True, help="its ss58")
    g.add_argument("--task", dest="harness.task", choices=TASKS, help="one task (default all)")
    g.add_argument("-n", dest="harness.n", type=posint, default=1, help="challenges per task")
    g.add_argument("--json", dest="harness.json", action="store_true", help="JSON lines out")
    parser.set_defaults(**{"neuron.model_id": TINY_MODEL})  # fast: no LLM unless asked


async def run(config) -> list[dict]:
    from prompting.chain import Neuron
    from prompting.llms import LLMError, Sampling, load_llm, preflight
    from prompting.llms.embedded import EmbeddedModelError
    from prompting.network.auth import load_or_create_wallet
    from prompting.network.client import MinerClient
    from prompting.protocol import PromptRequest
    from prompting.rewards.relevance import shared_embedder
    from prompting.rewards.stack import RewardStack
    from prompting.tasks import TASKS as TASK_CLASSES
    from prompting.tasks import build_challenges
    from prompting.validator.loop import uses_llm_references

    h = config.harness
    wallet = load_or_create_wallet(
        config.wallet.name, config.wallet.hotkey, os.path.join(config.neuron.full_path, "wallets")
    )
    print(f"signing as validator hotkey {wallet.hotkey.ss58_address}", file=sys.stderr)
    llm = None
    if uses_llm_references(config):
        try:
            preflight.check(config)
            llm = load_llm(config)
        except (LLMError, EmbeddedModelError) as exc:
            print(f"miner_harness.py: error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
    rewards = RewardStack(
        lambda: shared_embedder(
            config.reward.relevance_model, config.reward.pooling, config.reward.device
        ),
        reader=llm,  # the fluency judge reads as the validator's does (None: tiny model)
    )
    client = MinerClient(wallet, timeout=config.neuron.timeout)
    miner = Neuron(0, h.hotkey, "", 0.0, h.endpoint, False)
    rows = []
    try:
        for name in [h.task] if h.task else TASKS:
            task = TASK_CLASSES[name](use_llm=llm is not None)
            drafts = [task.draft(seed) for seed in range(h.n)]
            for challenge in build_challenges(drafts, llm, Sampling.from_config(config)):
                request = PromptRequest(
                    task=challenge.task,
                    challenge_id=challenge.challenge_id,
                    messages=challenge.messages,
                    timeout=config.neuron.timeout,
                    step=0,
                )
                result = await client.query(miner, request)
                row = {
                    "challenge_id": challenge.challenge_id,
                    "status": result.status,
                    "latency": round(result.latency, 3),
                    "reward": 0.0,
                    "components": {},
                    "error": result.error,
                }
                if result.ok:
                    scored = rewards.score(challenge, [result.completion])
                    row["reward"] = round(float(scored.totals[0]), 4)
                    row["components"] = {
                        k: round(float(v), 4) for k, v in scored.for_index(0).items()
                    }
                rows.append(row)
    finally:
        await client.aclose()
        if llm is not None:
            llm.close()
    return rows


def main(argv=None) -> int:
    config = parse_config("validator", argv, prog="miner_harness.py", extra=extra)
    with contextlib.redirect_stdout(sys.stderr):  # libraries' chatter; stdout is the rows
        rows = asyncio.run(run(config))
    for row in rows:
        if config.harness.json:
            print(json.dumps(row))
            continue
        parts = " ".join(f"{k}={v}" for k, v in row["components"].items())
        print(
            f"{row['challenge_id']:<48} {row['status']:<11} {row['latency']:>6.2f} s  "
            f"reward {row['reward']:.3f}  {parts}  {row['error'][:80]}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
