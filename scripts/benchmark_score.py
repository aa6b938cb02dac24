"""Time ``LLM.score`` on a validator-sized step and compare backends' numbers.

    python scripts/benchmark_score.py --backends hf --device cpu --threads 1,0 \
        --out benchmarks/results/DATE-cpu-score-smollm2.json
    python scripts/benchmark_score.py --backends hf,vllm --device cuda \
        --hf_dtypes float32,float16 --out benchmarks/results/DATE-h100-score-hf-vs-vllm.json

A step of the fluency judge scores every miner's answer after the one challenge: here
one chat prompt of about ``--prompt_tokens`` tokens (a question about a passage from the
offline corpus) and ``--answers`` answers of about ``--answer_tokens`` tokens (text from
other passages, cut by the model's tokenizer). Each backend is loaded once, warmed up
with one call, then timed over ``--repeats`` calls (seconds per step: min, median).

Numbers: the first backend listed (hf, the first of ``--hf_dtypes``) is the reference;
every other one is compared with it by the mean log-probability per answer (max and
mean absolute difference) and per token (max). ``vllm`` runs twice: with the shared
prompt read from its prefix cache (the backend's default) and without.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time

from prompting.atomic import write_json  # the standard library only


def step_inputs(
    tokenizer, prompt_tokens: int, answers: int, answer_tokens: int, seed: int = 0
) -> tuple[list[dict], list[str]]:
    """One challenge (chat messages) of about ``prompt_tokens`` tokens once rendered, and
    ``answers`` continuations of ``answer_tokens`` tokens each, from the offline corpus."""
    import random

    from prompting.datasets.offline import dataset
    from prompting.llms.base import render_chat

    docs = [d.text for d in dataset("pydoc").documents]
    rng = random.Random(seed)
    rng.shuffle(docs)

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False).input_ids)

    def challenge(passage: str) -> list[dict]:
        return [
            {"role": "system", "content": "Answer the question about the passage."},
            {"role": "user", "content": f"Passage: {passage}\n\nQuestion: what does it describe?"},
        ]

    overhead = count(render_chat(tokenizer, challenge("")))
    passage = ""
    while count(passage) < prompt_tokens:
        passage = f"{passage} {docs.pop()}".strip()
    ids = tokenizer(passage, add_special_tokens=False).input_ids[: prompt_tokens - overhead]
    prompt = challenge(tokenizer.decode(ids))
    texts = []
    while len(texts) < answers:
        text = docs.pop()
        ids = tokenizer(text, add_special_tokens=False).input_ids
        if len(ids) >= answer_tokens:
            texts.append(tokenizer.decode(ids[:answer_tokens]).strip())
    return prompt, texts


def timed(llm, prompts: list, answers: list[str], repeats: int) -> dict:
    """Warm-up call, then ``repeats`` timed calls; the last call's Scored kept."""
    llm.score(prompts, answers)
    seconds, cpu, scored = [], [], None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        scored = llm.score(prompts, answers)
        seconds.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return {
        "seconds": [round(s, 4) for s in seconds],
        "seconds_min": round(min(seconds), 4),
        "seconds_median": round(statistics.median(seconds), 4),
        # CPU time of this process (all its threads): on a shared machine the wall time
        # depends on the neighbours, this much less (one thread: the seconds it would
        # take on an idle core)
        "cpu_seconds": [round(c, 4) for c in cpu],
        "scored": scored,
    }


def compare(reference: list, other: list) -> dict:
    """Differences of ``other``'s Scored from ``reference``'s, per answer and per token."""
    means = [abs(a.mean - b.mean) for a, b in zip(reference, other)]
    tokens = [abs(x - y) for a, b in zip(reference, other) for x, y in zip(a.logprobs, b.logprobs)]
    return {
        "same_token_counts": [a.tokens for a in reference] == [b.tokens for b in other],
        "mean_logprob_abs_diff_max": round(max(means), 6),
        "mean_logprob_abs_diff_mean": round(statistics.fmean(means), 6),
        "token_logprob_abs_diff_max": round(max(tokens), 6),
    }


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(0)
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    return f"{model}, {os.cpu_count()} CPUs"


def versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name in ("torch", "transformers", "vllm"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2", help="model id or folder")
    parser.add_argument("--backends", default="hf", help="comma list of hf, vllm")
    parser.add_argument("--device", default="cpu", help="hf: cpu or cuda")
    parser.add_argument("--hf_dtypes", default="float32", help="hf: comma list of dtypes")
    parser.add_argument(
        "--threads", default="0", help="hf on CPU: comma list of torch threads (0: default)"
    )
    parser.add_argument("--prompt_tokens", type=int, default=500)
    parser.add_argument("--answers", type=int, default=16)
    parser.add_argument("--answer_tokens", type=int, default=100)
    parser.add_argument(
        "--duplicates",
        type=int,
        default=0,
        help="of the answers, this many repeat earlier ones (copying miners)",
    )
    parser.add_argument(
        "--inputs_from",
        default=None,
        help="a result JSON whose prompt and answers to score (the same step on two machines)",
    )
    parser.add_argument(
        "--compare_with",
        default=None,
        help="a result JSON (another machine's) whose runs join the comparison",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--budget_gb", type=float, default=10.0, help="vllm's budget")
    parser.add_argument(
        "--enforce_eager", action="store_true", help="vllm: no compile, no CUDA graphs"
    )
    parser.add_argument("--state_dir", default=os.path.expanduser("~/.prompting"))
    parser.add_argument("--out", default=None, help="JSON file to write")
    args = parser.parse_args(argv)

    import torch

    backends = args.backends.split(",")
    result: dict = {
        "date": datetime.date.today().isoformat(),
        "device": device_name(args.device if "hf" in backends else "cuda"),
        "command": "python " + " ".join(sys.argv),
        "versions": versions(),
        "model": args.model,
        "step": {
            "prompt_tokens": args.prompt_tokens,
            "answers": args.answers,
            "answer_tokens": args.answer_tokens,
        },
        "runs": {},
    }
    if hasattr(os, "getloadavg"):
        result["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    state: dict = {"inputs": None}
    scored: dict[str, list] = {}

    def write() -> None:
        """The result so far: a run cut off by a time limit still leaves its numbers."""
        names = list(scored)
        if names:
            result["comparison_to"] = names[0]
            result["comparison"] = {n: compare(scored[names[0]], scored[n]) for n in names[1:]}
        if state["inputs"] is not None:
            result["prompt"], result["answers_text"] = state["inputs"]
        if args.out:
            write_json(args.out, result, indent=1)

    def inputs_for(llm) -> tuple[list, list[str]]:
        """The step's prompts and answers, made once with the first backend's tokenizer."""
        if state["inputs"] is None and args.inputs_from:
            with open(args.inputs_from) as f:
                given = json.load(f)
            state["inputs"] = given["prompt"], given["answers_text"]
        if state["inputs"] is None:
            prompt, answers = step_inputs(
                llm.tokenizer,
                args.prompt_tokens,
                args.answers - args.duplicates,
                args.answer_tokens,
            )
            state["inputs"] = prompt, answers + answers[: args.duplicates]
        prompt, answers = state["inputs"]
        return [prompt] * len(answers), answers

    def record(name: str, run: dict) -> None:
        scored[name] = run.pop("scored")
        run["answer_tokens"] = [s.tokens for s in scored[name]]
        run["mean_logprobs"] = [round(s.mean, 5) for s in scored[name]]
        run["logprobs"] = [[round(x, 5) for x in s.logprobs] for s in scored[name]]
        result["runs"][name] = run
        shown = {k: v for k, v in run.items() if "seconds" in k and k != "load_seconds"}
        print(name, shown, flush=True)
        write()

    def run_hf(dtype: str) -> None:
        from prompting.llms.hf import HFLLM

        start = time.perf_counter()
        llm = HFLLM(args.model, device=args.device, dtype=dtype, state_dir=args.state_dir)
        load = time.perf_counter() - start
        prompts, answers = inputs_for(llm)
        threads = [int(t) for t in args.threads.split(",")] if llm.device == "cpu" else [0]
        default_threads = torch.get_num_threads()
        try:
            for n in threads:
                torch.set_num_threads(n or default_threads)
                run = timed(llm, prompts, answers, args.repeats)
                run.update(load_seconds=round(load, 2), torch_threads=torch.get_num_threads())
                suffix = f"-{n}thread" if llm.device == "cpu" and len(threads) > 1 else ""
                record(f"hf-{dtype}{suffix}".replace("-0thread", "-defaultthreads"), run)
        finally:
            torch.set_num_threads(default_threads)
            llm.close()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def run_vllm() -> None:
        from prompting.llms.vllm import VLLM

        start = time.perf_counter()
        llm = VLLM(
            args.model,
            budget_gb=args.budget_gb,
            enforce_eager=args.enforce_eager,
            state_dir=args.state_dir,
        )
        load = time.perf_counter() - start
        prompts, answers = inputs_for(llm)
        try:
            for reuse in (True, False):
                llm.reuse_prompt_cache = reuse
                run = timed(llm, prompts, answers, args.repeats)
                run.update(
                    load_seconds=round(load, 2),
                    reuse_prompt_cache=reuse,
                    enforce_eager=args.enforce_eager,
                )
                record("vllm" + ("" if reuse else "-no-prefix-reuse"), run)
        finally:
            llm.close()

    jobs = []
    for backend in backends:
        if backend == "hf":
            jobs += [(f"hf-{dtype}", run_hf, (dtype,)) for dtype in args.hf_dtypes.split(",")]
        elif backend == "vllm":
            jobs.append(("vllm", run_vllm, ()))
        else:
            parser.error(f"unknown backend {backend!r}")
    for name, job, job_args in jobs:
        try:
            job(*job_args)
        except Exception as exc:  # noqa: BLE001 - one backend failing leaves the others' numbers
            import traceback

            result.setdefault("errors", {})[name] = traceback.format_exc()[-2000:]
            print(f"{name} failed: {exc!r}", flush=True)
            write()
    if args.compare_with:
        from prompting.llms.base import Scored

        with open(args.compare_with) as f:
            other = json.load(f)
        for name, run in other["runs"].items():
            label = f"{name} ({other['device']})"
            scored[label] = [Scored(lp) for lp in run["logprobs"]]
            result["runs"][label] = {k: v for k, v in run.items() if k != "logprobs"}
        result["compared_with"] = {"file": args.compare_with, "command": other["command"]}
    write()
    print(json.dumps(result.get("comparison", {}), indent=1))
    return result


if __name__ == "__main__":
    main()
