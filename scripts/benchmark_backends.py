"""Benchmark generation backends on the project's own qa challenges.

    python scripts/benchmark_backends.py --model /root/zephyr-rand \
        --sections vllm_raw,vllm,hf,hf_compile --out benchmarks/results/run.json
    python scripts/benchmark_backends.py --model /root/zephyr-rand --sections vllm \
        --budgets 14,16,18,20,24 --quantization fp8 --out sweep.json     # budget sweep

Each section (and budget) runs in its own subprocess (a clean GPU for each engine) and
reports: the engine arguments the budget gave, or the refusal (before loading, with the
figure that works), load seconds, seconds per challenge at batch 1 (mean/p50/p95, sequential, as the
ancestor's release notes measured), generated tokens/s for all challenges in one
batch, and peak GPU memory: device-wide (NVML, sampled every 20 ms) less what was in use
before the section's process opened CUDA, so it is the whole process (its CUDA context
included) plus vLLM's engine process if it has one: the figure the budget holds
(``process_peak_bytes``, beside the pool vLLM was given and the context's own size).
``embedder`` measures the relevance embedder on the GPU the same way. ``vllm`` is our
backend as the validator runs it (on one GPU the engine core inside the process),
``vllm_separate`` the same with vLLM's engine core in a process of its own (vLLM's
default), ``vllm_raw`` calls ``vllm.LLM`` directly as the reference for our ``vllm``
backend, with our engine arguments unless ``--raw_args`` (JSON) overrides them.
Generation length is fixed (ignore_eos) so runs compare.
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

SECTIONS = ("vllm_raw", "vllm", "vllm_separate", "hf", "hf_compile", "embedder")
ENGINE_MEMORY_LOG = "GiB"  # vLLM logs its memory figures (loading, KV cache, graphs) in GiB


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


def device_used_bytes() -> int | None:
    """Used memory of the first visible GPU as the driver reports it (NVML; nvidia-smi
    where pynvml is missing), without opening a CUDA context; None where it cannot tell."""
    index = (os.environ.get("CUDA_VISIBLE_DEVICES") or "0").split(",")[0]
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = (
            pynvml.nvmlDeviceGetHandleByIndex(int(index))
            if index.isdigit()
            else pynvml.nvmlDeviceGetHandleByUUID(index)
        )
        return int(pynvml.nvmlDeviceGetMemoryInfo(handle).used)
    except ImportError:
        pass
    except Exception:  # noqa: BLE001 - NVML errors: no reading
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "-i", index, "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
        return int(out.split()[0]) * 2**20
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None


class PeakMemory:
    """Device-wide used GPU memory, sampled in a thread through the driver. ``before``
    is what was in use before this process opened CUDA, ``context`` that context's
    size; ``process_peak`` (the peak less ``before``) is everything the process and any
    engine process of its own held at most: the figure a budget must hold."""

    def __init__(self, interval: float = 0.02):
        import torch

        self.torch, self.interval = torch, interval
        self.peak_device, self._stop, self.context = 0, threading.Event(), None
        self.total: int | None = None
        self.before = device_used_bytes()
        if not torch.cuda.is_available():  # CPU dry run: nothing to sample
            self._thread = None
            return
        free, total = torch.cuda.mem_get_info(0)  # opens this process's CUDA context
        self.baseline, self.total = total - free, total
        if self.before is not None:
            self.context = self.baseline - self.before
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _used(self) -> int:
        used = device_used_bytes()
        if used is None:
            free, total = self.torch.cuda.mem_get_info(0)
            used = total - free
        return used

    def _run(self):
        while not self._stop.is_set():
            self.peak_device = max(self.peak_device, self._used())
            time.sleep(self.interval)

    def stop(self) -> int:
        """Stop sampling; returns the peak above this process's context (earlier files)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            return max(0, self.peak_device - self.baseline)
        return 0

    def record(self, result: dict) -> None:
        """Stop, and put the figures into a section's result."""
        result["peak_gpu_bytes"] = self.stop()
        result["own_cuda_context_bytes"] = self.context
        if self.before is not None and self.total is not None:
            result["device_used_before_bytes"] = self.before
            result["process_peak_bytes"] = self.peak_device - self.before


def summarize(seconds: list[float]) -> dict:
    ordered = sorted(seconds)
    return {
        "mean": statistics.fmean(ordered),
        "p50": statistics.median(ordered),
        "p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
        "n": len(ordered),
    }


def planned(args, in_process: bool) -> dict | None:
    """What the budget arithmetic predicts for this budget (None: no config.json)."""
    from prompting.llms import memory

    cfg = memory.load_model_config(args.model)
    if cfg is None:
        return None
    fit = memory.plan(
        memory.ModelShape.from_config(cfg),
        args.budget_gb,
        tensor_parallel=args.gpus,
        quantization=args.quantization,
        engine_in_process=in_process,
    )
    return {
        "engine_in_process": in_process,
        "fits": fit.fits,
        "needed_gb": fit.needed_gb,
        "weights_gb": fit.weights_bytes / 1e9,
        "max_num_seqs": fit.max_num_seqs,
        "max_num_batched_tokens": fit.max_num_batched_tokens,
        "max_model_len": fit.max_model_len,
        "kv_capacity_tokens": fit.kv_capacity_tokens,
        "outside_pool_gb": fit.outside_pool_bytes / 1e9,
        "process_gb": fit.process_bytes / 1e9,
        "activation_gb": fit.activation_bytes / 1e9,
    }


def embedder_section(meter: PeakMemory) -> dict:
    """The relevance embedder on the GPU as the validator runs it there: a reference and
    16 answers per step, qa-sized texts, 50 steps."""
    from prompting.datasets.offline import dataset
    from prompting.rewards.relevance import shared_embedder

    start = time.perf_counter()
    embedder = shared_embedder(device="cuda")
    load = time.perf_counter() - start
    texts = [d.text[:1200] for d in dataset("pydoc").documents[:17]]
    start = time.perf_counter()
    for _ in range(50):
        embedder.encode(texts)
    result = {
        "section": "embedder",
        "load_seconds": load,
        "seconds_per_step": (time.perf_counter() - start) / 50,
    }
    meter.record(result)
    if "process_peak_bytes" in result and meter.context is not None:
        result["embedder_bytes"] = result["process_peak_bytes"] - meter.context
    return result


def run_section(name: str, args) -> dict:
    from prompting.config import default_config
    from prompting.llms.base import LLMError, Sampling

    meter = PeakMemory()
    if name == "embedder":
        return embedder_section(meter)
    prompts = qa_prompts(args.challenges, args.model, args.prompt_tokens)
    sampling = Sampling(max_tokens=args.max_tokens, temperature=0.0, ignore_eos=True)
    start = time.perf_counter()
    result: dict = {
        "section": name,
        "gpus": args.gpus,
        "budget_gb": args.budget_gb,
        "quantization": args.quantization,
    }
    if name.startswith("vllm"):
        from prompting.llms.vllm import ENGINE_PROCESS_VARIABLE, engine_in_process

        if name == "vllm_separate":  # vLLM's default: the engine core in a process of its own
            os.environ[ENGINE_PROCESS_VARIABLE] = "1"
        # raw vLLM keeps its own engine process; our backend follows the backend's rule
        in_process = name != "vllm_raw" and engine_in_process(args.gpus)
        result["plan"] = planned(args, in_process)
    if name == "vllm_raw":
        from vllm import LLM, SamplingParams

        from prompting.llms import memory
        from prompting.llms.base import LLMError
        from prompting.llms.vllm import build_engine_args

        _, total = meter.torch.cuda.mem_get_info(0)
        try:
            engine_args = build_engine_args(
                model_path=args.model,
                config_json=memory.load_model_config(args.model),
                budget_gb=args.budget_gb,
                device_total_bytes=total,
                gpus=args.gpus,
                local_gpu_count=meter.torch.cuda.device_count(),
                max_model_len=None,
                dtype="auto",
                quantization=args.quantization,
                enforce_eager=False,
                executor="auto",
                seed=0,
            )
        except LLMError:
            if not args.raw_args:
                raise
            engine_args = dict(model=args.model, tokenizer=args.model, seed=0)
        engine_args.update(json.loads(args.raw_args or "{}"))
        result["engine_args"] = {k: v for k, v in engine_args.items() if k != "tokenizer"}
        engine = LLM(**engine_args)
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
        n.llm_backend = "vllm" if name.startswith("vllm") else "hf"
        n.hf_compile = name == "hf_compile"
        n.gpus, n.quantization = args.gpus, args.quantization
        n.full_path = "/tmp/prompting-bench"
        try:
            engine = load_llm(config)
        except LLMError as exc:  # refused before loading: record the figure that works
            result.update(refused=str(exc), load_seconds=time.perf_counter() - start)
            meter.record(result)
            return result
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
    meter.record(result)
    result["budget_bytes"] = int(args.budget_gb * 1e9)
    if "process_peak_bytes" in result:
        result["process_peak_inside_budget"] = (
            result["process_peak_bytes"] <= result["budget_bytes"]
        )
    utilization = result.get("stats", {}).get("extra", {}).get("engine_args", {})
    if "gpu_memory_utilization" in utilization and meter.total is not None:
        result["pool_bytes"] = int(utilization["gpu_memory_utilization"] * meter.total)
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
    parser.add_argument(
        "--budgets", help="comma-separated GB budgets: run every section at each (a sweep)"
    )
    parser.add_argument("--quantization", default="none", help="vllm: none or fp8, awq, ...")
    parser.add_argument("--raw_args", help="vllm_raw: JSON of vllm.LLM arguments to override")
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
    budgets = [float(b) for b in args.budgets.split(",")] if args.budgets else [args.budget_gb]
    runs = [(name, budget) for budget in budgets for name in args.sections.split(",")]
    for name, budget in runs:
        cmd = [
            sys.executable,
            __file__,
            *(argv or sys.argv[1:]),
            "--section",
            name,
            "--budget_gb",
            str(budget),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if lines:
            report["results"].append(json.loads(lines[-1][7:]))
            # vLLM's own account of its memory (weights, KV cache, graphs) beside ours
            report["results"][-1]["engine_memory_log"] = [
                ln[-400:] for ln in proc.stderr.splitlines() if ENGINE_MEMORY_LOG in ln
            ][:16]
        else:
            report["results"].append(
                {"section": name, "budget_gb": budget, "error": proc.stderr[-3000:]}
            )
        if "refused" in report["results"][-1] or "error" in report["results"][-1]:
            # vLLM's own words on a failed start (the KV cache it found, what it needed)
            report["results"][-1]["engine_error_log"] = [
                ln[-600:] for ln in proc.stderr.splitlines() if "KV cache" in ln
            ][-4:]
        print(json.dumps(report["results"][-1])[:1500], flush=True)
        if run is not None:
            run.log({f"{name}/{k}": v for k, v in _flatten(report["results"][-1]).items()})
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)
    if run is not None:
        run.finish()


if __name__ == "__main__":
    main()
