"""Administer the embedded local subnet: register a miner that runs elsewhere.

    python scripts/localnet.py register --endpoint 127.0.0.1:8099 --wallet.path DIR
    python scripts/localnet.py register --endpoint HOST:PORT --hotkey SS58 --coldkey SS58
    python scripts/localnet.py list

``--neuron.full_path`` (the validator's state folder) and ``--netuid`` go before or after
the command's name.

A miner written by anyone (any language, see docs/protocol.md) joins the validator's
local chain (``<--neuron.full_path>/local_chain.json``) with its hotkey, coldkey and
endpoint; the validator queries it beside the reference miners from its next
metagraph sync (``--neuron.resync_seconds``). The registration lives in the chain file,
so it outlasts validator restarts; registering the same hotkey again keeps its uid and
updates its endpoint. Bad input ends with one line and exit code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import NoReturn

from prompting.config import DEFAULT_STATE_DIR, OneLineParser, nonneg
from prompting.network.addresses import endpoint, ss58


def common(p: argparse.ArgumentParser, default: object) -> None:
    """The flags every command takes, before or after its name (``default`` SUPPRESS in
    the subcommands, so one given before the name is not overwritten there)."""
    p.add_argument(
        "--neuron.full_path",
        dest="state",
        default=DEFAULT_STATE_DIR if default is None else default,
        help="the validator's state folder (its local_chain.json)",
    )
    p.add_argument("--netuid", type=int, default=1 if default is None else default)


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="localnet.py", description=__doc__.split("\n")[0])
    common(p, None)
    sub = p.add_subparsers(dest="command", required=True)
    reg = sub.add_parser("register", help="register (or update) a miner's hotkey and endpoint")
    common(reg, argparse.SUPPRESS)
    reg.add_argument("--endpoint", type=endpoint, required=True, help="HOST:PORT it listens on")
    reg.add_argument("--hotkey", type=ss58, help="its hotkey (ss58); or --wallet.path")
    reg.add_argument("--coldkey", type=ss58, help="its coldkey (ss58); or --wallet.path")
    reg.add_argument("--wallet.path", dest="wallet_path", help="read both from this wallet")
    reg.add_argument("--wallet.name", dest="wallet_name", default="default")
    reg.add_argument("--wallet.hotkey", dest="wallet_hotkey", default="default")
    reg.add_argument("--stake", type=nonneg, default=0.0)
    common(sub.add_parser("list", help="print the registered neurons"), argparse.SUPPRESS)
    return p


def keys(args: argparse.Namespace, fail: Callable[[str], NoReturn]) -> tuple[str, str]:
    """The miner's (hotkey, coldkey) ss58 addresses, from flags or from its wallet."""
    if args.wallet_path:
        import bittensor as bt

        wallet = bt.Wallet(name=args.wallet_name, hotkey=args.wallet_hotkey, path=args.wallet_path)
        try:
            return wallet.hotkey.ss58_address, wallet.coldkeypub.ss58_address
        except Exception as exc:  # noqa: BLE001 - keyfile errors vary by cause
            name = f"{args.wallet_name}/{args.wallet_hotkey}"
            fail(f"cannot read wallet {name} in {args.wallet_path}: {' '.join(str(exc).split())}")
    if not (args.hotkey and args.coldkey):
        fail("give --hotkey and --coldkey, or --wallet.path")
    return args.hotkey, args.coldkey


def main(argv=None) -> int:
    p = parser()
    args = p.parse_args(argv)
    fail = p.error  # one line, exit code 2
    from prompting.chain import ChainError, local_chain_path
    from prompting.chain.local import LocalChain

    state = os.path.abspath(os.path.expanduser(args.state))
    try:
        chain = LocalChain(local_chain_path(state), netuid=args.netuid)
        if args.command == "list":
            for n in chain.metagraph():
                print(f"{n.uid:>4}  {n.hotkey}  {n.endpoint or '-':<22} stake {n.stake:g}")
            return 0
        hotkey, coldkey = keys(args, fail)
        if any(n.hotkey == hotkey and n.validator_permit for n in chain.metagraph()):
            fail(f"{hotkey} is a validator's hotkey on this subnet; a miner needs its own")
        uid = chain.register(hotkey, coldkey, endpoint=args.endpoint, stake=args.stake)
    except ChainError as exc:
        fail(str(exc))
    print(f"uid {uid}: {hotkey} at {args.endpoint} on the local subnet in {state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
