"""Validator state on disk: written atomically, with the last good copy kept.

``save`` writes a temp file, fsyncs it, keeps the previous file as ``.bak`` and
renames the new one into place, then fsyncs the folder: after a crash at any
moment, the file is either the old or the new state, never half of one. ``load``
falls back to ``.bak`` (with a warning) if the main file is corrupt.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field

log = logging.getLogger(__name__)
STATE_VERSION = 1


class StateError(RuntimeError):
    pass


@dataclass
class ValidatorState:
    step: int = 0
    scores: list[float] = field(default_factory=list)  # by uid
    hotkeys: list[str] = field(default_factory=list)  # by uid, as last synced
    last_weights_step: int = 0
    last_weights_block: int | None = None
    version: int = STATE_VERSION

    def ensure_size(self, n: int) -> None:
        if len(self.scores) < n:
            self.scores.extend([0.0] * (n - len(self.scores)))
        if len(self.hotkeys) < n:
            self.hotkeys.extend([""] * (n - len(self.hotkeys)))


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save(state: ValidatorState, path: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".state-")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(state), f)
            f.flush()
            os.fsync(f.fileno())
        if os.path.exists(path):
            os.replace(path, path + ".bak")
        os.replace(tmp, path)
        _fsync_dir(folder)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _read(path: str) -> ValidatorState:
    with open(path) as f:
        data = json.load(f)
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
        raise ValueError(f"not a version {STATE_VERSION} state file")
    state = ValidatorState(**data)
    if len(state.scores) != len(state.hotkeys) or any(
        not isinstance(s, (int, float)) for s in state.scores
    ):
        raise ValueError("scores and hotkeys disagree")
    return state


def load(path: str) -> ValidatorState:
    """The saved state, the last good copy if the file is damaged, or a fresh state."""
    candidates = [p for p in (path, path + ".bak") if os.path.exists(p)]
    if not candidates:
        return ValidatorState()
    problems = []
    for candidate in candidates:
        try:
            state = _read(candidate)
        except (OSError, ValueError, TypeError) as exc:
            problems.append(f"{candidate}: {exc}")
            continue
        if problems:
            log.warning(
                "state: %s is unreadable (%s); resumed from %s",
                path,
                "; ".join(problems),
                candidate,
            )
        return state
    raise StateError(
        "no readable state: " + "; ".join(problems) + ". Move the files away to start fresh."
    )
