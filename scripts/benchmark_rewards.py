"""Adversarial reward benchmark: does an honest model outscore every cheap trick?

    python scripts/benchmark_rewards.py -n 100 --seeds 0,1 \
        --out benchmarks/results/DATE-cpu-rewards.json \
        [--neuron.model_id smollm2] [--neuron.llm_backend hf]

For each seed and task it builds N challenges with the validator's own task builders
and the given model (batched as concurrent steps would), lets the same model answer
each one as the ``model`` miner does, then scores a line-up with the real reward stack
(``prompting/evaluation/lineup.py``): the honest model, the retrieval heuristic, and cheap
strategies (question restated + best sentence, keyword list, passage lead, passage
copy, every number of the challenge, an appended answer and score, a shuffle, a
reworded copy, a copy with fillers, a reordered passage, a padded quote, a stock
paragraph, a near-copy of the model's answer), and a graded honest line-up (the
model's answer whole, halved, a third of its words replaced, another challenge's,
empty: ``prompting/evaluation/fidelity.py``). JSON: mean reward per strategy, task and
component, the model's margin over the best cheap strategy per task, the share of
challenges where any miner scored above 0, the correct-quote measure, and Kendall's tau
of the graded line-up.

The fluency judge needs the model to read every answer (``LLM.score``). The readings
are cached beside the generation (``--readings``); ``--read_only`` fills both and stops
(the part for a GPU), and a later run scores from them on any machine. ``--no_reader``
scores without the judge.

Generation is cached (``--cache``): a second run with the same model, N and seeds only
re-scores, which is how a reward change is measured. ``--record K`` writes K challenges
per task and seed (with their honest answers) for the reward regression test.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from bench_record import header, write

from prompting.config import TASKS, parse_config

ANSWER_TOKENS = 96  # what the local model miner generates (neurons/validator.py)


def extra(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("benchmark")
    g.add_argument("-n", dest="benchmark.n", type=int, default=100, help="challenges per task")
    g.add_argument("--seeds", dest="benchmark.seeds", default="0,1", help="benchmark seeds")
    g.add_argument("--tasks", dest="benchmark.tasks", default=",".join(TASKS), help="tasks")
    g.add_argument("--batch", dest="benchmark.batch", type=int, default=32, help="batch size")
    g.add_argument(
        "--answer_tokens",
        dest="benchmark.answer_tokens",
        type=int,
        default=ANSWER_TOKENS,
        help="new tokens of the honest model's answers",
    )
    g.add_argument("--cache", dest="benchmark.cache", default="", help="generation cache")
    g.add_argument("--out", dest="benchmark.out", default="", help="write the JSON here")
    g.add_argument(
        "--record",
        dest="benchmark.record",
        type=int,
        default=0,
        help="also write this many records per task and seed to --record_path",
    )
    g.add_argument("--record_path", dest="benchmark.record_path", default="")
    g.add_argument(
        "--generate_only",
        dest="benchmark.generate_only",
        action="store_true",
        help="fill the cache and stop (a GPU machine without the reward stack's packages)",
    )
    g.add_argument(
        "--readings",
        dest="benchmark.readings",
        default="",
        help="what the model read of each answer (default: beside the cache, .readings.json.gz)",
    )
    g.add_argument(
        "--read_only",
        dest="benchmark.read_only",
        action="store_true",
        help="fill the cache and the readings, then stop (the GPU part of a run)",
    )
    g.add_argument(
        "--no_reader",
        dest="benchmark.no_reader",
        action="store_true",
        help="score without the fluency judge (the stack as it was before it)",
    )


def generate(config, seed: int, tasks: list[str], llm) -> list[dict]:
    """N challenges per task built with the model, each answered by the model."""
    from prompting.evaluation.lineup import Record
    from prompting.llms import Sampling
    from prompting.tasks import TASKS as BUILDERS
    from prompting.tasks import build_challenges

    b = config.benchmark
    build = Sampling.from_config(config, seed=seed)
    answer = Sampling.from_config(config, seed=seed + 7919, max_tokens=b.answer_tokens)
    records = []
    for name in tasks:
        task, start = BUILDERS[name](use_llm=llm is not None), time.perf_counter()
        drafts = [task.draft(seed * 1_000_000 + i) for i in range(b.n)]
        challenges = []
        for first in range(0, b.n, b.batch):
            challenges += build_challenges(drafts[first : first + b.batch], llm, build)
        built = time.perf_counter() - start
        honest = []
        for first in range(0, b.n, b.batch):
            batch = [c.messages for c in challenges[first : first + b.batch]]
            honest += [g.text for g in llm.generate(batch, answer)]
        records += [Record(c, h).to_dict() for c, h in zip(challenges, honest)]
        print(
            f"seed {seed} {name}: {b.n} built in {built:.0f} s, answered in "
            f"{time.perf_counter() - start - built:.0f} s",
            flush=True,
        )
    return records


def cache_path(config) -> str:
    b = config.benchmark
    if b.cache:
        return os.path.expanduser(b.cache)
    name = f"rewards-{config.neuron.model_id.replace('/', '_')}-{config.neuron.llm_backend}"
    return os.path.join(
        os.path.expanduser(config.neuron.full_path), "benchmarks", f"{name}-n{b.n}.json"
    )


def readings_path(config) -> str:
    return config.benchmark.readings or cache_path(config).removesuffix(".json") + (
        ".readings.json.gz"
    )


def read_all(reader, records, retrieval) -> None:
    """Have the model read every answer the scoring will judge: the line-up's and the
    graded line-up's, challenge by challenge (one prompt, its answers batched)."""
    from prompting.evaluation import lineup
    from prompting.evaluation.readings import STORE_TOKENS

    graded = lineup.graded_answers(records)
    for i, record in enumerate(records):
        c = record.challenge
        texts = [*lineup.answers(record, retrieval).values(), *graded[c.challenge_id].values()]
        reader.score([c.messages] * len(texts), texts, STORE_TOKENS)
        if i % 8 == 7:
            reader.save()  # a long CPU run keeps what it has read
            print(f"read {i + 1} of {len(records)} challenges", flush=True)


def load_records(config, seeds: list[int], tasks: list[str]) -> dict[int, list[dict]]:
    """Cached generations where they exist; the model is loaded only for what is missing."""
    path = cache_path(config)
    cached: dict[str, list[dict]] = {}
    if os.path.exists(path):
        with open(path) as f:
            cached = json.load(f)
    llm = None
    for seed in seeds:
        have = {r["challenge"]["task"] for r in cached.get(str(seed), [])}
        for task in [t for t in tasks if t not in have]:  # saved task by task: resumable
            if llm is None:
                from prompting.llms import load_llm

                llm = load_llm(config)
            cached.setdefault(str(seed), []).extend(generate(config, seed, [task], llm))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path + ".tmp", "w") as f:
                json.dump(cached, f)
            os.replace(path + ".tmp", path)
    if llm is not None:
        llm.close()
    return {s: [r for r in cached[str(s)] if r["challenge"]["task"] in tasks] for s in seeds}


def main(argv=None) -> int:
    config = parse_config("validator", argv, prog="benchmark_rewards.py", extra=extra)
    b = config.benchmark
    seeds = [int(s) for s in b.seeds.split(",") if s.strip()]
    tasks = [t.strip() for t in b.tasks.split(",") if t.strip()]
    generated = load_records(config, seeds, tasks)
    if b.generate_only:
        print("generated", cache_path(config))
        return 0
    import torch

    torch.set_num_threads(1)  # many small calls (scoring, CPU reading): one thread is faster

    from prompting.evaluation import fidelity, lineup
    from prompting.evaluation.readings import CachedReader
    from prompting.llms import load_llm
    from prompting.miner.strategies import retrieval
    from prompting.rewards.relevance import shared_embedder
    from prompting.rewards.stack import RewardStack

    embedder = shared_embedder(
        config.reward.relevance_model, config.reward.pooling, config.reward.device
    )
    reader = None if b.no_reader else CachedReader(readings_path(config), lambda: load_llm(config))
    if b.read_only:
        for seed in seeds:
            records = [lineup.Record.from_dict(r) for r in generated[seed]]
            read_all(reader, records, retrieval(embedder))
            reader.save()
        print("read", len(reader.cache), "answers into", reader.path)
        return 0
    stack = RewardStack(lambda: embedder, reader=reader)
    result = {
        **header("benchmark_rewards.py", argv, config),
        "n": b.n,
        "answer_tokens": b.answer_tokens,
        "strategies": {
            "honest": lineup.HONEST,
            "heuristic": lineup.HEURISTIC,
            "cheap": list(lineup.CHEAP),
            "no_answer": list(lineup.NO_ANSWER),
        },
        "judge": "off" if reader is None else "fluency (the model reads every answer)",
        "seeds": {},
        "fidelity": {},
    }
    start = time.perf_counter()
    alpha = config.neuron.moving_average_alpha
    for seed in seeds:
        records = [lineup.Record.from_dict(r) for r in generated[seed]]
        rows = lineup.score(stack, records, retrieval(embedder))
        result["seeds"][str(seed)] = lineup.summarize(rows)
        graded = lineup.score_graded(stack, records)
        result["fidelity"][str(seed)] = fidelity.summarize(graded, alpha, seed)
    result["scoring_seconds"] = round(time.perf_counter() - start, 1)
    if reader is not None:
        result["answers_read_this_run"] = reader.misses
        if reader.misses:
            reader.save()
        reader.close()
    for seed, tasks_ in result["seeds"].items():
        for task, row in tasks_.items():
            means = {k: v["mean"] for k, v in row["strategies"].items()}
            print(
                f"seed {seed} {task:20s} model {means[lineup.HONEST]:.3f} best cheap "
                f"{row['best_cheap']} {means[row['best_cheap']]:.3f} margin "
                f"{row['margin_relative']} no-answer {row['no_answer_cheap_mean']:.3f} "
                f"retrieval {means.get(lineup.HEURISTIC, float('nan')):.3f} "
                f"any>0 {row['share_any_above_zero']:.2f}"
            )
    for seed, tasks_ in result["fidelity"].items():
        for task, row in tasks_.items():
            print(
                f"seed {seed} {task:20s} fidelity: tau per challenge {row['tau_per_challenge']} "
                f"of means {row['tau_of_means']} steps {row['steps_to_order']} {row['means']}"
            )
    if b.out:
        write(b.out, result)
    if b.record:
        recorded = {
            str(s): [
                r
                for t in tasks
                for r in [x for x in generated[s] if x["challenge"]["task"] == t][: b.record]
            ]
            for s in seeds
        }
        with open(b.record_path, "w") as f:
            json.dump(recorded, f, indent=1)
        print("recorded", b.record_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
