import subprocess
import sys
import time

import pytest

from prompting.config import default_config, parse_config, parse_task_weights
from tests.conftest import REPO


def run(*args):
    return subprocess.run(
        [sys.executable, "neurons/validator.py", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_help_is_fast_and_lists_flags_with_defaults():
    start = time.perf_counter()
    proc = run("--help")
    took = time.perf_counter() - start
    assert proc.returncode == 0
    for flag in (
        "--neuron.llm_backend",
        "--neuron.llm_max_allowed_memory_in_gb",
        "--neuron.gpus",
        "--neuron.moving_average_alpha",
        "--chain.network",
        "--wallet.name",
        "--wandb.off",
        "--local.miners",
        "--neuron.full_path",
    ):
        assert flag in proc.stdout
    assert "(default: 24.0)" in proc.stdout
    assert took < 2.0, f"--help took {took:.2f}s"


def test_config_imports_no_heavy_modules():
    code = (
        "import sys; from prompting.config import parse_config; parse_config(argv=[]);"
        "print(sorted(m for m in ('torch','transformers','vllm','bittensor') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--neuron.gpus", "0"], "--neuron.gpus: must be >= 1"),
        (["--neuron.llm_backend", "tgi"], "--neuron.llm_backend: invalid choice"),
        (["--neuron.moving_average_alpha", "1.5"], "--neuron.moving_average_alpha: must be <= 1"),
        (["--neuron.device", "gpu"], "expected auto, cpu, cuda or cuda:N"),
        (["--neuron.task_weights", "qa=1,poetry=2"], "names from qa, summarization"),
        (["--neuron.llm_backend", "vllm", "--neuron.device", "cpu"], "GPU only"),
        (["--neuron.gpus", "2"], "needs --neuron.llm_backend vllm"),
        (["--chain.network", "mainnet"], "expected local, finney, test or a ws://"),
    ],
)
def test_invalid_values_give_one_line_and_exit_2(args, needle):
    proc = run(*args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], proc.stderr


def test_nested_namespace_and_overrides():
    config = parse_config("validator", ["--neuron.gpus", "1", "--chain", "test", "--netuid", "7"])
    assert config.neuron.gpus == 1 and config.chain.network == "test" and config.netuid == 7
    from prompting.config import LEFT_OUT_BY_DEFAULT
    from prompting.tasks import TASKS

    weights = config.neuron.task_weights  # a dict; every task not left out has a weight
    assert set(weights) == set(TASKS)
    assert {n for n, w in weights.items() if w == 0} == set(LEFT_OUT_BY_DEFAULT)
    assert default_config(neuron__sample_size=3).neuron.sample_size == 3


def test_task_weights_parsing():
    assert parse_task_weights("math=1") == {"math": 1.0}
    with pytest.raises(Exception, match="positive weight"):
        parse_task_weights("math=0")
