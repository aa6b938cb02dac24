"""Summarize validator runs from their events (and logs) into one JSON.

    python scripts/summarize_run.py --out run.json NAME=STATE_DIR[:LOG[:SMI_CSV[:PYSPY]]] ...

For each run: its date, device (``--device``) and command (a log's first line when it
reads ``command: ...``), steps committed, seconds per step and scored challenges per hour, challenge
generation time per step, miner answers by status, steps skipped or failed (counted in the
log), and the start-up stages the first step's event carries (``startup/*``).

Every rate and share is taken over the run's window: from the start of its first step
(the earliest commit time less that step's ``timings/step``) to its last commit. Start-up
is left out, the steps' generation is not: a burst of steps that all generate first and
commit within seconds would otherwise show the GPU idle and the commits' spread as the
rate (the adaptive run of 2026-12-06 read utilization 0 and 52,909 per hour that way).

The load: steps in flight, waiting for generation and waiting for miners; generation
batch sizes; the model thread's busy share (``generate/busy_s``: generation;
``worker/busy_s``: all its work, rewards included) and, with a vLLM backend shared between
threads, the engine thread's (``engine/busy_s``) and the reward threads' summed time
(``rewards/busy_s``); the reward stack's parts per step (``embed``, the fluency judge's
``read`` and ``read_answers``); each miner's query rate (mean over
the window and the most queries any miner got in one second, from ``query/started``).
With an nvidia-smi CSV sampled through the run (``timestamp,memory.used,utilization.gpu``,
``--format=csv,noheader,nounits``, UTC timestamps, its first row taken before the run):
the GPU's mean utilization and busy share (samples above 0%) over the window and the
device-wide peak less the first row. With a py-spy recording of the validator (``record
--threads --gil -f raw``): who held the GIL (``gil_split``). ``limit`` names the bound
the run hit (``bound``). With two or more runs, each run's rate is also given as a ratio
to the first run's.
"""

from __future__ import annotations

import argparse
import bisect
import collections
import datetime
import json
import os
import re
import statistics

GPU_BUSY = 0.8  # a GPU busy this share of the run is the bound
NEAR = 0.9  # a rate this close to its bound, or a thread this busy, is at it
# Where GIL time goes, by the innermost frame of a stack in one of these files (the
# last match from the thread's root): the areas the issue 28 profile named.
AREAS = (
    ("miner traffic", ("prompting/network/",)),
    ("rewards", ("prompting/rewards/",)),
    ("challenges and generation", ("prompting/tasks/", "prompting/llms/", "vllm/")),
    ("step bookkeeping", ("prompting/validator/", "prompting/telemetry.py")),
)
# py-spy's frame text: "function (file.py:line)"; the line number is dropped to group
FRAME = re.compile(r"^(.*) \(([^():]*):\d+\)$")


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
    """GPU utilization in [start, end] and the device-wide peak less the first sample.
    Timestamps are read as UTC (the GPU machines' clock)."""
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


def gil_split(path: str, samples_taken: int | None = None, top: int = 12) -> dict:
    """Who held the GIL in a py-spy recording (``record --threads --gil -f raw``: one
    line per stack, ``thread (tid): name;frame;...;frame count``, sampled only while a
    thread holds the GIL). Per thread its share of the GIL samples and, inclusive, the
    functions most often on its stack; with ``samples_taken`` (rate x seconds) each share
    is also one of the wall time, and ``gil_free`` the time nobody held the GIL."""
    threads: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    areas: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    held: collections.Counter = collections.Counter()
    for line in open(path, errors="replace"):
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        thread, *frames = stack.split(";")
        name = thread.partition(": ")[2] or thread
        held[name] += int(count)
        seen, area = set(), None
        for frame in frames:
            match = FRAME.match(frame)
            key = f"{match.group(1)} ({match.group(2)})" if match else frame
            if key not in seen:  # inclusive: a recursive function counts once a sample
                seen.add(key)
                threads[name][key] += int(count)
            if match:
                area = next((a for a, f in AREAS if match.group(2).startswith(f)), area)
        areas[name][area or "other (event loop, threads, libraries)"] += int(count)
    total = sum(held.values())
    out: dict = {"gil_samples": total, "threads": {}}
    if samples_taken:
        out["samples_taken"] = samples_taken
        out["gil_free_share_of_wall"] = max(0.0, 1 - total / samples_taken)
    # threads of one pool (rewards_0, rewards_1, ...) together
    pools: collections.Counter = collections.Counter()
    for name, n in held.items():
        pools[re.sub(r"_\d+$", "", name)] += n
    out["pools_share_of_gil"] = {k: round(v / total, 4) for k, v in pools.most_common()}
    if samples_taken:
        wall = {k: round(v / samples_taken, 4) for k, v in pools.most_common()}
        out["pools_share_of_wall"] = wall
    for name, n in held.most_common():
        row: dict = {"share_of_gil": n / total}
        if samples_taken:
            row["share_of_wall"] = n / samples_taken
        row["areas_share_of_gil"] = {k: round(v / total, 4) for k, v in areas[name].most_common()}
        # the frames on every one of its samples (thread start, the event loop) say nothing
        below = [(k, v) for k, v in threads[name].most_common() if v < n][:top]
        row["inclusive_share_of_gil"] = {k: round(v / total, 4) for k, v in below}
        out["threads"][name] = row
    return out


def bound(out: dict, rate_bound: float, in_flight_cap: int) -> str:
    """The bound a run hit, first match: ``gpu`` (busy at least GPU_BUSY of the window),
    ``miners' rate`` (the mean miner within NEAR of --neuron.miner_query_rate), ``model
    thread`` (busy NEAR of the window while the GPU is not: CPU work or the GIL on the
    model thread holds the GPU back), ``steps in flight`` (the median at the cap), else
    ``engine thread`` (with a shared vLLM backend, its engine thread stepping NEAR of the
    window while the GPU is not busy), ``none``."""
    gpu = out.get("nvidia_smi", {}).get("busy_share")
    if gpu is not None and gpu >= GPU_BUSY:
        return "gpu"
    if out.get("query_rate", {}).get("mean_per_miner", 0) >= NEAR * rate_bound:
        return "miners' rate"
    if out.get("model_thread_busy_share", 0) >= NEAR:
        return "model thread"
    if out.get("engine_thread_busy_share", 0) >= NEAR:
        return "engine thread"
    if out.get("in_flight", {}).get("p50", 0) >= in_flight_cap:
        return "steps in flight"
    return "none"


def summarize(
    state_dir: str,
    log_path: str | None = None,
    smi_path: str | None = None,
    pyspy_path: str | None = None,
    pyspy_samples: int | None = None,
    rate_bound: float = 4.0,
    in_flight_cap: int = 512,
) -> dict:
    with open(os.path.join(state_dir, "events.jsonl")) as f:
        events = [json.loads(line) for line in f if line.strip()]
    organic = [e for e in events if e.get("kind") == "organic"]
    events = [e for e in events if e.get("kind") != "organic"]  # synthetic steps
    events.sort(key=lambda e: e["step"])
    times = [e["time"] for e in events]
    start = min(e["time"] - e.get("timings/step", 0.0) for e in events)
    window = times[-1] - start
    per_step = window / len(events) if window > 0 else None
    generate = [e.get("timings/generate_challenge", 0.0) for e in events]
    statuses = collections.Counter(s for e in events for s in e.get("statuses", []))
    out = {
        "date": datetime.datetime.fromtimestamp(times[0], datetime.timezone.utc).date().isoformat(),
        "steps": len(events),
        "window_s": window,
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
        scored = sum(1 for e in events if e.get("responses/ok", 0) > 0)
        out["scored_challenges_per_gpu_hour"] = scored * 3600 / window
        if len(times) > 1 and times[-1] > times[0]:  # the commits alone: the steady rate
            out["commit_window_per_hour"] = (len(times) - 1) * 3600 / (times[-1] - times[0])
        for key, name in (
            ("forwards/in_flight", "in_flight"),
            ("forwards/waiting_generation", "waiting_generation"),
            ("forwards/waiting_miners", "waiting_miners"),
            ("generate/batch_size", "generate_batch"),
        ):
            out[name] = spread([e.get(key, 0) for e in events])
        for key, name in (
            ("generate/busy_s", "generation_busy_share"),
            ("worker/busy_s", "model_thread_busy_share"),
            ("engine/busy_s", "engine_thread_busy_share"),
            ("rewards/busy_s", "reward_threads_busy"),  # summed over threads: may pass 1
        ):
            if key in events[-1]:  # counted from the batcher's start, before the first step
                out[name] = events[-1][key] / window
        # the reward stack's parts per step: the relevance embedder, the fluency judge's
        # reading (the validator's model) and how many answers it read
        parts = {
            part: [e[f"timings/{part}"] for e in events if f"timings/{part}" in e]
            for part in ("embed", "read", "read_answers")
        }
        out["reward_parts"] = {part: spread(v) for part, v in parts.items() if v}
        # where a step's time goes (save: the state written and freed memory returned)
        out["stage_s"] = {
            stage: spread([e[f"timings/{stage}"] for e in events if f"timings/{stage}" in e])
            for stage in ("rate_wait", "query", "reward", "wait_turn", "save", "step")
            if any(f"timings/{stage}" in e for e in events)
        }
        out["query_rate"] = query_rates(events, window)
        out["query_rate"]["bound"] = rate_bound
        out["miner_latency_s"] = spread(
            [lat for e in events for lat, st in zip(e["latencies"], e["statuses"]) if st == "ok"]
            or [0.0]
        )
        if smi_path and os.path.exists(smi_path):
            out["nvidia_smi"] = smi_figures(smi_path, start, times[-1])
        out["limit"] = bound(out, rate_bound, in_flight_cap)
    if pyspy_path and os.path.exists(pyspy_path):
        out["gil_split"] = gil_split(pyspy_path, pyspy_samples)
    if organic:
        out["organic"] = {
            "requests": len(organic),
            "scored": sum(bool(e.get("organic/scored")) for e in organic),
            "statuses": dict(collections.Counter(s for e in organic for s in e["statuses"])),
        }
    if log_path and os.path.exists(log_path):
        text = open(log_path, errors="replace").read()
        if text.startswith("command: "):  # the runner's first line (benchmarks/gpu_runs.sh)
            out["command"] = text.splitlines()[0][len("command: ") :]
        out["skipped_steps"] = text.count("step skipped")
        out["failed_steps"] = text.count("a step failed")
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    from prompting.config import default_config

    defaults = default_config("validator").neuron
    parser.add_argument("runs", nargs="+", help="NAME=STATE_DIR[:LOG[:SMI_CSV[:PYSPY]]]")
    parser.add_argument("--out", required=True)
    parser.add_argument(
        "--pyspy_samples",
        type=int,
        help="samples py-spy tried to take (rate x seconds): GIL shares of the wall time",
    )
    parser.add_argument("--device", help="the card, as nvidia-smi names it")
    parser.add_argument("--rate_bound", type=float, default=defaults.miner_query_rate)
    parser.add_argument("--in_flight_cap", type=int, default=defaults.max_concurrent_forwards)
    args = parser.parse_args(argv)
    report = {}
    for spec in args.runs:
        name, _, where = spec.partition("=")
        state_dir, log_path, smi_path, pyspy_path = (where.split(":") + [""] * 3)[:4]
        report[name] = summarize(
            state_dir,
            log_path or None,
            smi_path or None,
            pyspy_path or None,
            args.pyspy_samples,
            args.rate_bound,
            args.in_flight_cap,
        )
        if args.device:
            report[name]["device"] = args.device
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
