"""Quality cost of a vLLM quantization on a real model, beside fp16.

    python scripts/benchmark_quantization.py --model /root/smol --out q.json     # GPU
    python scripts/benchmark_quantization.py --score q.json                      # CPU

Speed and memory of fp8 come from ``benchmark_backends.py --quantization fp8`` (random
weights are fine there); quality needs real weights, so this runs the one real model the
project has (SmolLM2-135M-Instruct). Each quantization runs in its own subprocess on
vLLM with the same greedy settings and reports:

* perplexity on held-out passages: passages of the offline corpus drawn with another
  seed than the prompts below, scored token by token through vLLM's prompt logprobs;
* the references the validator would write: the qa task's question-writer and the
  summarization task's summary prompts for the same passages, greedy.

``--score`` then compares each quantization's references with fp16's using the reward
stack's own ROUGE-L and AnglE relevance (CPU is enough), and writes the result back.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import random
import statistics
import subprocess
import sys
import time


def passages(n: int, seed: int) -> list[str]:
    from prompting.datasets.offline import dataset

    docs = dataset("pydoc").documents
    return [d.text for d in random.Random(seed).sample(docs, n)]


def reference_prompts(n: int, seed: int) -> list[list[dict]]:
    """The prompts the validator's qa and summarization tasks send their own model."""
    from prompting.tasks.base import user
    from prompting.tasks.templates import QA_WRITER, SUMMARY_WRITER

    out = []
    for i, passage in enumerate(passages(n, seed)):
        if i % 2:
            out.append(user(SUMMARY_WRITER.format(passage=passage)))
        else:
            out.append(user(QA_WRITER.format(passage=passage, asker="a curious student")))
    return out


def run_one(quantization: str, args) -> dict:
    from vllm import LLM, SamplingParams

    start = time.perf_counter()
    engine = LLM(
        model=args.model,
        quantization=None if quantization == "none" else quantization,
        dtype="float16",
        gpu_memory_utilization=args.utilization,
        max_model_len=2048,
        enforce_eager=True,  # numerics as with graphs; skips capture for a one-off run
        seed=0,
        disable_log_stats=True,
    )
    load = time.perf_counter() - start
    held_out = passages(args.passages, seed=1)
    scored = engine.generate(
        held_out, SamplingParams(max_tokens=1, prompt_logprobs=0), use_tqdm=False
    )
    nll, count = 0.0, 0
    for out in scored:
        for token_id, entry in zip(out.prompt_token_ids[1:], out.prompt_logprobs[1:]):
            nll -= entry[token_id].logprob
            count += 1
    tok = engine.get_tokenizer()
    prompts = reference_prompts(args.references, seed=0)
    texts = [
        tok.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts
    ]
    greedy = SamplingParams(max_tokens=args.max_tokens, temperature=0.0, seed=0)
    outs = engine.generate(texts, greedy, use_tqdm=False)
    return {
        "quantization": quantization,
        "load_seconds": load,
        "perplexity": math.exp(nll / count),
        "scored_tokens": count,
        "references": [o.outputs[0].text.strip() for o in outs],
    }


def score(path: str) -> dict:
    """ROUGE-L F1 and AnglE relevance of each quantization's references against fp16's."""
    from prompting.rewards.relevance import shared_embedder
    from prompting.rewards.text import rouge_l

    report = json.load(open(path))
    runs = {r["quantization"]: r for r in report["results"] if "references" in r}
    base = runs["none"]["references"]
    embedder = shared_embedder()
    for name, run in runs.items():
        if name == "none":
            continue
        refs = run["references"]
        rouge = [rouge_l(a, b)[2] for a, b in zip(refs, base)]
        vectors_a, vectors_b = embedder.encode(refs), embedder.encode(base)
        cosine = [float(max(0.0, a @ b)) for a, b in zip(vectors_a, vectors_b)]
        identical = sum(a == b for a, b in zip(refs, base))
        report.setdefault("quality_vs_fp16", {})[name] = {
            "perplexity": run["perplexity"],
            "perplexity_fp16": runs["none"]["perplexity"],
            "perplexity_ratio": run["perplexity"] / runs["none"]["perplexity"],
            "rouge_l_f1_mean": statistics.fmean(rouge),
            "relevance_mean": statistics.fmean(cosine),
            "identical_references": identical,
            "references": len(refs),
            "scored_with": "prompting.rewards.text.rouge_l, relevance embedder "
            + embedder.model_name,
        }
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
    return report["quality_vs_fp16"]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="HF folder of a real model")
    parser.add_argument("--quantizations", default="none,fp8")
    parser.add_argument("--passages", type=int, default=64, help="held-out passages")
    parser.add_argument("--references", type=int, default=64, help="references written")
    parser.add_argument("--max_tokens", type=int, default=128)
    parser.add_argument("--utilization", type=float, default=0.2)
    parser.add_argument("--out", help="JSON to write")
    parser.add_argument("--score", metavar="JSON", help="compare a finished run's references")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.score:
        print(json.dumps(score(args.score), indent=1))
        return
    if not (args.model and args.out):
        parser.error("--model and --out are required unless --score is given")
    if args.one:  # child process: one quantization, JSON on the last stdout line
        print("RESULT " + json.dumps(run_one(args.one, args)), flush=True)
        return
    report = {
        "date": datetime.date.today().isoformat(),
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "model": args.model,
        "results": [],
    }
    for name in args.quantizations.split(","):
        cmd = [sys.executable, __file__, *(argv or sys.argv[1:]), "--one", name]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        result = json.loads(lines[-1][7:]) if lines else {"quantization": name}
        if not lines:
            result["error"] = proc.stderr[-3000:]
        report["results"].append(result)
        print(json.dumps({k: v for k, v in result.items() if k != "references"}), flush=True)
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
