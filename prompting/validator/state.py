"""Validator state on disk: written atomically, with the last good copy kept.

``save`` keeps the previous file as ``.bak`` and writes the new one with the project's
atomic writer (``prompting/atomic.py``: temp file, fsync, rename, fsync of the folder):
after a crash at any moment, the file is either the old or the new state, never half
of one. ``load`` falls back to ``.bak`` (with a warning) if the main file is corrupt.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field

from prompting.atomic import write_json

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


def save(state: ValidatorState, path: str) -> None:
    """Replace the state file atomically; the file it replaces becomes ``.bak``."""
    write_json(path, asdict(state), keep_previous=True)


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
