"""Bar charts of backend benchmark results (JSON from benchmark_backends.py) as one PNG.

    python scripts/plot_benchmarks.py benchmarks/results/2026-11-23-h100-backends.json \
        benchmarks/results/2026-11-23-h200x2-tensor-parallel.json --out backends.png
"""

from __future__ import annotations

import argparse
import json


def rows(paths: list[str]) -> list[tuple[str, dict]]:
    out = []
    for path in paths:
        report = json.load(open(path))
        device = report.get("device", report["environment"].get("device", "?")).split(" (")[0]
        for r in report["results"]:
            if "error" in r:
                continue
            label = f"{r['section']}" + (f" tp{r['gpus']}" if r.get("gpus", 1) > 1 else "")
            out.append((f"{label}\n{device.replace('NVIDIA ', '').replace(' 80GB HBM3', '')}", r))
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", nargs="+")
    parser.add_argument("--out", default="backends.png")
    args = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = rows(args.results)
    labels = [label for label, _ in data]
    fig, axes = plt.subplots(1, 2, figsize=(14, 5.5))
    batch1 = [r["batch1_seconds"]["p50"] for _, r in data]
    axes[0].barh(labels, batch1, color="tab:blue")
    axes[0].set(title="Seconds per challenge, batch 1 (p50, 256 new tokens)", xlabel="seconds")
    for i, v in enumerate(batch1):
        axes[0].text(v, i, f" {v:.2f}", va="center", fontsize=8)
    batched = [r.get("batched", {}).get("tokens_per_second", 0) for _, r in data]
    axes[1].barh(labels, batched, color="tab:green")
    axes[1].set(title="100 challenges batched: generated tokens/s", xlabel="tokens / second")
    for i, v in enumerate(batched):
        axes[1].text(v, i, f" {v:.0f}" if v else " n/a", va="center", fontsize=8)
    for ax in axes:
        ax.invert_yaxis()
        ax.tick_params(axis="y", labelsize=8)
    fig.suptitle(
        "Generation backends, zephyr-7b architecture (random weights, fp16), "
        "~350-token prompts, 24 GB budget"
    )
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(args.out)


if __name__ == "__main__":
    main()
