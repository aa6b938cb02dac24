"""Reference miner: answers signed prompts with a generation backend or a strategy.

    python neurons/miner.py --miner.strategy model --neuron.llm_backend vllm
    python neurons/miner.py --miner.strategy retrieval --miner.port 8091

It serves only callers the chain lists with a validator permit or at least
--miner.min_stake (plus --miner.allow), verifying every btauth/1 signature.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import socket
import sys

from prompting.config import parse_config

PR_SET_PDEATHSIG = 1  # linux/prctl.h
PARENT_FLAG = "--miner.exit_with_parent"


def die_with_parent(argv: list[str]) -> None:
    """With ``--miner.exit_with_parent PID``: leave as soon as PID, the validator that
    started us, dies, even by kill -9, even while a model loads (minutes, for a large
    one). Runs first thing, before any import that takes time: on Linux the kernel then
    sends SIGTERM at the parent's death (PR_SET_PDEATHSIG); and a parent that died
    before that call has already handed us to another process, so the parent is checked
    to still be PID. Elsewhere ``exit_with_parent`` polls, once the server runs."""
    if PARENT_FLAG not in argv[:-1]:
        return
    value = argv[argv.index(PARENT_FLAG) + 1]
    if not value.isdigit():
        return  # parse_config names the bad value
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != int(value):
        print(f"miner.py: parent process {value} is gone; not starting", file=sys.stderr)
        sys.exit(0)


def build_answer(config):
    """The answer function of the strategy ``--miner.strategy`` names (the project's or
    an installed plug-in's, from ``prompting.registry.STRATEGIES``)."""
    from prompting.registry import STRATEGIES

    return STRATEGIES[config.miner.strategy].from_config(config).answer


async def serve(config) -> None:
    from prompting import instance
    from prompting.chain import connect
    from prompting.network.auth import Authorizer, CallerPolicy, load_or_create_wallet, open_wallet
    from prompting.network.server import bind, create_app, make_server

    local = config.chain.network == "local"
    wallet = (load_or_create_wallet if local else open_wallet)(
        config.wallet.name, config.wallet.hotkey, config.wallet.path
    )
    hotkey = wallet.hotkey.ss58_address
    # One process per hotkey on this machine. A local miner restarted with its validator
    # waits a moment for the one it replaces, which leaves within a second.
    instance.hold_hotkey(hotkey, wait_s=5.0 if config.miner.exit_with_parent else 0.0)
    chain = connect(config, hotkey, wallet)
    answer = build_answer(config)
    if config.miner.latency:  # benchmarks: a miner that thinks (prompting/miner/latency.py)
        from prompting.miner.latency import delayed, parse

        answer = delayed(answer, parse(config.miner.latency), config.neuron.seed)
    authorizer = Authorizer(
        CallerPolicy(config.miner.min_stake, frozenset(config.miner.allow)), chain.metagraph
    )
    app = create_app(
        answer,
        wallet,
        authorizer,
        max_concurrency=config.miner.max_concurrency,
        rate_limit=config.miner.rate_limit,
    )
    sock = bind(config.miner.host, config.miner.port)
    port = sock.getsockname()[1]
    server, serving = make_server(app, sock)
    if config.miner.port_file:
        tmp = config.miner.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{port}\n{hotkey}\n")
        os.replace(tmp, config.miner.port_file)
    logging.getLogger("miner").info(
        "miner %s (%s) listening on %s:%d", hotkey, config.miner.strategy, config.miner.host, port
    )
    if not local:
        publish_endpoint(chain, config, port)
    parent = config.miner.exit_with_parent
    watcher = asyncio.ensure_future(exit_with_parent(server, parent)) if parent else None
    await serving
    if watcher is not None:
        watcher.cancel()


def outward_ip() -> str:
    """This host's address on its default route (no packet is sent: connecting a UDP
    socket only picks the route). Behind NAT, pass --miner.external_ip."""
    from prompting.chain import ChainError

    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("8.8.8.8", 80))
            return s.getsockname()[0]
    except OSError as exc:
        raise ChainError(
            f"cannot tell this host's address ({exc}); pass --miner.external_ip"
        ) from None


def publish_endpoint(chain, config, port: int) -> None:
    """Serve our endpoint on the chain (bt.ServeAxon) unless it already shows it."""
    ip = config.miner.external_ip or outward_ip()
    port = config.miner.external_port or port
    published = chain.serve(ip, port)
    logging.getLogger("miner").info(
        "endpoint %s:%d %s on netuid %d",
        ip,
        port,
        "published" if published else "already on chain, not re-published",
        config.netuid,
    )


async def exit_with_parent(server, parent: int, every_s: float = 1.0) -> None:
    """Stop when ``parent``, the process that started us, is gone: a validator killed
    with -9 cannot stop its local miners. The fallback of ``die_with_parent``'s signal,
    for systems without prctl: we notice being re-parented and leave."""
    while os.getppid() == parent:
        await asyncio.sleep(every_s)
    logging.getLogger("miner").warning("parent process %d is gone; stopping", parent)
    server.should_exit = True


def main(argv: list[str] | None = None) -> None:
    die_with_parent(sys.argv[1:] if argv is None else argv)
    config = parse_config("miner", argv, prog="miner.py", description=__doc__.split("\n")[0])
    logging.basicConfig(
        level=config.logging.level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from prompting import compat
    from prompting.chain import ChainError
    from prompting.instance import AlreadyRunning
    from prompting.llms import LLMError
    from prompting.registry import PluginError

    compat.guard_event_loop_policy()
    try:
        asyncio.run(serve(config))
    except KeyboardInterrupt:
        pass
    except (LLMError, AlreadyRunning, ChainError, PluginError) as exc:  # one line, no traceback
        print(f"miner.py: error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
