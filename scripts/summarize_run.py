"""Summarize validator runs from their events (and logs) into one JSON.

    python scripts/summarize_run.py --out run.json NAME=STATE_DIR[:LOG] [NAME=STATE_DIR ...]

For each run: steps committed, seconds per step and scored challenges per hour (from the
commit times of the first and last step, so start-up is left out), challenge-generation
time per step, miner answers by status, steps skipped or failed (counted in the log),
and the start-up stages the first step's event carries (``startup/*``). With two or more
runs, each run's rate is also given as a ratio to the first run's.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics


def summarize(state_dir: str, log_path: str | None = None) -> dict:
    with open(os.path.join(state_dir, "events.jsonl")) as f:
        events = [json.loads(line) for line in f if line.strip()]
    events.sort(key=lambda e: e["step"])
    times = [e["time"] for e in events]
    per_step = (times[-1] - times[0]) / (len(events) - 1) if len(events) > 1 else None
    generate = [e.get("timings/generate_challenge", 0.0) for e in events]
    statuses = collections.Counter(s for e in events for s in e.get("statuses", []))
    out = {
        "steps": len(events),
        "seconds_per_step": per_step,
        "scored_challenges_per_hour": 3600 / per_step if per_step else None,
        "generate_challenge_s": {
            "mean": statistics.fmean(generate),
            "p50": statistics.median(generate),
            "max": max(generate),
        },
        "generate_batch_size": [e.get("generate/batch_size") for e in events],
        "tasks": dict(collections.Counter(e["task"] for e in events)),
        "statuses": dict(statuses),
        "reward_mean": statistics.fmean(e["reward/mean"] for e in events),
        "startup": {k[8:]: v for k, v in events[0].items() if k.startswith("startup/")},
    }
    if log_path and os.path.exists(log_path):
        text = open(log_path, errors="replace").read()
        out["skipped_steps"] = text.count("step skipped")
        out["failed_steps"] = text.count("a step failed")
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="NAME=STATE_DIR[:LOG]")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    report = {}
    for spec in args.runs:
        name, _, where = spec.partition("=")
        state_dir, _, log_path = where.partition(":")
        report[name] = summarize(state_dir, log_path or None)
    first = next(iter(report.values()))
    for run in report.values():
        if first["seconds_per_step"] and run["seconds_per_step"]:
            run["rate_vs_first"] = first["seconds_per_step"] / run["seconds_per_step"]
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
    print(
        json.dumps(
            {k: {kk: v[kk] for kk in ("steps", "seconds_per_step")} for k, v in report.items()}
        )
    )


if __name__ == "__main__":
    main()
