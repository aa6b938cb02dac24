"""Summarize validator runs from their events (and logs) into one JSON.

    python scripts/summarize_run.py --out run.json NAME=STATE_DIR[:LOG[:SMI_CSV]] ...

For each run: steps committed, seconds per step and scored challenges per hour (from the
commit times of the first and last step, so start-up is left out), challenge-generation
time per step, miner answers by status, steps skipped or failed (counted in the log),
and the start-up stages the first step's event carries (``startup/*``). The load: steps
in flight and generation batch sizes, the model thread's busy share over the same
window (``generate/busy_s``), and each miner's query rate (mean over the window and the
most queries any miner got in one second, from the events' ``query/started``). With an
nvidia-smi CSV sampled through the run (``timestamp,memory.used,utilization.gpu``,
``--format=csv,noheader,nounits``, its first row taken before the run): the GPU's mean
utilization over the window and the device-wide peak less the first row. With two or
more runs, each run's rate is also given as a ratio to the first run's.
"""

from __future__ import annotations

import argparse
import bisect
import collections
import datetime
import json
import os
import statistics


def spread(values: list[float]) -> dict:
    ordered = sorted(values)
    return {
        "mean": statistics.fmean(ordered),
        "p50": statistics.median(ordered),
        "p95": ordered[int(0.95 * (len(ordered) - 1))],
        "max": ordered[-1],
    }


def query_rates(events: list[dict], seconds: float) -> dict:
    """Per-miner queries per second over the run, and the most one miner got in any
    second (the rate bound's test: at most --neuron.miner_query_rate)."""
    starts: dict[int, list[float]] = collections.defaultdict(list)
    for e in events:
        for uid in e.get("uids", []):
            if "query/started" in e:
                starts[uid].append(e["query/started"])
    if not starts:
        return {}
    most = 0
    for times in starts.values():
        times.sort()
        for i, t in enumerate(times):
            most = max(most, bisect.bisect_left(times, t + 1.0) - i)
    rates = [len(t) / seconds for t in starts.values()]
    return {
        "miners": len(starts),
        "mean_per_miner": statistics.fmean(rates),
        "max_per_miner": max(rates),
        "most_in_one_second": most,
    }


def smi_figures(path: str, start: float, end: float) -> dict:
    """GPU utilization in [start, end] and the device-wide peak less the first sample."""
    rows = []
    for line in open(path):
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 3:
            continue
        try:
            when = datetime.datetime.strptime(parts[0], "%Y/%m/%d %H:%M:%S.%f")
            rows.append(
                (when.replace(tzinfo=datetime.timezone.utc).timestamp(), *map(float, parts[1:3]))
            )
        except ValueError:
            continue
    inside = [r for r in rows if start <= r[0] <= end]
    out = {"samples": len(rows)}
    if rows:
        out["device_peak_above_start_mib"] = max(r[1] for r in rows) - rows[0][1]
    if inside:
        out["utilization_mean_pct"] = statistics.fmean(r[2] for r in inside)
        out["busy_share"] = sum(r[2] > 0 for r in inside) / len(inside)
    return out


def summarize(state_dir: str, log_path: str | None = None, smi_path: str | None = None) -> dict:
    with open(os.path.join(state_dir, "events.jsonl")) as f:
        events = [json.loads(line) for line in f if line.strip()]
    organic = [e for e in events if e.get("kind") == "organic"]
    events = [e for e in events if e.get("kind") != "organic"]  # synthetic steps
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
    if per_step:
        window = times[-1] - times[0]
        scored = sum(1 for e in events[1:] if e.get("responses/ok", 0) > 0)
        out["scored_challenges_per_gpu_hour"] = scored * 3600 / window
        out["in_flight"] = spread([e.get("forwards/in_flight", 0) for e in events])
        out["generate_batch"] = spread([e.get("generate/batch_size", 0) for e in events])
        if "generate/busy_s" in events[-1]:
            busy = events[-1]["generate/busy_s"] - events[0]["generate/busy_s"]
            out["model_thread_busy_share"] = busy / window
        out["query_rate"] = query_rates(events, window)
        out["miner_latency_s"] = spread(
            [lat for e in events for lat, st in zip(e["latencies"], e["statuses"]) if st == "ok"]
            or [0.0]
        )
        if smi_path and os.path.exists(smi_path):
            out["nvidia_smi"] = smi_figures(smi_path, times[0], times[-1])
    if organic:
        out["organic"] = {
            "requests": len(organic),
            "scored": sum(bool(e.get("organic/scored")) for e in organic),
            "statuses": dict(collections.Counter(s for e in organic for s in e["statuses"])),
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
        state_dir, _, rest = where.partition(":")
        log_path, _, smi_path = rest.partition(":")
        report[name] = summarize(state_dir, log_path or None, smi_path or None)
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
