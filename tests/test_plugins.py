"""Plug-ins from another distribution, chosen by flags, with no file of the project edited.

``tests/plugin_example`` is a distribution of its own (its pyproject declares a backend,
a task, a reward, a penalty and a miner strategy as entry points). It is installed with
pip into a folder of this test, outside the package tree, and the validator and its
local miners are run with that folder on PYTHONPATH, as an operator's environment would
have it after ``pip install``. Broken plug-ins are installed as a distribution's
metadata written by hand (what pip leaves behind), so that nothing is built for them.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from prompting import registry
from prompting.config import build_parser
from prompting.registry import PluginError, Registry
from tests.conftest import REPO

EXAMPLE = os.path.join(REPO, "tests", "plugin_example")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> str:
    """The example plug-in installed (offline, no build isolation) into a folder of its
    own; built from a copy, so the source folder gets no build/ or egg-info."""
    root = tmp_path_factory.mktemp("plugins")
    source = shutil.copytree(EXAMPLE, root / "src")
    target = root / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
        + ["--no-index", "--target", str(target), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return str(target)


def write_dist(site_dir, name: str, module: str, entry_points: str) -> None:
    """A distribution as pip leaves it: a module and its dist-info with entry points."""
    info = os.path.join(site_dir, f"{name}-0.1.dist-info")
    os.makedirs(info)
    with open(os.path.join(info, "METADATA"), "w") as f:
        f.write(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    with open(os.path.join(info, "entry_points.txt"), "w") as f:
        f.write(entry_points)
    with open(os.path.join(site_dir, f"{name}.py"), "w") as f:
        f.write(module)


@pytest.fixture(scope="module")
def broken(tmp_path_factory) -> str:
    """Plug-ins that fail: one raises on import, others are not of their base class."""
    site_dir = str(tmp_path_factory.mktemp("broken"))
    write_dist(
        site_dir,
        "raising_plugin",
        'raise RuntimeError("no engine library on this host")\n',
        "[prompting.llms]\nraising = raising_plugin:Engine\n"
        "[prompting.miner_strategies]\nraising = raising_plugin:Answer\n",
    )
    write_dist(
        site_dir,
        "misfit_plugin",
        "class Engine:\n    pass\n\n\ndef task():\n    pass\n",
        "[prompting.llms]\nmisfit = misfit_plugin:Engine\n"
        "[prompting.tasks]\nmisfit_task = misfit_plugin:task\n",
    )
    return site_dir


def run(script: str, pythonpath: str, *args: str, timeout: float = 300):
    env = {**os.environ, "PYTHONPATH": pythonpath, "WANDB_MODE": "offline"}
    return subprocess.run(
        [sys.executable, script, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_registry_names_lazy_targets_and_errors():
    reg = Registry("gadget", "prompting.no_such_group", "prompting.llms.base:LLM", {})
    reg.register("hf", "prompting.llms.hf:HFLLM")
    assert list(reg) == ["hf"] and "hf" in reg and "nope" not in reg
    assert reg["hf"].name == "hf"
    with pytest.raises(PluginError, match=r"^unknown gadget 'nope'; available: hf$"):
        reg["nope"]
    reg.register("wrong", "prompting.tasks.qa:QATask")
    with pytest.raises(PluginError, match="not a subclass of prompting.llms.base.LLM"):
        reg["wrong"]
    reg.register("gone", "prompting.no_such_module:X")
    with pytest.raises(PluginError, match="failed to import: ModuleNotFoundError"):
        reg["gone"]


def test_every_builtin_part_loads_and_passes_its_base_class_check():
    for reg in (registry.BACKENDS, registry.TASKS, registry.REWARDS, registry.STRATEGIES):
        for name in reg.builtin_names():
            assert reg[name].name == name, (reg.kind, name)


def test_no_backend_name_is_compared_outside_its_module():
    """Each backend's rules live in its class: code elsewhere that compares a value with
    a backend's name (``llm_backend == "vllm"``) is what this refactoring removed."""
    names = set(registry.BACKENDS.builtin_names())
    files = ["prompting/config.py", "prompting/llms/preflight.py", "scripts/check_env.py"]
    files += ["neurons/validator.py", "neurons/miner.py", "prompting/validator/loop.py"]
    found = []
    for path in files:
        tree = ast.parse(open(os.path.join(REPO, path)).read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare):
                for operand in (node.left, *node.comparators):
                    if isinstance(operand, ast.Constant) and operand.value in names:
                        found.append(f"{path}:{node.lineno}")
    assert found == []


def test_flag_choices_and_check_env_list_installed_plugins_without_importing_them(site):
    code = (
        "import sys, time; t = time.perf_counter()\n"
        "from prompting.config import build_parser\n"
        "text = build_parser('validator').format_help() + build_parser('miner').format_help()\n"
        "print(round(time.perf_counter() - t, 2), 'prompting_example' in sys.modules)\n"
        "print(text)\n"
    )
    env = {**os.environ, "PYTHONPATH": site}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, env=env
    )
    seconds, imported = out.stdout.splitlines()[0].split()
    assert imported == "False" and float(seconds) < 2.0
    unwrapped = re.sub(r"\s*\n\s*", "", out.stdout)  # argparse wraps long choice lists mid-name
    for name in ("example_echo", "example_reverser", "example_reverse", "example_shouting"):
        assert name in unwrapped
    start = time.perf_counter()
    help_run = run("neurons/validator.py", site, "--help")
    assert help_run.returncode == 0 and "example_echo" in help_run.stdout
    assert time.perf_counter() - start < 5.0
    # The in-process registry sees the same names (the default flags do not change).
    assert "example_echo" not in build_parser().get_default("local.strategies")


def test_check_env_lists_installed_plugins_by_name(site, monkeypatch):
    monkeypatch.syspath_prepend(site)  # as if pip had installed it into this environment
    spec = importlib.util.spec_from_file_location("check_env_rows", f"{REPO}/scripts/check_env.py")
    check_env = sys.modules["check_env_rows"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check_env)
    rows = {r.name: r.detail for r in check_env.check_plugins()}
    backends = rows["prompting.llms"]
    assert backends.startswith("hf, vllm, openai") and "example_echo" in backends
    assert "example_reverse" in rows["prompting.tasks"]
    assert "example_shouting" in rows["prompting.rewards"]
    assert "example_reverser" in rows["prompting.miner_strategies"]
    assert "prompting_example" not in sys.modules


@pytest.mark.slow
def test_validator_and_miner_run_the_example_plugins_chosen_by_flags(site, tmp_path):
    proc = run(
        "neurons/validator.py",
        site,
        *("--neuron.full_path", str(tmp_path), "--wandb.off", "--neuron.seed", "1"),
        *("--neuron.llm_backend", "example_echo", "--neuron.model_id", "example"),
        *("--neuron.task_weights", "example_reverse=1"),
        *("--reward.penalties", "example_shouting"),
        *("--local.miners", "2", "--local.strategies", "example_reverser,echo"),
        *("--neuron.max_steps", "3", "--neuron.sample_size", "2"),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ignores --neuron.temperature" in proc.stderr  # the backend's own check
    events = [json.loads(line) for line in open(tmp_path / "events.jsonl")]
    assert len(events) == 3
    for e in events:
        assert e["task"] == "example_reverse"
        # the backend wrote the sentence: it echoes the stage prompt's last line
        assert e["llm_outputs"] and e["challenge"].endswith(e["llm_outputs"][0])
        assert "reward/example_reversed" in e and "reward/penalty/example_shouting" in e
    scores = {}
    for line in proc.stdout.split("final scoreboard")[1].splitlines()[1:]:
        uid, label, hotkey, score = line.split()
        scores[label] = float(score)
    # the plug-in miner reverses the words: full reward; echo gets none
    assert scores["example_reverser"] > 0.2 and scores["echo"] == 0.0


@pytest.mark.parametrize(
    "script,args,says",
    [
        (
            "neurons/validator.py",
            ["--neuron.llm_backend", "raising"],
            "backend plug-in 'raising' (raising_plugin 0.1, entry point prompting.llms "
            "raising = raising_plugin:Engine) failed to import: RuntimeError: no engine "
            "library on this host",
        ),
        (
            "neurons/validator.py",
            ["--neuron.llm_backend", "misfit"],
            "backend plug-in 'misfit' (misfit_plugin 0.1, entry point prompting.llms misfit = "
            "misfit_plugin:Engine) is class misfit_plugin.Engine, not a subclass of "
            "prompting.llms.base.LLM",
        ),
        (
            "neurons/validator.py",
            ["--neuron.model_id", "tiny", "--neuron.task_weights", "qa=1,misfit_task=1"],
            "task plug-in 'misfit_task' (misfit_plugin 0.1, entry point prompting.tasks "
            "misfit_task = misfit_plugin:task) is a function, not a subclass of "
            "prompting.tasks.base.Task",
        ),
        (
            "neurons/miner.py",
            ["--miner.strategy", "raising"],
            "miner strategy plug-in 'raising' (raising_plugin 0.1, entry point "
            "prompting.miner_strategies raising = raising_plugin:Answer) failed to import: "
            "RuntimeError: no engine library on this host",
        ),
    ],
)
def test_a_broken_plugin_is_named_in_one_line(broken, tmp_path, script, args, says):
    proc = run(script, broken, "--neuron.full_path", str(tmp_path), *args, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.splitlines() if "error" in ln]
    assert len(lines) == 1 and says in lines[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "miners").exists()  # refused before any miner started
