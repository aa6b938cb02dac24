"""API keys of the organic endpoint, and their per-key rate limits.

The keys file is JSON::

    {"keys": [{"name": "alice", "sha256": "<hex>", "rate_per_minute": 60}]}

It holds each key's sha256, never the key itself: a copied keys file lets nobody in.
The validator re-reads it when it changes, so keys are added and revoked without a
restart. ``python scripts/organic_keys.py add --name alice`` issues a key (printed
once), ``list`` shows them, ``revoke --name alice`` removes one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import secrets
import sys
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass

from prompting.atomic import write_json

log = logging.getLogger(__name__)
KEY_PREFIX = "pk-"
DEFAULT_RATE_PER_MINUTE = 60


class KeysFileError(Exception):
    """The keys file cannot be read or has the wrong shape; the message says which."""


@dataclass(frozen=True)
class ApiKey:
    name: str
    sha256: str
    rate_per_minute: int


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def read_keys(path: str) -> dict[str, ApiKey]:
    """sha256 -> ApiKey; a missing file is no keys (every request is refused with 401)."""
    if not os.path.exists(path):
        return {}
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise KeysFileError(f"cannot read keys file {path}: {exc}") from None
    entries = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise KeysFileError(f'keys file {path}: expected {{"keys": [...]}}')
    out = {}
    for i, entry in enumerate(entries):
        try:
            name, sha, rate = entry["name"], entry["sha256"], entry.get("rate_per_minute")
        except (TypeError, KeyError):
            raise KeysFileError(f"keys file {path}: entry {i} lacks name or sha256") from None
        rate = DEFAULT_RATE_PER_MINUTE if rate is None else rate
        if not (isinstance(sha, str) and len(sha) == 64) or not isinstance(rate, int) or rate < 1:
            raise KeysFileError(f"keys file {path}: entry {i} ({name}) is malformed")
        out[sha] = ApiKey(str(name), sha, rate)
    return out


def write_keys(path: str, keys: list[ApiKey]) -> None:
    """Through the project's one atomic writer (``prompting/atomic.py``): a crash while
    keys are added leaves the old file or the new one, fsync'd, readable by its owner
    only (it holds key hashes)."""
    entries = [
        {"name": k.name, "sha256": k.sha256, "rate_per_minute": k.rate_per_minute} for k in keys
    ]
    write_json(path, {"keys": entries}, indent=2)


class ApiKeys:
    """The keys file, re-read when its modification time or size changes (one stat per
    request, a few microseconds), with a sliding one-minute window of requests per key."""

    def __init__(self, path: str):
        self.path = path
        self._keys: dict[str, ApiKey] = {}
        self._mtime: tuple[int, int] | None = None
        self._seen: dict[str, deque] = defaultdict(deque)
        self._lock = threading.RLock()
        self.reload()

    def reload(self) -> None:
        try:
            stat = os.stat(self.path)
            mtime = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            mtime = None
        if mtime != self._mtime:
            self._keys = read_keys(self.path)  # a broken file keeps nothing silently
            self._mtime = mtime

    def __len__(self) -> int:
        """Keys listed (0: every request is refused with 401)."""
        return len(self._keys)

    def lookup(self, key: str | None) -> ApiKey | None:
        """The key's entry, or None for a missing or unknown key."""
        try:
            self.reload()
        except KeysFileError as exc:  # keep the last good keys, and say why
            log.warning("%s; keeping the keys read before", exc)
        if not key:
            return None
        return self._keys.get(digest(key))

    def wait(self, entry: ApiKey) -> float:
        """Seconds until the key's window has room (0: now), charging nothing: a request
        refused later (400) must not use up the key's rate."""
        now = time.monotonic()
        with self._lock:
            times = self._seen[entry.sha256]
            while times and now - times[0] >= 60.0:
                times.popleft()
            return 60.0 - (now - times[0]) if len(times) >= entry.rate_per_minute else 0.0

    def allow(self, entry: ApiKey) -> float:
        """0 when the request may go (and it is counted); else as ``wait``."""
        with self._lock:
            wait = self.wait(entry)
            if not wait:
                self._seen[entry.sha256].append(time.monotonic())
            return wait


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="organic_keys.py", description="Issue, list and revoke organic API keys."
    )
    parser.add_argument(
        "--file",
        default=os.path.join(os.path.expanduser("~/.prompting"), "organic_keys.json"),
        help="the keys file (the validator's --organic.keys_file)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="issue a key; it is printed once")
    add.add_argument("--name", required=True)
    add.add_argument("--rate", type=int, default=DEFAULT_RATE_PER_MINUTE, help="requests/min")
    sub.add_parser("list", help="names and rates")
    revoke = sub.add_parser("revoke", help="remove a key by name")
    revoke.add_argument("--name", required=True)
    args = parser.parse_args(argv)
    try:
        keys = list(read_keys(args.file).values())
    except KeysFileError as exc:
        parser.exit(2, f"organic_keys.py: error: {exc}\n")
    if args.command == "add":
        if args.rate < 1:
            parser.exit(2, "organic_keys.py: error: --rate must be >= 1\n")
        if any(k.name == args.name for k in keys):
            parser.exit(2, f"organic_keys.py: error: a key named {args.name!r} exists\n")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        write_keys(args.file, [*keys, ApiKey(args.name, digest(key), args.rate)])
        print(key)
    elif args.command == "list":
        for k in keys:
            print(f"{k.name}\t{k.rate_per_minute}/min\tsha256 {k.sha256[:12]}…")
    else:
        kept = [k for k in keys if k.name != args.name]
        if len(kept) == len(keys):
            parser.exit(2, f"organic_keys.py: error: no key named {args.name!r}\n")
        write_keys(args.file, kept)
    return 0


if __name__ == "__main__":
    sys.exit(main())
