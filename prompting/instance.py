"""One process per state folder and per hotkey on a machine.

Two validators on one state folder interleave their events and scores, and their
local miners take each other's endpoints; two processes signing with one hotkey
confuse every peer. Each holds an OS file lock (``flock``) for its lifetime; the
kernel drops it when the process dies, kill -9 included, so a lock is never stale.
The lock file names its holder so the refusal can say who it is.
"""

from __future__ import annotations

import fcntl
import os
import sys
import tempfile
import time
from typing import IO

# Per user: a folder another user made first would refuse our lock files (PermissionError,
# not a one-line reason); one user's processes are the ones that share wallet files.
HOTKEY_LOCKS = os.path.join(tempfile.gettempdir(), f"prompting-hotkeys-{os.getuid()}")
_held: list[IO[str]] = []  # open lock files live as long as the process


class AlreadyRunning(RuntimeError):
    """Another live process holds the lock; the message names it."""


def hold(path: str, what: str, wait_s: float = 0.0) -> None:
    """Take the lock at ``path`` for this process (waiting up to ``wait_s`` for its
    holder to leave), or raise AlreadyRunning naming the process that has it."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    f = open(path, "a+")
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() < deadline:
                time.sleep(0.1)
                continue
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise AlreadyRunning(f"{what} is already in use by {holder} (lock {path})") from None
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()}: {' '.join(sys.argv)}")
    f.flush()
    _held.append(f)


def hold_state_and_hotkey(state_dir: str, hotkey: str, role: str) -> None:
    """The validator's locks: its state folder and its hotkey on this machine."""
    hold(os.path.join(state_dir, f"{role}.lock"), f"state folder {state_dir}")
    hold_hotkey(hotkey)


def hotkey_lock(hotkey: str) -> str:
    return os.path.join(HOTKEY_LOCKS, f"{hotkey}.lock")


def hold_hotkey(hotkey: str, wait_s: float = 0.0) -> None:
    hold(hotkey_lock(hotkey), f"hotkey {hotkey}", wait_s)


def holder(path: str) -> tuple[int, str] | None:
    """(pid, command line) of the live process holding the lock at ``path``; None when
    nobody holds it. Only a live holder keeps an flock, so the text it wrote is current
    (pid 0: held, by a process that has not written its name yet)."""
    try:
        f = open(path)
    except FileNotFoundError:
        return None
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            head, _, command = f.read().partition(": ")
            pid = head.removeprefix("pid ")
            return (int(pid), command) if pid.isdigit() else (0, "")
        fcntl.flock(f, fcntl.LOCK_UN)
        return None
