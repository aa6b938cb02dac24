"""The ranking-fidelity measure itself: Kendall's tau-b, the graded line-up, and the
steps the moving averages need (prompting/evaluation/fidelity.py)."""

from __future__ import annotations

import pytest

from prompting.evaluation import fidelity


def test_kendall_tau_b_hand_computed():
    order = [5, 4, 3, 2, 1]
    assert fidelity.kendall_tau_b([0.9, 0.7, 0.5, 0.2, 0.0], order) == 1.0
    assert fidelity.kendall_tau_b([0.0, 0.2, 0.5, 0.7, 0.9], order) == -1.0
    # one swapped neighbour pair: 9 concordant, 1 discordant of 10
    assert fidelity.kendall_tau_b([0.9, 0.5, 0.7, 0.2, 0.0], order) == pytest.approx(0.8)
    # a tie among the rewards: 9 concordant, 1 tied; tau-b = 9 / sqrt(9 * 10)
    assert fidelity.kendall_tau_b([0.9, 0.7, 0.5, 0.0, 0.0], order) == pytest.approx(
        9 / (9 * 10) ** 0.5
    )
    assert fidelity.kendall_tau_b([0.0] * 5, order) == 0.0  # no information


def test_graded_line_up_degrades_in_known_steps():
    answer = "Tuples are immutable sequences, so they can serve as dictionary keys."
    passage = "A list can change in place. A tuple cannot change after it is made."
    g = fidelity.graded(answer, passage, "Another answer entirely.", "qa:x:1")
    assert list(g) == list(fidelity.GRADES)
    tokens = answer.split()
    assert g["whole"] == answer and g["empty"] == ""
    assert g["half"].split() == tokens[: len(tokens) // 2]
    changed = sum(a != b for a, b in zip(g["third_replaced"].split(), tokens))
    assert 1 <= changed <= round(len(tokens) / 3)
    assert len(g["third_replaced"].split()) == len(tokens)
    assert g == fidelity.graded(answer, passage, "Another answer entirely.", "qa:x:1")


def test_steps_to_order_counts_until_the_averages_settle():
    good = [0.8, 0.6, 0.4, 0.2, 0.0]
    assert fidelity.steps_to_order([good] * 5, alpha=0.1) == 1
    bad = [0.0, 0.6, 0.4, 0.2, 0.1]  # the best answer scored nothing once
    assert fidelity.steps_to_order([bad] + [good] * 30, alpha=0.1) > 1
    assert fidelity.steps_to_order([bad] * 10, alpha=0.1) is None
    rows = [
        {"task": "qa", "challenge_id": str(i), "grade": g, "total": v}
        for i in range(4)
        for g, v in zip(fidelity.GRADES, good)
    ]
    summary = fidelity.summarize(rows, alpha=0.1)["qa"]
    assert summary["tau_per_challenge"] == 1.0 and summary["tau_of_means"] == 1.0
    assert summary["n"] == 4 and summary["steps_to_order"] == 1
