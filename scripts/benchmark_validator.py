"""CPU benchmark of the validator itself: everything but the LLM.

    python scripts/benchmark_validator.py --miners 64 --steps 200 --out benchmarks/results/x.json

A farm of N real miner servers (one process, one event loop, each server verifying
btauth/1 signatures on its own loopback port) answers at once with a fixed passage
sentence; the validator runs in this process on the local chain for S steps, through
its real client, reward stack and state saving. Reported: per-stage timings, step
overhead (step minus challenge generation minus reward-model compute), reward stack
time for N completions, `--help` time, and RSS / open file descriptors over the run.
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
    wallet_dir: str, n: int, validator_hotkey: str, ports_file: str, hostile: bool = False
) -> None:
    """Child process: n miner servers answering instantly (or, with hostile, one in six
    each of: good, garbage bytes, 4 MB body, stalling, HTTP 500, and a closed port)."""
    from prompting.network.auth import Authorizer, CallerPolicy, load_or_create_wallet
    from prompting.network.server import bind, create_app, make_server

    async def answer(req) -> str:
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
            app = (
                hostile_app(kind)
                if kind != "good"
                else create_app(
                    answer,
                    w,
                    Authorizer(CallerPolicy(0, frozenset({validator_hotkey})), None),
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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--miners", type=int, default=64)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--out", required=True)
    parser.add_argument(
        "--hostile", action="store_true", help="soak mode: five in six miners misbehave"
    )
    parser.add_argument("--timeout", type=float, default=5.0, help="miner timeout, seconds")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="cProfile the validator's steps; top functions go in the JSON",
    )
    args = parser.parse_args(argv)

    from prompting.chain.local import LocalChain
    from prompting.config import default_config
    from prompting.network.auth import load_or_create_wallet
    from prompting.rewards.relevance import shared_embedder
    from prompting.rewards.stack import RewardStack
    from prompting.validator.loop import Validator

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

    config = default_config("validator")
    n = config.neuron
    n.full_path, n.sample_size, n.seed, n.timeout = state, args.miners, 0, args.timeout
    n.task_weights = {"qa": 0.5, "summarization": 0.5}
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
