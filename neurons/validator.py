"""The prompting validator: challenges miners, scores them, sets weights.

    python neurons/validator.py                       # embedded local subnet, CPU
    python neurons/validator.py --neuron.llm_backend vllm \
        --neuron.model_id HuggingFaceH4/zephyr-7b-beta --chain.network finney --netuid 1
"""

from __future__ import annotations

import time

PROCESS_START = time.time()  # before the heavy imports: start-up is measured from here

import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402

from prompting.config import TINY_MODEL, parse_config  # noqa: E402

# New tokens of the local subnet's model miner: few enough that its answer, written on
# the cores the validator's own generation uses, fits the default timeout (measured:
# benchmarks/README.md, "CPU: the default run").
LOCAL_MODEL_MINER_TOKENS = 96


def shares_cores_with_a_model_miner(config, loads_llm: bool) -> bool:
    """Whether a local `model` miner runs its model on the CPU cores this validator's model
    generates on. Then the validator keeps one step in flight: with steps in flight
    following the load the model miner timed out and trailed (benchmarks/README.md,
    "CPU: the default run")."""
    if not (loads_llm and config.chain.network == "local"):
        return False
    if "model" not in config.local.strategies[: config.local.miners]:
        return False
    import torch  # loaded with the model by now

    return not torch.cuda.is_available()


def organic_embeds() -> bool:
    """Whether the rewards organic answers are scored with embed text."""
    from prompting.organic.service import reward_mix
    from prompting.registry import REWARDS

    return any(REWARDS[name].uses_embeddings for name in reward_mix()[0])


def load_chosen_parts(config) -> bool:
    """Import the tasks with a weight, the rewards and penalties they name and the
    local miners' strategies, so that a plug-in that cannot load stops the start in one
    line (PluginError) before any miner starts, not a step later. Returns whether a
    reward of these tasks embeds text (then the relevance embedder loads at start)."""
    from prompting.registry import REWARDS, STRATEGIES, TASKS

    embeds = False
    for name, weight in config.neuron.task_weights.items():
        if weight > 0:
            task = TASKS[name]
            embeds |= any(REWARDS[reward].uses_embeddings for reward in task.rewards)
            for penalty in (*task.penalties, *config.reward.penalties):
                REWARDS[penalty]
    if config.chain.network == "local":
        for name in config.local.strategies[: config.local.miners]:
            STRATEGIES[name]
    return embeds


def local_organic_miner_args(config) -> list[str]:
    """The local miners' rate limit and answer slots when organic users are served:
    every organic request is streamed from --organic.miners miners at once, and the
    miners' defaults (60 requests per 10 s, 8 slots) would refuse a load the validator
    admits, measuring the miners' limits instead of the validator."""
    n = config.neuron  # plus every synthetic query the rate bound lets in (and then some)
    synthetic = int(n.miner_query_rate * (n.timeout + 5)) + 1
    slots = config.organic.max_concurrency + synthetic
    return ["--miner.rate_limit", "100000", "--miner.max_concurrency", str(slots)]


async def run(validator, config) -> None:
    """The validator's steps, with the organic endpoint beside them in the same event
    loop when ``--organic.enabled``. At a stop (SIGINT, SIGTERM, max_steps) no organic
    request is admitted, those in flight finish and are scored within
    ``--organic.drain_s``, and only then is the state saved: every score the events
    record is on disk. Raises KeysFileError (a malformed keys file) or OSError (the
    endpoint's port) before the first step."""
    endpoint = None
    if config.organic.enabled:
        from prompting.organic.api import Endpoint

        endpoint = await Endpoint.start(validator, config)
    try:
        await validator.run_steps()
    finally:
        if endpoint is not None:
            await endpoint.stop(config.organic.drain_s)
        await validator.close()


def main(argv=None) -> int:
    config = parse_config(
        "validator", argv, prog="validator.py", description=__doc__.split("\n")[0]
    )
    logging.basicConfig(
        level=config.logging.level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("httpx", "httpcore", "transformers", "sentence_transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from prompting import compat, instance
    from prompting.chain import ChainError, connect
    from prompting.llms import LLMError, load_llm, preflight
    from prompting.llms.embedded import EmbeddedModelError, resolve_model
    from prompting.miner.latency import local_miner_args
    from prompting.network.auth import load_or_create_wallet, open_wallet
    from prompting.registry import PluginError
    from prompting.rewards.relevance import shared_embedder
    from prompting.rewards.stack import RewardStack
    from prompting.telemetry import Telemetry
    from prompting.validator.localnet import LocalSubnet, LocalSubnetError
    from prompting.validator.loop import Validator, uses_llm_references

    log = logging.getLogger("validator")
    compat.check_pydantic()
    compat.guard_event_loop_policy()
    local = config.chain.network == "local"
    os.makedirs(config.neuron.full_path, exist_ok=True)
    # The tiny model writes no challenge (noise), but organic references need a model: it
    # loads for them (and for the users' token counts) when the endpoint is on.
    writes_challenges = uses_llm_references(config)
    loads_llm = writes_challenges or config.organic.enabled
    try:  # before any miner starts: a model or plug-in that cannot load is named now
        needs_embedder = load_chosen_parts(config) or (config.organic.enabled and organic_embeds())
        for warning in preflight.check(config, loads_llm):
            log.warning(warning)
        if loads_llm:  # embedded models are made once here; local model miners share them
            resolve_model(config.neuron.model_id, config.neuron.full_path)
    except (LLMError, EmbeddedModelError, PluginError) as exc:
        print(f"validator.py: error: {exc}", file=sys.stderr)
        return 2
    if local:  # the local subnet keeps its own wallets beside its chain file
        wallet = load_or_create_wallet(
            config.wallet.name,
            config.wallet.hotkey,
            os.path.join(config.neuron.full_path, "wallets"),
        )
    else:
        wallet = open_wallet(config.wallet.name, config.wallet.hotkey, config.wallet.path)
    hotkey = wallet.hotkey.ss58_address
    try:  # one validator per state folder and per hotkey on this machine
        instance.hold_state_and_hotkey(config.neuron.full_path, hotkey, "validator")
    except instance.AlreadyRunning as exc:
        print(f"validator.py: error: {exc}", file=sys.stderr)
        return 2
    chain = connect(config, hotkey, wallet)
    startup = {"setup": time.time() - PROCESS_START}  # config, imports, wallet, chain
    subnet, labels, miners = None, {}, None
    # The local miners start and the relevance embedder loads in threads while the model
    # loads: each takes seconds to tens of seconds.
    background = ThreadPoolExecutor(max_workers=2, thread_name_prefix="startup")
    if local:
        chain.register(
            hotkey, wallet.coldkeypub.ss58_address, stake=10_000.0, validator_permit=True
        )
        if config.local.miners:
            subnet = LocalSubnet(chain, config.neuron.full_path, hotkey)
            log.info(
                "starting %d local miners (%s)",
                config.local.miners,
                ",".join(config.local.strategies[: config.local.miners]),
            )

            try:  # spawned from this (main) thread: they die with the process
                subnet.spawn(
                    config.local.strategies,
                    config.local.miners,
                    [
                        "--reward.relevance_model",
                        config.reward.relevance_model,
                        "--reward.pooling",
                        config.reward.pooling,
                        "--neuron.max_tokens",  # a model miner must answer inside the timeout
                        str(LOCAL_MODEL_MINER_TOKENS),
                        *local_miner_args(
                            config.local.latency,
                            config.neuron.miner_query_rate,
                            config.neuron.timeout,
                        ),
                        # a validator on the tiny model runs for speed (tests): its model
                        # miner too, instead of converting and running SmolLM2 on the CPU
                        *(["--neuron.model_id", TINY_MODEL] if not writes_challenges else []),
                        # organic users reach the local miners beyond the validator's own
                        # query-rate bound: room for what --organic.max_concurrency sends
                        *(local_organic_miner_args(config) if config.organic.enabled else []),
                    ],
                )
            except LocalSubnetError as exc:
                print(f"validator.py: error: {exc}", file=sys.stderr)
                return 1

            def start_miners() -> dict[int, str]:
                started = subnet.wait_ready()
                startup["miners_ready"] = time.time() - PROCESS_START
                return started

            miners = background.submit(start_miners)
    rewards = RewardStack(
        lambda: shared_embedder(
            config.reward.relevance_model, config.reward.pooling, config.reward.device
        ),
        extra_penalties=config.reward.penalties,
    )

    def load_embedder() -> None:  # before the first step, not inside it
        rewards.embedder  # noqa: B018
        startup["embedder_ready"] = time.time() - PROCESS_START

    embedder = None
    if needs_embedder:  # none for tasks whose rewards do not embed (a plug-in's, say)
        try:  # transformers imported here, whole, before two threads would import it at once
            compat.import_angle()
        except compat.CompatError as exc:
            print(f"validator.py: error: {exc}", file=sys.stderr)
            return 1
        embedder = background.submit(load_embedder)
    llm = None
    try:
        if loads_llm:
            llm = load_llm(config)
            seconds = llm.warmup()  # the backend's own, paid now, not in the first step
            if seconds:
                log.info("%s: warm-up took %.1f s", llm.name, seconds)
            log.info("llm: %s", llm.stats.to_dict())
            startup["llm_ready"] = time.time() - PROCESS_START
            if writes_challenges:  # a model whose reading means something (not tiny)
                rewards.reader = llm  # the fluency judge reads answers on the model thread
        if embedder is not None:
            embedder.result()
        if miners is not None:
            labels = miners.result()
        telemetry = Telemetry(
            config.neuron.full_path,
            config.wandb,
            config.to_dict(),
            offline_default=local,
            retention_mb=config.neuron.events_retention_size,
        )
        if (
            shares_cores_with_a_model_miner(config, writes_challenges)
            and config.neuron.forwards != "fixed"
        ):
            log.info(
                "one step in flight: the local model miner generates on the CPU cores the "
                "validator's model uses, and a second step's generation would push its "
                "answers past the timeout (on a GPU, steps in flight follow the load)"
            )
            config.neuron.forwards = "fixed"
        validator = Validator(config, wallet, chain, llm, rewards, telemetry)
        validator.labels = labels
        validator.process_start, validator.startup = PROCESS_START, startup
        startup["loop_start"] = time.time() - PROCESS_START
        log.info(
            "validator %s resumes at step %d (state in %s)",
            hotkey,
            validator.state.step,
            config.neuron.full_path,
        )
        from prompting.organic.keys import KeysFileError

        try:
            compat.run(run(validator, config))  # uvloop's loop where installed
        except (KeysFileError, OSError) as exc:  # a bad keys file, a port in use
            if not config.organic.enabled:
                raise
            print(f"validator.py: error: organic endpoint: {exc}", file=sys.stderr)
            return 2
        print("\nfinal scoreboard (uid, label, hotkey, moving-average score):")
        for uid, label, hk, score in validator.scoreboard():
            print(
                f"  {uid:>4}  {label or ('validator' if hk == hotkey else ''):<9}  {hk}  "
                f"{score:.4f}"
            )
        telemetry.close()
    except (LLMError, ChainError, compat.CompatError, LocalSubnetError) as exc:
        print(f"validator.py: error: {exc}", file=sys.stderr)
        return 1
    finally:
        background.shutdown(wait=True)
        if subnet is not None:
            subnet.stop()
        if llm is not None:
            llm.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
