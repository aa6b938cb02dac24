"""scripts/summarize_run.py on recorded data: the 2026-12-06 H100 adaptive run's
nvidia-smi samples (an excerpt, every third 100 ms row around the run, plus the row taken
before it) and lines of the 2026-12-06 H200 py-spy recording."""

from __future__ import annotations

import datetime
import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import summarize_run  # noqa: E402

DATA = os.path.join(ROOT, "tests", "data")
SMI = os.path.join(DATA, "smi-2026-12-06-h100-adaptive.csv")
PYSPY = os.path.join(DATA, "pyspy-gil-2026-12-06-h200-excerpt.txt")


def utc(text: str) -> float:
    when = datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f")
    return when.replace(tzinfo=datetime.timezone.utc).timestamp()


def burst_events(path: str) -> None:
    """The adaptive run's shape (its log): 250 steps all started at 23:26:33.37, when
    the loop began; the first committed at 23:26:50.46 (step 17.08 s), the last at
    23:27:07.19 (step 33.82 s). Generation ran in between (the GPU busy 23:26:37-46)."""
    start, first, last = (
        utc("2026-12-06 23:26:33.370"),
        utc("2026-12-06 23:26:50.455"),
        utc("2026-12-06 23:27:07.190"),
    )
    with open(path, "w") as f:
        for i in range(250):
            commit = first + (last - first) * i / 249
            event = {
                "step": i + 1,
                "time": commit,
                "timings/step": commit - start,
                "task": "qa",
                "reward/mean": 0.0,
                "uids": [i % 64],
                "statuses": ["ok"],
                "latencies": [3.0],
                "responses/ok": 1,
                "query/started": commit - 3.0,
                "forwards/in_flight": 250 - i,
                "generate/busy_s": 9.0,  # the batcher's total, already at the first commit
                "worker/busy_s": 10.0,
            }
            f.write(json.dumps(event) + "\n")


def test_a_burst_is_measured_from_its_first_step_not_its_first_commit(tmp_path):
    burst_events(tmp_path / "events.jsonl")
    out = summarize_run.summarize(str(tmp_path), smi_path=SMI)
    smi = out["nvidia_smi"]
    # The GPU worked 23:26:37-46 of the 33.8 s from the loop's start to the last commit.
    # Over the commits alone (23:26:50-27:07) the samples read 0: the bug of 2026-12-06.
    assert 0.2 < smi["busy_share"] < 0.4
    assert 15 < smi["utilization_mean_pct"] < 35
    assert smi["device_peak_above_start_mib"] == 22561.0
    assert out["window_s"] == pytest.approx(33.82, abs=0.01)
    assert out["scored_challenges_per_gpu_hour"] == pytest.approx(250 * 3600 / 33.82, rel=0.01)
    assert out["commit_window_per_hour"] == pytest.approx(249 * 3600 / 16.735, rel=0.01)
    assert out["generation_busy_share"] == pytest.approx(9.0 / 33.82, rel=0.01)
    assert out["model_thread_busy_share"] == pytest.approx(10.0 / 33.82, rel=0.01)
    assert out["limit"] == "none"


def test_the_bound_a_run_hit():
    at = {"nvidia_smi": {"busy_share": 0.85}, "query_rate": {"mean_per_miner": 3.9}}
    assert summarize_run.bound(at, 4.0, 512) == "gpu"
    at["nvidia_smi"]["busy_share"] = 0.3
    assert summarize_run.bound(at, 4.0, 512) == "miners' rate"
    at["query_rate"]["mean_per_miner"] = 2.17  # the sustained run of 2026-12-06
    at.update(model_thread_busy_share=0.95, in_flight={"p50": 512})
    assert summarize_run.bound(at, 4.0, 512) == "model thread"
    at["model_thread_busy_share"] = 0.5
    at["engine_thread_busy_share"] = 0.93  # a shared vLLM backend's engine thread
    assert summarize_run.bound(at, 4.0, 512) == "engine thread"
    at["engine_thread_busy_share"] = 0.6
    assert summarize_run.bound(at, 4.0, 512) == "steps in flight"


def test_a_shared_backends_threads_and_the_reward_parts(tmp_path):
    """With vLLM shared between threads: the engine thread's busy share, the reward
    threads' summed time, and per step the embedder's and the fluency judge's parts."""
    burst_events(tmp_path / "events.jsonl")
    lines = open(tmp_path / "events.jsonl").read().splitlines()
    with open(tmp_path / "events.jsonl", "w") as f:
        for i, line in enumerate(lines):
            event = json.loads(line)
            event.update({"engine/busy_s": 20.0, "rewards/busy_s": 40.0, "timings/embed": 0.01})
            if i % 2:  # a step whose answers were all zeroed reads nothing: no timing
                event.update({"timings/read": 0.02 * (i % 4), "timings/read_answers": 4.0})
            f.write(json.dumps(event) + "\n")
    out = summarize_run.summarize(str(tmp_path))
    assert out["engine_thread_busy_share"] == pytest.approx(20.0 / 33.82, rel=0.01)
    assert out["reward_threads_busy"] == pytest.approx(40.0 / 33.82, rel=0.01)
    parts = out["reward_parts"]
    assert parts["embed"]["mean"] == pytest.approx(0.01)
    assert parts["read"]["mean"] == pytest.approx(0.04, abs=1e-3) and parts["read"]["max"] == 0.06
    assert parts["read_answers"]["p50"] == 4.0


def test_gil_split_of_a_recorded_profile():
    split = summarize_run.gil_split(PYSPY, samples_taken=100)
    main, models = split["threads"]["MainThread"], split["threads"]["models_0"]
    assert split["gil_samples"] == 12
    assert main["share_of_gil"] == pytest.approx(6 / 12)
    assert models["share_of_wall"] == pytest.approx(6 / 100)
    assert split["gil_free_share_of_wall"] == pytest.approx(0.88)
    assert split["pools_share_of_gil"] == {"MainThread": 0.5, "models": 0.5}  # models_0
    assert main["areas_share_of_gil"]["miner traffic"] == pytest.approx(4 / 12, abs=1e-4)
    assert models["areas_share_of_gil"]["rewards"] == pytest.approx(4 / 12, abs=1e-4)
    assert models["areas_share_of_gil"]["challenges and generation"] == pytest.approx(
        2 / 12, abs=1e-4
    )
    assert "MinerClient.query (prompting/network/client.py)" in main["inclusive_share_of_gil"]
