"""CPU benchmark of the validator itself: everything but the LLM.

    python scripts/benchmark_validator.py --miners 64 --steps 200 --out benchmarks/results/x.json
    python scripts/benchmark_validator.py --loop --miners 64 --latency realistic --steps 600 \
        --llm tiny --pyspy 20 --out benchmarks/results/x.json

A farm of N real miner servers (one process, one event loop, each server verifying
btauth/1 signatures on its own loopback port) answers with a fixed passage sentence, at
once or after ``--latency`` (``prompting/miner/latency.py``); the validator runs in this
process on the local chain, through its real client, reward stack and state saving.

Default mode, S steps one after another: per-stage timings, step overhead (step minus
challenge generation minus reward-model compute), reward stack time for N completions,
`--help` time, and RSS / open file descriptors over the run.

``--loop``: the validator's own loop (steps in flight as ``--neuron.forwards adaptive``
keeps them, the per-miner rate bound, events in the state folder) for S steps, with the
model thread generating (``--llm tiny``: the project's random-weight model writes every
challenge, as a real model does on a GPU) or not (``none``). Reported: the run's summary
(``scripts/summarize_run.py``: rate, steps in flight, per-miner rate, the model thread's
busy share, the bound it hit), CPU seconds per thread, and with ``--pyspy SECONDS`` who
held the GIL (py-spy ``--gil``, sampled mid-run): the loop's share beside the model
thread's, and what each spent it on.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


HOSTILE = ("good", "garbage", "oversize", "stall", "error", "dead")


def hostile_app(kind: str):
    """An ASGI miner that misbehaves in one way (see HOSTILE)."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    async def handler(request):
        await request.body()
        if kind == "garbage":
            return Response(b"\xff\xfe{not json", media_type="application/json")
        if kind == "oversize":

            async def chunks():
                for _ in range(64):
                    yield b"x" * 65536

            return StreamingResponse(chunks(), media_type="application/json")
        if kind == "stall":
            await asyncio.sleep(3600)
        if kind == "error":
            return JSONResponse({"error": "boom"}, status_code=500)
        return JSONResponse({"completion": ["wrong", "shape"]})

    return Starlette(routes=[Route("/v1/prompt", handler, methods=["POST"])])


def farm(
    wallet_dir: str,
    n: int,
    validator_hotkey: str,
    ports_file: str,
    hostile: bool = False,
    latency: str | None = None,
    slots: int = 8,
) -> None:
    """Child process: n miner servers answering instantly or after ``latency`` with
    ``slots`` answer slots each (or, with hostile, one in six each of: good, garbage
    bytes, 4 MB body, stalling, HTTP 500, and a closed port)."""
    from prompting.miner.latency import delayed, parse
    from prompting.network.auth import Authorizer, CallerPolicy, load_or_create_wallet
    from prompting.network.server import bind, create_app, make_server

    async def instant(req) -> str:
        text = req.messages[-1].content
        return text[text.find("Passage:") + 9 :][:300] if "Passage:" in text else "42"

    async def main():
        servers, rows = [], []
        for i in range(n):
            w = load_or_create_wallet(f"m{i}", "default", wallet_dir)
            kind = HOSTILE[i % len(HOSTILE)] if hostile else "good"
            sock = bind("127.0.0.1", 0)
            port = sock.getsockname()[1]
            row = (w.hotkey.ss58_address, w.coldkeypub.ss58_address, port)
            if kind == "dead":
                sock.close()  # registered, but nothing listens: connection refused
                rows.append(row)
                continue
            answer = delayed(instant, parse(latency), seed=i) if latency else instant
            app = (
                hostile_app(kind)
                if kind != "good"
                else create_app(
                    answer,
                    w,
                    Authorizer(CallerPolicy(0, frozenset({validator_hotkey})), None),
                    max_concurrency=slots,
                    rate_limit=10**6,
                )
            )
            server, serving = make_server(app, sock)
            servers.append(asyncio.ensure_future(serving))
            rows.append(row)
        with open(ports_file, "w") as f:
            json.dump(rows, f)
        await asyncio.gather(*servers)

    asyncio.run(main())


def trough_growth(rss: list[int]) -> float | None:
    """Growth of the lowest RSS in the last quarter of the run over the lowest in the
    second eighth: a leak lifts the troughs, Python's periodic full gc pass does not."""
    if len(rss) < 16:
        return None
    early = min(rss[len(rss) // 8 : len(rss) // 4])
    return (min(rss[-len(rss) // 4 :]) - early) / early


def rss_and_fds() -> tuple[int, int]:
    import psutil

    p = psutil.Process()
    return p.memory_info().rss, p.num_fds()


def stack_time(n: int, repeats: int = 5) -> dict:
    import random

    from prompting.rewards.relevance import shared_embedder
    from prompting.rewards.stack import RewardStack
    from prompting.tasks import TASKS

    stack = RewardStack(shared_embedder)
    out = {}
    for name in ("qa", "summarization"):
        task = TASKS[name]()
        challenge = task.finish(task.draft(0))
        words = challenge.context.split()
        rng = random.Random(0)
        completions = [" ".join(rng.sample(words, min(len(words), 40))) for _ in range(n)]
        stack.score(challenge, completions)  # warm
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            stack.score(challenge, completions)
            times.append(time.perf_counter() - t)
        out[name] = {"median_s": statistics.median(times), "min_s": min(times)}
    return out


def help_time() -> float:
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, "neurons/validator.py", "--help"],
        cwd=REPO,
        capture_output=True,
        check=True,
    )
    return time.perf_counter() - t


def start_farm(args, slots: int = 8):
    """The farm process and a local chain that lists its miners: (state folder, the
    validator's wallet, chain, farm process)."""
    from prompting.chain.local import LocalChain
    from prompting.network.auth import load_or_create_wallet

    state = tempfile.mkdtemp(prefix="bench-validator-")
    wallet = load_or_create_wallet("validator", "default", os.path.join(state, "wallets"))
    ports_file = os.path.join(state, "ports.json")
    proc = multiprocessing.get_context("spawn").Process(
        target=farm,
        args=(
            os.path.join(state, "wallets"),
            args.miners,
            wallet.hotkey.ss58_address,
            ports_file,
            args.hostile,
            args.latency,
            slots,
        ),
        daemon=True,
    )
    proc.start()
    while not os.path.exists(ports_file):
        time.sleep(0.1)
    chain = LocalChain(os.path.join(state, "local_chain.json"), hotkey=wallet.hotkey.ss58_address)
    chain.register(wallet.hotkey.ss58_address, "c", stake=1e4, validator_permit=True)
    for hotkey, coldkey, port in json.load(open(ports_file)):
        chain.register(hotkey, coldkey, endpoint=f"127.0.0.1:{port}")
    return state, wallet, chain, proc


def thread_cpu_seconds() -> dict[str, float]:
    """CPU seconds (user + system) of each live thread of this process, by name."""
    import threading

    import psutil

    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, float] = collections.defaultdict(float)
    for t in psutil.Process().threads():
        out[names.get(t.id, "other (native)")] += t.user_time + t.system_time
    return dict(out)


def loop_benchmark(args) -> None:
    """--loop: the validator's own loop against the farm (see the module doc)."""
    import threading

    from prompting import compat
    from prompting.config import default_config
    from prompting.llms.embedded import resolve_model
    from prompting.miner.latency import answer_slots
    from prompting.rewards.relevance import shared_embedder
    from prompting.rewards.stack import RewardStack
    from prompting.telemetry import Telemetry
    from prompting.validator.loop import Validator

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from summarize_run import summarize

    config = default_config("validator")
    n = config.neuron
    n.timeout = n.timeout if args.timeout is None else args.timeout
    state, wallet, chain, proc = start_farm(args, answer_slots(n.miner_query_rate, n.timeout))
    n.full_path, n.seed, n.max_steps = state, 0, args.steps
    n.max_tokens = args.max_tokens
    n.task_weights = {t: 1.0 for t in args.tasks.split(",")}
    n.num_concurrent_forwards = args.room  # the room of a backend that names no batch
    llm = None
    if args.llm == "tiny":  # by its folder: the validator has it write every challenge
        from prompting.llms import load_llm

        n.model_id = resolve_model("tiny", os.path.expanduser("~/.prompting"))
        llm = load_llm(config)
    log_file = open(os.path.join(state, "validator.log"), "w")
    telemetry = Telemetry(state, None, stream=log_file)
    validator = Validator(config, wallet, chain, llm, RewardStack(shared_embedder), telemetry)
    validator.rewards.embedder  # noqa: B018 - loaded before the loop, as the validator does
    pyspy_raw = os.path.join(state, "pyspy-gil-raw.txt")
    spy: dict = {}

    def profile_mid_run() -> None:  # once a quarter of the steps is in: the loop is warm
        while validator.state.step < args.steps // 4 and not spy.get("stop"):
            time.sleep(0.2)
        exe = os.path.join(os.path.dirname(sys.executable), "py-spy")
        cmd = [exe, "record", "--pid", str(os.getpid()), "--threads", "--gil", "-f", "raw"]
        cmd += ["-r", str(args.pyspy_rate), "-d", str(args.pyspy), "-o", pyspy_raw]
        spy["at_step"] = validator.state.step
        spy["result"] = subprocess.run(cmd, capture_output=True, text=True).stderr[-300:]

    profiler = threading.Thread(target=profile_mid_run, daemon=True) if args.pyspy else None
    if profiler is not None:
        profiler.start()
    loop_kind: dict = {}

    async def run() -> None:  # on the validator's own loop (uvloop's where installed)
        loop_kind["event_loop"] = type(asyncio.get_running_loop()).__module__
        await validator.run()

    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # the farm is not reaped yet
    cpu_before, wall = thread_cpu_seconds(), time.perf_counter()
    compat.run(run())
    wall = time.perf_counter() - wall
    cpu = {k: v - cpu_before.get(k, 0.0) for k, v in thread_cpu_seconds().items()}
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)  # the query process, if any
    cpu["children (query process, py-spy)"] = (reaped.ru_utime + reaped.ru_stime) - (
        children.ru_utime + children.ru_stime
    )
    spy["stop"] = True
    if profiler is not None:
        profiler.join()
    proc.kill()
    telemetry.close()
    log_file.close()
    summary = summarize(
        state,
        os.path.join(state, "validator.log"),
        pyspy_path=pyspy_raw if args.pyspy else None,
        pyspy_samples=int(args.pyspy * args.pyspy_rate) or None,
        rate_bound=n.miner_query_rate,
        in_flight_cap=n.max_concurrent_forwards,
    )
    summary.pop("generate_batch_size", None)
    queries = sum(summary["statuses"].values())
    report = {
        "date": datetime.date.today().isoformat(),
        "device": f"CPU, {os.cpu_count()} cores ({platform.processor() or platform.machine()})",
        "command": "python " + " ".join(sys.argv),
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "miners": args.miners,
        "latency": args.latency or "instant",
        "llm": args.llm,
        "tasks": n.task_weights,
        "timeout_s": n.timeout,
        "client": type(validator.client).__name__,  # QueryProcess: queries in a child
        **loop_kind,
        "wall_s": wall,
        "cpu_s_by_thread": cpu,
        "main_thread_cpu_ms_per_query": 1000 * cpu.get("MainThread", 0.0) / max(queries, 1),
        "pyspy": {k: v for k, v in spy.items() if k != "stop"},
        "summary": summary,
    }
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
    brief = {k: summary.get(k) for k in ("steps", "scored_challenges_per_gpu_hour", "limit")}
    print(json.dumps({**brief, "cpu_s_by_thread": cpu, "wall_s": wall}, indent=1))
    if "gil_split" in summary:
        for name, row in summary["gil_split"]["threads"].items():
            print(name, round(row.get("share_of_wall", 0), 3), row["areas_share_of_gil"])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--miners", type=int, default=64)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--out", required=True)
    parser.add_argument(
        "--hostile", action="store_true", help="soak mode: five in six miners misbehave"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        help="miner timeout, seconds (default 5; --loop: the validator's own, 10)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="cProfile the validator's steps; top functions go in the JSON",
    )
    parser.add_argument("--loop", action="store_true", help="the validator's own loop")
    parser.add_argument("--latency", help="the miners' answer latency, e.g. realistic")
    parser.add_argument("--llm", choices=("none", "tiny"), default="none", help="--loop")
    parser.add_argument("--max_tokens", type=int, default=64, help="--loop --llm tiny")
    parser.add_argument(
        "--room",
        type=int,
        default=128,
        help="--loop: drafts generated together (vLLM's batch on a GPU at 24 GB: 128)",
    )
    parser.add_argument(
        "--tasks",
        default="qa,summarization",
        help="tasks, equally weighted (--loop: math alone keeps the model thread out of the "
        "way, so the loop's own cost sets the rate)",
    )
    parser.add_argument(
        "--pyspy", type=int, default=0, help="--loop: seconds of py-spy --gil, mid-run"
    )
    parser.add_argument("--pyspy_rate", type=int, default=50, help="py-spy samples a second")
    args = parser.parse_args(argv)
    if args.loop:
        return loop_benchmark(args)
    args.timeout = 5.0 if args.timeout is None else args.timeout

    from prompting.config import default_config
    from prompting.rewards.relevance import shared_embedder
    from prompting.rewards.stack import RewardStack
    from prompting.validator.loop import Validator

    state, wallet, chain, proc = start_farm(args)
    config = default_config("validator")
    n = config.neuron
    n.full_path, n.sample_size, n.seed, n.timeout = state, args.miners, 0, args.timeout
    n.task_weights = {t: 1.0 for t in args.tasks.split(",")}
    validator = Validator(config, wallet, chain, None, RewardStack(shared_embedder))
    validator.rewards.embedder  # noqa: B018 - load outside the timed steps

    samples, memory = [], []
    statuses: collections.Counter = collections.Counter()

    async def run():
        for i in range(args.steps):
            result = await validator.step()
            e = result.event
            statuses.update(e["statuses"])
            reward_model = sum(
                v
                for k, v in e.items()
                if k.startswith(("timings/reward/", "timings/penalty/", "timings/embed"))
            )
            samples.append(
                {
                    "step": e["timings/step"],
                    "query": e["timings/query"],
                    "reward": e["timings/reward"],
                    "reward_models": reward_model,
                    "generate": e["timings/generate_challenge"],
                    "save": e["timings/save"],
                    "ok": e["responses/ok"],
                    "overhead": e["timings/step"] - e["timings/generate_challenge"] - reward_model,
                }
            )
            if i % 10 == 0 or i == args.steps - 1:
                memory.append((i, *rss_and_fds()))
        await validator.client.aclose()

    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    asyncio.run(run())
    profile_text = None
    if profiler is not None:
        import io
        import pstats

        profiler.disable()
        buffer = io.StringIO()
        pstats.Stats(profiler, stream=buffer).sort_stats("tottime").print_stats(25)
        profile_text = buffer.getvalue().splitlines()
    proc.kill()  # uvicorn would wait for the stalling hostile handlers on SIGTERM
    warm = samples[5:] or samples

    def stat(key):
        values = sorted(s[key] for s in warm)
        return {"median": statistics.median(values), "p95": values[int(0.95 * (len(values) - 1))]}

    first_rss, last_rss = memory[1][1] if len(memory) > 1 else memory[0][1], memory[-1][1]
    report = {
        "date": datetime.date.today().isoformat(),
        "command": "python " + " ".join(sys.argv),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "miners": args.miners,
        "steps": args.steps,
        "all_answered": all(s["ok"] == args.miners for s in samples),
        "hostile": args.hostile,
        "timeout_s": args.timeout,
        "statuses": dict(statuses),
        "max_step_s": max(s["step"] for s in samples),
        "step_overhead_s": stat("overhead"),
        "query_s": stat("query"),
        "step_s": stat("step"),
        "reward_stack_s": stat("reward"),
        "save_s": stat("save"),
        "reward_stack_64_completions": stack_time(args.miners),
        "help_s": help_time(),
        "rss_bytes": [m[1] for m in memory],
        "open_fds": [m[2] for m in memory],
        "rss_growth_after_warmup": (last_rss - first_rss) / first_rss,
        "rss_trough_growth": trough_growth([m[1] for m in memory]),
        "profile_tottime_top25": profile_text,
        "targets": {
            "step_overhead_s": 0.150,
            "reward_stack_64_s": 1.0,
            "help_s": 2.0,
            "rss_growth": 0.10,
        },
    }
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
    print(
        json.dumps(
            {k: v for k, v in report.items() if k not in ("rss_bytes", "open_fds")}, indent=1
        )
    )


if __name__ == "__main__":
    main()
