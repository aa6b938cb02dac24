"""Benchmark generation backends on the project's own qa challenges.

    python scripts/benchmark_backends.py --model /root/zephyr-rand \
        --sections vllm_raw,vllm,hf,hf_compile --out benchmarks/results/run.json

Each section runs in its own subprocess (a clean GPU for each engine) and reports:
load seconds, seconds per challenge at batch 1 (mean/p50/p95, sequential, as the
ancestor's release notes measured), generated tokens/s for all challenges in one
batch, and peak GPU memory (device-wide, sampled every 20 ms, so it includes vLLM's
engine process). ``vllm_raw`` calls ``vllm.LLM`` directly as the reference for our
``vllm`` backend. Generation length is fixed (ignore_eos) so runs compare.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SECTIONS = ("vllm_raw", "vllm", "hf", "hf_compile")


def qa_prompts(
    n: int, model_path: str, target_tokens: int = 350, seed: int = 0
) -> list[list[dict]]:
    """The prompt the validator's qa task sends its own model (the question writer), with
    passages from the offline corpus joined and cut so each prompt has ~target_tokens."""
    import random

    from transformers import AutoTokenizer

    from prompting.datasets.offline import dataset
    from prompting.tasks.base import user
    from prompting.tasks.templates import QUESTION_WRITER

    tok = AutoTokenizer.from_pretrained(model_path)
    docs, rng = dataset("pydoc").documents, random.Random(seed)

    def length(passage: str) -> int:
        text = tok.apply_chat_template(
            user(QUESTION_WRITER.format(passage=passage)),
            tokenize=False,
            add_generation_prompt=True,
        )
        return len(tok(text, add_special_tokens=False).input_ids)

    overhead = length("")
    prompts = []
    for _ in range(n):
        passage = ""
        while length(passage) < target_tokens:
            passage = f"{passage} {rng.choice(docs).text}".strip()
        ids = tok(passage, add_special_tokens=False).input_ids[: target_tokens - overhead]
        prompts.append(user(QUESTION_WRITER.format(passage=tok.decode(ids))))
    return prompts


class PeakMemory:
    """Device-wide used GPU memory above the baseline, sampled in a thread."""

    def __init__(self, interval: float = 0.02):
        import torch

        self.torch, self.interval = torch, interval
        self.peak, self._stop = 0, threading.Event()
        if not torch.cuda.is_available():  # CPU dry run: nothing to sample
            self._thread = None
            return
        free, total = torch.cuda.mem_get_info(0)
        self.baseline, self.total = total - free, total
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            free, total = self.torch.cuda.mem_get_info(0)
            self.peak = max(self.peak, total - free - self.baseline)
            time.sleep(self.interval)

    def stop(self) -> int:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return self.peak


def summarize(seconds: list[float]) -> dict:
    ordered = sorted(seconds)
    return {
        "mean": statistics.fmean(ordered),
        "p50": statistics.median(ordered),
        "p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
        "n": len(ordered),
    }


def run_section(name: str, args) -> dict:
    from prompting.config import default_config
    from prompting.llms.base import Sampling

    prompts = qa_prompts(args.challenges, args.model, args.prompt_tokens)
    sampling = Sampling(max_tokens=args.max_tokens, temperature=0.0, ignore_eos=True)
    meter = PeakMemory()
    start = time.perf_counter()
    result: dict = {"section": name, "gpus": args.gpus, "budget_gb": args.budget_gb}
    if name == "vllm_raw":
        from vllm import LLM, SamplingParams

        from prompting.llms import memory

        _, total = meter.torch.cuda.mem_get_info(0)
        engine = LLM(
            model=args.model,
            gpu_memory_utilization=memory.utilization(args.budget_gb, total),
            max_model_len=8192,
            disable_log_stats=True,
            seed=0,
            tensor_parallel_size=args.gpus,
        )
        tok = engine.get_tokenizer()
        texts = [
            tok.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts
        ]
        params = SamplingParams(max_tokens=args.max_tokens, temperature=0.0, ignore_eos=True)

        def gen(batch):
            outs = engine.generate(batch, params, use_tqdm=False)
            return [len(o.outputs[0].token_ids) for o in outs], [
                len(o.prompt_token_ids) for o in outs
            ]
    else:
        from prompting.llms import load_llm

        config = default_config("benchmark")
        n = config.neuron
        n.model_id, n.llm_max_allowed_memory_in_gb = args.model, args.budget_gb
        n.llm_backend = "vllm" if name == "vllm" else "hf"
        n.hf_compile = name == "hf_compile"
        n.gpus = args.gpus
        n.full_path = "/tmp/prompting-bench"
        engine = load_llm(config)
        texts = prompts
        result["stats"] = engine.stats.to_dict()

        def gen(batch):
            outs = engine.generate(batch, sampling)
            return [o.tokens for o in outs], [o.prompt_tokens for o in outs]

    result["load_seconds"] = time.perf_counter() - start
    if name == "hf_compile":
        start = time.perf_counter()
        engine.warmup(batch_sizes=(1,), max_tokens=args.max_tokens)
        result["warmup_seconds"] = time.perf_counter() - start
    gen(texts[:1])  # untimed warm-up (CUDA graphs, allocator)
    per, prompt_tokens = [], []
    for text in texts[: args.batch1]:
        t = time.perf_counter()
        tokens, ptoks = gen([text])
        per.append(time.perf_counter() - t)
        prompt_tokens += ptoks
    result["batch1_seconds"] = summarize(per)
    result["batch1_tokens"] = tokens[0]
    result["prompt_tokens_mean"] = statistics.fmean(prompt_tokens)
    if not args.no_batched and name != "hf_compile":
        t = time.perf_counter()
        tokens, _ = gen(texts)
        took = time.perf_counter() - t
        result["batched"] = {
            "prompts": len(texts),
            "seconds": took,
            "generated_tokens": sum(tokens),
            "tokens_per_second": sum(tokens) / took,
            "seconds_per_challenge": took / len(texts),
        }
    result["peak_gpu_bytes"] = meter.stop()
    result["budget_bytes"] = int(args.budget_gb * 1e9)
    return result


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}/"))
        elif isinstance(value, (int, float)):
            out[f"{prefix}{key}"] = value
    return out


def environment() -> dict:
    import torch

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "gpus": torch.cuda.device_count(),
    }
    for pkg in ("vllm", "transformers"):
        try:
            info[pkg] = __import__(pkg).__version__
        except ImportError:
            info[pkg] = None
    return info


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="model path or id")
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--challenges", type=int, default=100)
    parser.add_argument("--batch1", type=int, default=10, help="challenges timed at batch 1")
    parser.add_argument("--max_tokens", type=int, default=256)
    parser.add_argument("--prompt_tokens", type=int, default=350)
    parser.add_argument("--gpus", type=int, default=1, help="tensor parallel size (vllm)")
    parser.add_argument("--budget_gb", type=float, default=24.0)
    parser.add_argument("--no_batched", action="store_true")
    parser.add_argument("--out", required=True)
    parser.add_argument(
        "--wandb",
        action="store_true",
        help="also log each section to wandb (WANDB_MODE=offline works)",
    )
    parser.add_argument("--section", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.section:  # child process: one section, JSON on the last stdout line
        print("RESULT " + json.dumps(run_section(args.section, args)), flush=True)
        return
    report = {
        "date": datetime.date.today().isoformat(),
        "command": " ".join(sys.argv),
        "environment": environment(),
        "model": args.model,
        "note": "random weights of the named architecture; speed does not depend on weight values",
        "results": [],
    }
    run = None
    if args.wandb:
        import wandb

        run = wandb.init(project="prompting-benchmarks", config=report, job_type="backends")
    for name in args.sections.split(","):
        cmd = [sys.executable, __file__, *(argv or sys.argv[1:]), "--section", name]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if lines:
            report["results"].append(json.loads(lines[-1][7:]))
        else:
            report["results"].append({"section": name, "error": proc.stderr[-3000:]})
        print(json.dumps(report["results"][-1])[:1500], flush=True)
        if run is not None:
            run.log({f"{name}/{k}": v for k, v in _flatten(report["results"][-1]).items()})
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)
    if run is not None:
        run.finish()


if __name__ == "__main__":
    main()
