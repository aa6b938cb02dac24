"""The moving-average scores again, from the events alone.

Every event that moved a score says what it did (``scores/applied``: the uids whose
rewards entered, ``scores/alpha``; a synthetic step also ``scores/decay_alpha`` for
the uids it did not query), in the order the validator did it. Replaying them from
the state a run started with must give the scores it saved: if it does not, an
update was made and not logged, or logged and not saved (a shutdown that drops
organic exchanges scored while it drains). The SIGINT test and
``scripts/benchmark_organic.py`` check exactly this. Hotkey changes (a uid's score
restarting from 0 at a resync) are not events: a replay holds for a run in which no
uid changed hotkey, as on the local subnet.
"""

from __future__ import annotations

from collections.abc import Iterable

from prompting.validator import scoring
from prompting.validator.state import ValidatorState


def replay_scores(events: Iterable[dict], start: list[float]) -> list[float]:
    """The scores after ``events`` (in the order logged), from ``start`` (by uid)."""
    state = ValidatorState(scores=list(start), hotkeys=[""] * len(start))
    for event in events:
        applied = event.get("scores/applied")
        if applied is None:  # an event that moved no score (an unscored exchange)
            continue
        by_uid = dict(zip(event["uids"], event["rewards"]))
        scoring.update_scores(
            state, applied, [by_uid[uid] for uid in applied], event["scores/alpha"]
        )
        if "scores/decay_alpha" in event:
            scoring.decay_unsampled(state, event["uids"], event["scores/decay_alpha"])
    return state.scores
