"""Turn a validator's events.jsonl into a PNG timing dashboard (no wandb needed).

    python scripts/plot_timings.py ~/.prompting/events.jsonl --out timings.png

Panels: stage timings per step (stacked), query latency per miner status, reward
model compute per step, and mean reward per task. Keys are the stable
``timings/<stage>`` names the validator logs to wandb.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

STAGES = (
    "timings/sync",
    "timings/sample",
    "timings/generate_challenge",
    "timings/query",
    "timings/reward",
    "timings/weights",
    "timings/save",
)


def load(path: str) -> list[dict]:
    with open(path) as f:
        events = [json.loads(line) for line in f if line.strip()]
    return [e for e in events if e.get("kind") != "organic"]  # synthetic steps only


def plot(events: list[dict], out: str, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [e["step"] for e in events]
    fig, axes = plt.subplots(2, 2, figsize=(13, 8))
    ax = axes[0][0]
    bottom = [0.0] * len(events)
    for stage in STAGES:
        values = [float(e.get(stage, 0.0)) for e in events]
        if any(values):
            ax.bar(steps, values, bottom=bottom, label=stage.split("/", 1)[1], width=0.9)
            bottom = [b + v for b, v in zip(bottom, values)]
    ax.set(
        title="Stage time per step (stacked)",
        xlabel="step",
        ylabel="seconds",
        ylim=(0, 1.3 * max(bottom + [1e-3])),
    )
    ax.legend(fontsize=7, ncol=4, loc="upper center")

    ax = axes[0][1]
    by_status = defaultdict(list)
    for e in events:
        for status, latency in zip(e["statuses"], e["latencies"]):
            by_status[status].append((e["step"], latency))
    for status, points in sorted(by_status.items()):
        ax.scatter([p[0] for p in points], [p[1] for p in points], s=8, label=status)
    ax.set(title="Miner latency by status", xlabel="step", ylabel="seconds")
    ax.legend(fontsize=8)

    ax = axes[1][0]
    models = sorted(
        {
            k
            for e in events
            for k in e
            if k.startswith(("timings/reward/", "timings/penalty/", "timings/embed"))
        }
    )
    for key in models:
        ax.plot(
            steps,
            [1000 * float(e.get(key, 0.0)) for e in events],
            ".-",
            ms=3,
            label=key.split("/", 1)[1],
        )
    ax.set(title="Reward model compute per step", xlabel="step", ylabel="milliseconds")
    ax.legend(fontsize=7, ncol=2)

    ax = axes[1][1]
    by_task = defaultdict(list)
    for e in events:
        by_task[e["task"]].append((e["step"], e.get("reward/mean", 0.0)))
    for task, points in sorted(by_task.items()):
        ax.plot([p[0] for p in points], [p[1] for p in points], "o", ms=4, label=task)
    ax.set(title="Mean reward per step, by task", xlabel="step", ylabel="reward (0-1)", ylim=(0, 1))
    ax.legend(fontsize=8)
    fig.suptitle(title or f"prompting validator timings ({len(events)} steps)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("events", help="events.jsonl written by the validator")
    parser.add_argument("--out", default="timings.png")
    parser.add_argument("--title", default="")
    args = parser.parse_args(argv)
    plot(load(args.events), args.out, args.title)
    print(args.out)


if __name__ == "__main__":
    main()
