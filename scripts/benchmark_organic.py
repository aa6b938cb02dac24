"""Organic load on a running local subnet: what users get (who served them, how good
it was), time to first token and total time at each user count, the synthetic step rate
with and without organic load, and after SIGINT whether the saved scores equal the
replay of every event.

    python scripts/benchmark_organic.py --users 1,8 --out benchmarks/results/X.json
    python scripts/benchmark_organic.py --users 1,8 --phase-s 60 -- --neuron.model_id tiny

Starts ``neurons/validator.py`` with the organic endpoint on the local subnet (its own
state folder, an API key issued for the run, the validator's default local miners
unless ``--strategies`` names others, ``--local.latency realistic`` unless
``--latency`` says otherwise; flags after ``--`` go to the validator), waits for
``--warmup-steps`` synthetic steps so that scores have formed, then runs phases of
``--phase-s`` seconds each: no organic load, then each user count (every user
sends streamed requests one after the other with the real ``openai`` client), each
load phase between two quiet ones, so that drift in the machine's other load shows.
Per phase: the synthetic steps committed in it (events.jsonl, by their
time) and, for organic phases, each request's time to first content chunk and total
time (p50, p95, max), failures by error, answers with no text, the organic events'
statuses, and the CPU each process group used (the validator, its local miners, this
load generator): on a small machine they share the cores, and the synthetic rate
follows what is left. Quality, from the organic events: the share of answers served by
a top-3 miner by score (``organic/served_rank``: the rank among the miners asked, who
are the best by score), who served, and the served answers' mean reward beside the
mean synthetic reward of the best miner by score at the phase's start.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import io
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUESTIONS = [
    "What does the pass statement do in Python?",
    "Explain what a list comprehension is, with a short example.",
    "How do I read a file line by line in Python?",
    "What is the difference between a tuple and a list?",
    "Summarize what the with statement is for.",
    "When should I use a dictionary instead of a list?",
]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def percentiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50": round(percentile(values, 50), 4),
        "p95": round(percentile(values, 95), 4),
        "max": round(max(values), 4),
    }


def read_events(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    out = []
    with open(path) as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except ValueError:
                pass  # a line being written
    return out


async def user(
    base: str, key: str, deadline: float, index: int, samples: list, errors: dict, blank: list
):
    import openai

    client = openai.AsyncOpenAI(base_url=base, api_key=key, max_retries=0, timeout=60)
    n = 0
    while time.monotonic() < deadline:
        question = QUESTIONS[(index + n) % len(QUESTIONS)]
        n += 1
        start = time.perf_counter()
        first = None
        try:
            stream = await client.chat.completions.create(
                model="prompting",
                messages=[{"role": "user", "content": question}],
                stream=True,
                max_tokens=96,
            )
            text = ""
            async for chunk in stream:
                piece = chunk.choices[0].delta.content if chunk.choices else None
                if piece and first is None:
                    first = time.perf_counter() - start
                text += piece or ""
            samples.append((first, time.perf_counter() - start))
            if not text.strip():
                blank.append(question)
        except openai.APIStatusError as exc:
            errors[str(exc.status_code)] = errors.get(str(exc.status_code), 0) + 1
            await asyncio.sleep(0.5)
        except openai.APIError as exc:
            name = type(exc).__name__
            errors[name] = errors.get(name, 0) + 1
    await client.close()


async def organic_phase(base: str, key: str, users: int, seconds: float) -> dict:
    samples: list[tuple[float | None, float]] = []
    errors: dict[str, int] = {}
    blank: list[str] = []
    deadline = time.monotonic() + seconds
    await asyncio.gather(
        *(user(base, key, deadline, i, samples, errors, blank) for i in range(users))
    )
    return {
        "requests_ok": len(samples),
        "answers_without_text": len(blank),
        "ttft_s": percentiles([f for f, _ in samples if f is not None]),
        "total_s": percentiles([t for _, t in samples]),
        "errors": errors,
    }


def synthetic_rate(events: list[dict], start: float, end: float) -> dict:
    steps = [e for e in events if e.get("kind") != "organic" and start <= e["time"] < end]
    stages = sorted({k for e in steps for k in e if k.startswith("timings/")})
    return {
        "steps": len(steps),
        "steps_per_min": round(len(steps) * 60 / (end - start), 3),
        "step_s_p50": percentiles([e["timings/step"] for e in steps]).get("p50"),
        # where a step's time goes, to see which stage organic load slows
        "stage_s_p50": {
            k.removeprefix("timings/"): percentiles(
                [e[k] for e in steps if isinstance(e.get(k), (int, float))]
            ).get("p50")
            for k in stages
        },
    }


def served_quality(organic: list[dict], synthetic: list[dict], scores: list[float]) -> dict:
    """Who served the users and how well: the share served by a top-3 miner by score,
    the served uids, and the served answers' mean reward (scored exchanges) beside the
    best miner's (by ``scores``, at the phase's start) mean synthetic reward."""
    served = [e for e in organic if e.get("organic/served_uid") is not None]
    ranks = [e["organic/served_rank"] for e in served]
    rewards = [
        e["rewards"][e["uids"].index(e["organic/served_uid"])]
        for e in served
        if e["organic/scored"]
    ]
    best = max(range(len(scores)), key=scores.__getitem__) if scores else None
    best_rewards = [r for e in synthetic for u, r in zip(e["uids"], e["rewards"]) if u == best]
    mean = round(sum(rewards) / len(rewards), 4) if rewards else None
    best_mean = round(sum(best_rewards) / len(best_rewards), 4) if best_rewards else None
    return {
        "served": len(served),
        "top3_share": round(sum(r <= 3 for r in ranks) / len(ranks), 3) if ranks else None,
        "served_rank_counts": {str(r): ranks.count(r) for r in sorted(set(ranks))},
        "served_uid_counts": {
            str(u): c for u, c in sorted(Counter(e["organic/served_uid"] for e in served).items())
        },
        "served_reward_mean": mean,
        "served_rewards_scored": len(rewards),
        "best_miner_by_score": best,
        "best_miner_synthetic_reward_mean": best_mean,
        "served_vs_best_synthetic": (
            round(mean / best_mean, 3) if mean is not None and best_mean else None
        ),
    }


def began(event: dict) -> float:
    """When an organic exchange began: its event is logged once it is scored, which
    lags on a CPU (and the drain at SIGINT scores the rest)."""
    return event["time"] - event["timings/organic_total"]


def organic_events(events: list[dict], start: float, end: float) -> dict:
    """The exchanges that began in the phase, and the service's counters over it."""
    mine = [e for e in events if e.get("kind") == "organic" and start <= began(e) < end]
    statuses: dict[str, int] = {}
    for e in mine:
        for s in e["statuses"]:
            statuses[s] = statuses.get(s, 0) + 1
    # the service's counters, carried by every synthetic step's event: what was served
    # and scored between the phase's first and last step (scoring lags on a CPU)
    steps = [e for e in events if "organic/served" in e and start <= e["time"] < end]
    counters = {}
    if len(steps) >= 2:
        counters = {
            k.removeprefix("organic/"): steps[-1][k] - steps[0][k]
            for k in steps[-1]
            if k.startswith(("organic/served", "organic/scored", "organic/unscored/"))
        }
        counters["scoring_queue_at_end"] = steps[-1]["organic/scoring_queue"]
    return {
        "exchanges_logged": len(mine),
        "scored": sum(bool(e["organic/scored"]) for e in mine),
        "miner_statuses": statuses,
        "service_counters_in_phase": counters,
    }


def cpu_seconds(pid: int) -> dict:
    """CPU seconds (user + system) so far of the validator, of its child processes (the
    local miners), and of this process (the load generator: the openai clients)."""
    tick = os.sysconf("SC_CLK_TCK")

    def stat(p: int) -> tuple[int, float]:
        with open(f"/proc/{p}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[1]), (int(fields[11]) + int(fields[12])) / tick  # ppid, cpu

    children = 0.0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid, cpu = stat(int(entry))
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                children += cpu
    return {
        "validator": stat(pid)[1],
        "miners": children,
        "load_generator": sum(os.times()[:2]),
    }


def replay_check(state: str, returncode: int | None) -> dict:
    """After SIGINT: the scores in state.json against the replay of every event logged
    (prompting/validator/replay.py), from the fresh state the run started with."""
    from prompting.validator.replay import replay_scores

    with open(os.path.join(state, "state.json")) as f:
        saved = json.load(f)["scores"]
    events = read_events(os.path.join(state, "events.jsonl"))
    replayed = replay_scores(events, [0.0] * len(saved))
    organic = [e for e in events if e.get("kind") == "organic"]
    return {
        "returncode": returncode,
        "saved_equals_replay": saved == replayed,
        "max_abs_difference": max((abs(a - b) for a, b in zip(saved, replayed)), default=0.0),
        "events": len(events),
        "organic_events": len(organic),
        "organic_scored": sum(bool(e["organic/scored"]) for e in organic),
        "organic_unscored_by_reason": {
            r: sum(e.get("organic/unscored") == r for e in organic)
            for r in sorted({e["organic/unscored"] for e in organic if "organic/unscored" in e})
        },
    }


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"benchmark_organic.py: the validator exited ({proc.returncode})")
        if predicate():
            return
        time.sleep(0.5)
    raise SystemExit(f"benchmark_organic.py: no {what} within {timeout:g} s")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1 :]
        argv = argv[: argv.index("--")]
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", default="1,8,32", help="comma list of concurrent users")
    parser.add_argument("--phase-s", type=float, default=90.0, help="seconds per phase")
    parser.add_argument("--port", type=int, default=8765, help="the organic endpoint's port")
    parser.add_argument(
        "--strategies", default=None, help="local miners (default: the validator's)"
    )
    parser.add_argument(
        "--latency", default="realistic", help="the local miners' --local.latency ('' none)"
    )
    parser.add_argument(
        "--warmup-steps", type=int, default=10, help="synthetic steps before the phases"
    )
    parser.add_argument("--state", default=None, help="state folder (default: a temp one)")
    parser.add_argument("--out", default=None, help="write the JSON here")
    parser.add_argument("--note", default="", help="a line kept in the JSON (the conditions)")
    args = parser.parse_args(argv)
    users = [int(u) for u in args.users.split(",")]

    from prompting.organic import keys as organic_keys

    state = args.state or tempfile.mkdtemp(prefix="organic-bench-")
    keys_file = os.path.join(state, "organic_keys.json")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        organic_keys.main(["--file", keys_file, "add", "--name", "bench", "--rate", "100000"])
    key = out.getvalue().strip()
    from prompting.config import default_config

    local = default_config().local
    strategies = args.strategies or ",".join(local.strategies[: local.miners])
    miners = strategies.split(",")
    command = [
        sys.executable,
        "neurons/validator.py",
        "--neuron.full_path",
        state,
        "--wandb.off",
        "--neuron.seed",
        "0",
        "--local.miners",
        str(len(miners)),
        "--local.strategies",
        strategies,
        *(["--local.latency", args.latency] if args.latency else []),
        "--organic.enabled",
        "--organic.port",
        str(args.port),
        "--organic.keys_file",
        keys_file,
        "--organic.max_concurrency",
        "32",
        *extra,
    ]
    log_path = os.path.join(state, "validator.log")
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}
    log = open(log_path, "w")
    proc = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
    events_path = os.path.join(state, "events.jsonl")
    base = f"http://127.0.0.1:{args.port}/v1"
    result: dict = {
        "date": datetime.date.today().isoformat(),
        "device": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
        },
        "command": "python scripts/benchmark_organic.py " + " ".join(sys.argv[1:]),
        "validator_command": " ".join(command[1:]),
        "phase_s": args.phase_s,
        "note": args.note,
        "phases": [],
    }
    try:
        import httpx

        def endpoint_up() -> bool:
            try:
                r = httpx.get(f"{base}/models", headers={"Authorization": f"Bearer {key}"})
                return r.status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(
            lambda: (
                sum(e.get("kind") != "organic" for e in read_events(events_path))
                >= args.warmup_steps
            ),
            300 + 120 * args.warmup_steps,
            f"{args.warmup_steps} synthetic steps",
            proc,
        )
        wait_for(endpoint_up, 60, "organic endpoint", proc)
        first = read_events(events_path)[0]
        result["startup_s"] = first.get("startup/first_step")
        plan = [0]
        for u in users:  # each load between two quiet phases: background drift shows
            plan += [u, 0]
        state_file = os.path.join(state, "state.json")
        windows: list[tuple[float, float, list[float]]] = []  # per phase
        for load in plan:
            cpu_before = cpu_seconds(proc.pid)
            with open(state_file) as f:
                scores_at_start = json.load(f)["scores"]
            start = time.time()
            if load:
                phase = asyncio.run(organic_phase(base, key, load, args.phase_s))
            else:
                time.sleep(args.phase_s)
                phase = {}
            end = time.time()
            cpu_after = cpu_seconds(proc.pid)
            cpu = {k: round((cpu_after[k] - cpu_before[k]) / (end - start), 3) for k in cpu_after}
            time.sleep(2.0)  # the last steps of the phase reach the file
            events = read_events(events_path)
            phase = {
                "users": load,
                **phase,
                "synthetic": synthetic_rate(events, start, end),
                "cpu_cores_used": cpu,  # CPU seconds per second, per process group
                "loadavg_1min_at_end": round(os.getloadavg()[0], 2),
            }
            windows.append((start, end, scores_at_start))
            result["phases"].append(phase)
            print(json.dumps(phase), flush=True)
        # each load phase against the mean of the quiet phases before and after it
        phases = result["phases"]
        ratios = {}
        for i, p in enumerate(phases):
            if p["users"]:
                quiet = (
                    phases[i - 1]["synthetic"]["steps_per_min"]
                    + phases[i + 1]["synthetic"]["steps_per_min"]
                ) / 2
                ratios[str(p["users"])] = (
                    round(p["synthetic"]["steps_per_min"] / quiet, 3) if quiet else None
                )
        result["synthetic_rate_vs_quiet_neighbours"] = ratios
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(180)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        if os.path.exists(os.path.join(state, "state.json")):
            result["after_sigint"] = replay_check(state, proc.returncode)
    # Organic events are logged once scored: read them all after the run.
    events = read_events(events_path)
    for phase, (start, end, scores) in zip(result["phases"], windows):
        if not phase["users"]:
            continue
        phase["organic_events"] = organic_events(events, start, end)
        phase["quality"] = served_quality(
            [e for e in events if e.get("kind") == "organic" and start <= began(e) < end],
            [e for e in events if e.get("kind") != "organic" and start <= e["time"] < end],
            scores,
        )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
    print(json.dumps(result, indent=2))
    if not args.state:
        shutil.rmtree(state, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
