"""Organic load on a running local subnet: time to first token and total time at 1, 8
and 32 concurrent users, and the synthetic step rate with and without organic load.

    python scripts/benchmark_organic.py --out benchmarks/results/2026-12-03-cpu-organic.json
    python scripts/benchmark_organic.py --users 1,8 --phase-s 60 -- --neuron.model_id tiny

Starts ``neurons/validator.py`` with the organic endpoint on the local subnet (its own
state folder, an API key issued for the run, the miners ``--local.strategies`` names;
flags after ``--`` go to the validator), waits for its first synthetic step, then runs
phases of ``--phase-s`` seconds each: no organic load, then each user count (every user
sends streamed requests one after the other with the real ``openai`` client), each
load phase between two quiet ones, so that drift in the machine's other load shows.
Per phase: the synthetic steps committed in it (events.jsonl, by their
time) and, for organic phases, each request's time to first content chunk and total
time (p50, p95, max), failures by error, the organic events' statuses, and the CPU
each process group used (the validator, its local miners, this load generator): on a
small machine they share the cores, and the synthetic rate follows what is left.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import io
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUESTIONS = [
    "What does the pass statement do in Python?",
    "Explain what a list comprehension is, with a short example.",
    "How do I read a file line by line in Python?",
    "What is the difference between a tuple and a list?",
    "Summarize what the with statement is for.",
    "When should I use a dictionary instead of a list?",
]


def percentiles(values: list[float]) -> dict:
    from prompting.organic.service import percentile

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


async def user(base: str, key: str, deadline: float, index: int, samples: list, errors: dict):
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
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content and first is None:
                    first = time.perf_counter() - start
            samples.append((first, time.perf_counter() - start))
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
    deadline = time.monotonic() + seconds
    await asyncio.gather(*(user(base, key, deadline, i, samples, errors) for i in range(users)))
    return {
        "requests_ok": len(samples),
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


def organic_events(events: list[dict], start: float, end: float) -> dict:
    mine = [e for e in events if e.get("kind") == "organic" and start <= e["time"] < end + 30]
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
            for k in ("organic/served", "organic/scored", "organic/not_scored_queue_full")
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
        "--strategies", default="keywords,restate,shuffle,random", help="local miners"
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
    miners = args.strategies.split(",")
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
        args.strategies,
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
            lambda: any(e.get("kind") != "organic" for e in read_events(events_path)),
            900,
            "synthetic step",
            proc,
        )
        wait_for(endpoint_up, 60, "organic endpoint", proc)
        first = read_events(events_path)[0]
        result["startup_s"] = first.get("startup/first_step")
        plan = [0]
        for u in users:  # each load between two quiet phases: background drift shows
            plan += [u, 0]
        for load in plan:
            cpu_before = cpu_seconds(proc.pid)
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
            if load:
                phase["organic_events"] = organic_events(events, start, end)
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
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
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
