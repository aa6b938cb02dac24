import asyncio
import importlib.util
import json
import subprocess
import sys
import time

import pytest
from packaging.requirements import Requirement

from prompting.config import default_config, parse_config
from prompting.llms.tiny import PRESETS
from tests.conftest import REPO

# The doctor is the script itself (scripts/check_env.py); its checks are tested one by one.
_spec = importlib.util.spec_from_file_location("check_env", f"{REPO}/scripts/check_env.py")
doctor = sys.modules["check_env"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(doctor)

GPUS = [
    {"index": 0, "uuid": "GPU-aaa111", "name": "H100", "total_gb": 85.5, "used_gb": 0.5},
    {"index": 1, "uuid": "GPU-bbb222", "name": "H100", "total_gb": 85.5, "used_gb": 80.0},
]
APPS = [{"uuid": "GPU-bbb222", "pid": "4242", "name": "python", "used_gb": 79.5}]


def statuses(rows):
    return [r.status for r in rows]


def test_real_run_on_this_machine_exits_0_and_is_fast():
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "scripts/check_env.py", "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert time.perf_counter() - start < 5.0
    assert proc.returncode == 0, proc.stdout
    rows = json.loads(proc.stdout)
    names = {r["name"] for r in rows}
    assert {
        "python",
        "torch",
        "pkg transformers",
        "angle-emb vs transformers",
        "pydantic",
        "uvloop",
        "gpus",
        "model fit",
        "wallet",
        "chain",
        "wandb",
        "prompting.llms",  # the backends, installed plug-ins included
    } <= names


def test_plain_output_is_a_table_with_fixes_and_exit_1_on_failure(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "scripts/check_env.py",
            "--chain.network",
            "test",
            "--offline",
            "--wallet.path",
            str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "fail  wallet" in proc.stdout and "fix: btcli wallet new-hotkey" in proc.stdout
    assert "\033[" not in proc.stdout  # plain when piped


def test_requirements_ranges():
    rows = doctor.check_requirements(
        [Requirement("transformers>=5.3,<6"), Requirement("pydantic>=2.6"), Requirement("x")],
        installed={"transformers": "4.36.2", "pydantic": "2.7.0"}.get,
    )
    assert statuses(rows) == ["fail", "ok", "fail"]
    assert rows[0].fix.startswith("pip install 'transformers") and "4.36.2" in rows[0].detail
    assert rows[2].detail.startswith("missing")
    assert doctor.read_requirements(["vllm.txt"])[0].name == "vllm"


def test_angle_vs_transformers_vs_vllm():
    ok = doctor.check_angle_transformers(
        {"angle-emb": "0.6.1", "transformers": "5.17.0", "vllm": "0.24.0"}.get
    )
    assert statuses(ok) == ["ok"]
    pinned = doctor.check_angle_transformers(
        {"angle-emb": "0.6.1", "transformers": "5.3.0", "vllm": "0.24.0"}.get
    )
    assert statuses(pinned) == ["fail"] and "--no-deps" in pinned[0].fix
    assert statuses(doctor.check_angle_transformers({"transformers": "5.17.0"}.get)) == ["fail"]


def test_pydantic_major():
    rows = doctor.check_pydantic({"pydantic": "1.10.13"}.get)
    assert statuses(rows) == ["fail"] and "pydantic>=2.6" in rows[0].fix


def test_uvloop_policy_is_reported():
    uvloop = pytest.importorskip("uvloop")
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        rows = doctor.check_uvloop()
    finally:
        asyncio.set_event_loop_policy(None)
    assert statuses(rows) == ["warn"] and "no current event loop" in rows[0].detail
    assert statuses(doctor.check_uvloop()) == ["ok"]


def test_vllm_torch_build_mismatch():
    rows = doctor.check_torch({"torch": "2.13.0+cpu", "vllm": "0.24.0"}.get)
    assert rows[-1].status == "fail" and "torch==2.11.0" in rows[-1].fix
    assert statuses(doctor.check_torch({}.get)) == ["fail"]


def test_gpus_visible_busy_and_wrong():
    config = parse_config("check_env", ["--neuron.llm_backend", "vllm"])
    rows = doctor.check_gpus(config, smi=(GPUS, APPS), env_value="GPU-bbb")
    assert statuses(rows) == ["warn"] and "held by python(4242)" in rows[0].detail
    rows = doctor.check_gpus(config, smi=(GPUS, APPS), env_value="1,0")
    assert rows[0].detail.startswith("cuda:0 = GPU 1") and rows[1].status == "ok"
    assert statuses(doctor.check_gpus(config, smi=(GPUS, APPS), env_value="7")) == ["fail"]
    assert statuses(doctor.check_gpus(config, smi=([], []))) == ["fail"]
    tp = parse_config("check_env", ["--neuron.llm_backend", "vllm", "--neuron.gpus", "2"])
    assert doctor.check_gpus(tp, smi=(GPUS, APPS), env_value="0")[-1].status == "fail"
    assert statuses(doctor.check_gpus(default_config("check_env"), smi=([], []))) == ["ok"]


def test_model_fit(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(PRESETS["zephyr-7b"]))
    small = parse_config(
        "check_env",
        [
            "--neuron.llm_backend",
            "vllm",
            "--neuron.model_id",
            str(tmp_path),
            "--neuron.llm_max_allowed_memory_in_gb",
            "14",
        ],
    )
    rows = doctor.check_fit(small, gpu_total_gb=85.5)
    assert statuses(rows) == ["fail"] and "to 16.5" in rows[0].fix
    assert "--neuron.quantization fp8 (needs 9.5)" in rows[0].fix
    small.neuron.llm_max_allowed_memory_in_gb = 24
    assert statuses(doctor.check_fit(small, gpu_total_gb=85.5)) == ["ok"]
    assert statuses(doctor.check_fit(small, gpu_total_gb=16.0)) == ["fail"]
    cpu = parse_config("check_env", ["--neuron.model_id", str(tmp_path), "--neuron.device", "cpu"])
    assert statuses(doctor.check_fit(cpu, ram_gb=24.0)) == ["fail"]  # 29 GB fp32 > 24 GB RAM
    missing = parse_config("check_env", ["--neuron.model_id", "nobody/no-model"])
    assert statuses(doctor.check_fit(missing)) == ["warn"]


def test_wallet_and_wandb(tmp_path, wallets):
    real = wallets["validator"]
    config = parse_config(
        "check_env",
        ["--chain.network", "finney", "--wallet.path", real.path, "--wallet.name", "validator"],
    )
    assert statuses(doctor.check_wallet(config)) == ["ok"]
    config.wallet.hotkey = "missing"
    assert statuses(doctor.check_wallet(config)) == ["fail"]
    assert "not contacted" in doctor.check_chain(config, offline=True)[0].detail
    config.wandb.offline = False
    assert statuses(doctor.check_wandb(config, {}.get)) == ["warn"]
    config.wandb.off = True
    assert statuses(doctor.check_wandb(config)) == ["ok"]


def test_check_env_on_a_real_network_names_each_fix(tmp_path, wallets):
    """Through a fake SyncClient: registration, permit and the weights rules, each row
    with the fix when it fails."""
    from types import SimpleNamespace

    from tests.test_chain import RecordedClient, sdk_neuron

    me = wallets["validator"].hotkey.ss58_address

    def neuron(uid, hotkey, permit):
        row = sdk_neuron(uid, permit=permit, stake_tao=5000)
        return type(row)(**{**row.__dict__, "hotkey": hotkey})

    def rows(graph, params=None, **flags):
        config = parse_config(
            "check_env",
            ["--chain.network", "finney", "--wallet.path", str(tmp_path / "wallets")]
            + ["--wallet.name", "validator"]
            + [a for k, v in flags.items() for a in (f"--chain.{k}", str(v))],
        )
        client = RecordedClient("finney", graph=SimpleNamespace(neurons=graph))
        client.hyperparameters.update(params or {})
        return {r.name: r for r in doctor.check_chain(config, False, lambda n: client)}

    import shutil

    shutil.copytree(wallets["validator"].path, tmp_path / "wallets", dirs_exist_ok=True)
    missing = rows([neuron(0, "5Other", True)])
    assert missing["chain"].status == "ok" and "block 4242" in missing["chain"].detail
    assert missing["registration"].status == "fail"
    assert "btcli subnets register --netuid 1" in missing["registration"].fix
    no_permit = rows([neuron(0, "5Other", True), neuron(1, me, False)])
    assert no_permit["registration"].detail == "uid 1"
    assert (
        no_permit["validator permit"].status == "warn"
        and "stake" in no_permit["validator permit"].fix
    )
    good = rows([neuron(0, me, True)], {"weights_version": 2013, "weights_rate_limit": 100})
    assert good["validator permit"].status == "ok"
    assert (
        good["weights"].status == "ok"
        and "rate limit 100 blocks (~20 min)" in good["weights"].detail
    )
    old = rows([neuron(0, me, True)], {"weights_version": 2013}, weights_version=7)
    assert old["weights"].status == "fail" and "drop --chain.weights_version" in old["weights"].fix
