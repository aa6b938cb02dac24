"""Moving-average scores and the weights they become."""

from __future__ import annotations

from collections.abc import Sequence

from prompting.validator.state import ValidatorState


def update_scores(
    state: ValidatorState, uids: Sequence[int], rewards: Sequence[float], alpha: float
) -> None:
    """score <- alpha * reward + (1 - alpha) * score, for the uids queried this step."""
    for uid, reward in zip(uids, rewards):
        state.scores[uid] = alpha * float(reward) + (1.0 - alpha) * state.scores[uid]


def decay_unsampled(state: ValidatorState, sampled: Sequence[int], decay_alpha: float) -> None:
    """score <- (1 - decay_alpha) * score for every uid not queried this step, so a uid
    that stops being sampled (deregistered endpoint, cooldown) fades instead of keeping
    weight forever."""
    if decay_alpha <= 0:
        return
    queried = set(sampled)
    for uid in range(len(state.scores)):
        if uid not in queried:
            state.scores[uid] *= 1.0 - decay_alpha


def sync_hotkeys(state: ValidatorState, hotkeys: Sequence[str]) -> list[int]:
    """Adopt the metagraph's hotkeys; a uid whose hotkey changed restarts from 0.

    Returns the uids that were reset. Uids beyond the metagraph are dropped.
    """
    state.ensure_size(len(hotkeys))
    reset = [uid for uid, hk in enumerate(hotkeys) if state.hotkeys[uid] not in ("", hk)]
    for uid in reset:
        state.scores[uid] = 0.0
    state.hotkeys[:] = list(hotkeys)
    del state.scores[len(hotkeys) :]
    return reset


def weights_from_scores(
    scores: Sequence[float], exclude: Sequence[int] = ()
) -> tuple[list[int], list[float]]:
    """Normalized weights over all uids (excluded uids and non-positive scores get 0)."""
    skip = set(exclude)
    values = [0.0 if uid in skip else max(0.0, float(s)) for uid, s in enumerate(scores)]
    total = sum(values)
    if total <= 0:
        return [], []
    return [u for u, v in enumerate(values) if v > 0], [v / total for v in values if v > 0]
