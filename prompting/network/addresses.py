"""Checks of the addresses a person types: a miner's endpoint and an ss58 hotkey.

They are argparse types (they raise ``argparse.ArgumentTypeError``, which argparse
prints as one line naming the flag), shared by the scripts that take them.
"""

from __future__ import annotations

import argparse


def endpoint(text: str) -> str:
    """``HOST:PORT`` as a chain records it. ``http://HOST:PORT`` is taken too, since
    authors copy it from their server's log: the client adds the scheme and the path
    itself, so a stored scheme or path would make every query fail."""
    rest = text.strip()
    if rest.lower().startswith("http://"):
        rest = rest[len("http://") :].rstrip("/")
    host, sep, port = rest.rpartition(":")
    if not (sep and host and port.isdigit() and 0 < int(port) < 65536) or "/" in rest:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT or http://HOST:PORT (got {text!r})")
    return f"{host}:{int(port)}"


def ss58(text: str) -> str:
    """A hotkey or coldkey address, checksum included."""
    from bittensor.wallets import is_bittensor_address

    if not is_bittensor_address(text):
        raise argparse.ArgumentTypeError(f"not an ss58 address: {text!r}")
    return text
