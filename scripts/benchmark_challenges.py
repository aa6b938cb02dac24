"""How well a model writes the validator's challenges, through the real gates.

    python scripts/benchmark_challenges.py -n 50 --out benchmarks/results/x.json \
        [--neuron.model_id smollm2] [--neuron.llm_backend hf] [--tasks qa,summarization]

Builds N challenges per task (seeds 0..N-1) with the given model and backend, in
batches of --batch drafts as concurrent validator steps would, and writes JSON: per
task the share accepted at the first try, after regeneration, and fallen back; the
rejection reasons; seconds per challenge; grounding (share of a text's content words
that its passage has) of the LLM-written questions and references; a leak count (what
reached miners or the reward stack still carrying a label, an echoed prompt or a copied
example: must be 0); and three example challenges with their references.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import time

from bench_record import header, write

from prompting.config import parse_config

LLM_TASKS = "qa,summarization,generic_instruction"
EXAMPLES_PER_TASK = 3


def extra(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("benchmark")
    g.add_argument("-n", dest="benchmark.n", type=int, default=50, help="challenges per task")
    g.add_argument("--tasks", dest="benchmark.tasks", default=LLM_TASKS, help="task names")
    g.add_argument(
        "--batch", dest="benchmark.batch", type=int, default=8, help="drafts built together"
    )
    g.add_argument("--out", dest="benchmark.out", default="", help="write the JSON here")


def leaks(challenge) -> list[str]:
    """Gate failures that must never reach miners: labels, echoed prompts, examples."""
    from prompting.tasks import gates

    found = []
    texts = {"reference": challenge.reference, "request": challenge.meta.get("llm_request") or ""}
    for name, text in texts.items():
        reason = gates.common(text)
        if reason in ("role_label", "prompt_echo"):
            found.append(f"{name}/{reason}")
    return found


def summarize(task: str, challenges: list, seconds: float) -> dict:
    from prompting.tasks import gates

    outcomes = collections.Counter(c.meta["outcome"] for c in challenges)
    reasons: collections.Counter = collections.Counter()
    for c in challenges:
        reasons.update(c.meta["rejections"])
    llm = [c for c in challenges if c.meta.get("kind") == "llm"]
    n = len(challenges)
    row = {
        "n": n,
        "first_try": outcomes["first_try"],
        "regenerated": outcomes["regenerated"],
        "fallback": outcomes["fallback"],
        "llm_share": round(len(llm) / n, 3) if n else 0.0,
        "rejections": dict(reasons.most_common()),
        "llm_calls": sum(len(c.llm_outputs) for c in challenges),
        "seconds_per_challenge": round(seconds / n, 3) if n else 0.0,
        "grounding_reference": round(
            statistics.mean(gates.grounding(c.reference, c.context) for c in llm), 3
        )
        if llm
        else None,
        "leaks": sum(len(leaks(c)) for c in challenges),
        "examples": [
            {
                "seed": c.seed,
                "outcome": c.meta["outcome"],
                "rejections": c.meta["rejections"],
                "request": c.meta.get("llm_request"),
                "reference": c.reference,
            }
            for c in (llm or challenges)[:EXAMPLES_PER_TASK]
        ],
    }
    if llm and llm[0].meta.get("llm_request"):
        row["grounding_request"] = round(
            statistics.mean(gates.grounding(c.meta["llm_request"], c.context) for c in llm), 3
        )
    return row


def main(argv=None) -> int:
    config = parse_config("validator", argv, prog="benchmark_challenges.py", extra=extra)
    b = config.benchmark
    if config.neuron.seed is None:
        config.neuron.seed = 0
    from prompting.llms import Sampling, load_llm
    from prompting.tasks import TASKS, build_challenges

    llm = load_llm(config)
    sampling = Sampling.from_config(config)
    result = {
        **header("benchmark_challenges.py", argv, config),
        "llm": llm.stats.to_dict(),
        "sampling": vars(sampling),
        "batch": b.batch,
        "tasks": {},
    }
    for name in [t.strip() for t in b.tasks.split(",") if t.strip()]:
        task = TASKS[name](use_llm=True)
        challenges, start = [], time.perf_counter()
        for first in range(0, b.n, b.batch):
            drafts = [task.draft(seed) for seed in range(first, min(first + b.batch, b.n))]
            challenges += build_challenges(drafts, llm, sampling)
        row = summarize(name, challenges, time.perf_counter() - start)
        result["tasks"][name] = row
        print(
            f"{name}: llm {row['llm_share']:.0%} (first try {row['first_try']}, regenerated "
            f"{row['regenerated']}, fallback {row['fallback']}), "
            f"{row['seconds_per_challenge']} s/challenge, leaks {row['leaks']}, "
            f"rejections {row['rejections']}",
            flush=True,
        )
    llm.close()
    if b.out:
        write(b.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
