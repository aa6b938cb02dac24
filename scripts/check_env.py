"""Environment doctor: run before starting a validator, with the validator's flags.

    python scripts/check_env.py --neuron.llm_backend vllm --chain.network finney
    python scripts/check_env.py --json

Prints one row per check (ok / warn / fail) with a one-line fix; exits 1 if any fails.
Each check is a small function that returns Check rows (ok / warn / fail, a detail and
a one-line fix). Checks read installed versions from package metadata (no imports of
heavy packages), GPUs from nvidia-smi, and model shapes from config.json, so the whole
run stays fast and works with torch or vllm missing. What a backend needs (its library,
its memory fit, its flags' rules) its class says (``prompting/llms/base.py``). The
installed plug-ins are listed by name, none imported.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

from prompting import compat
from prompting.config import DEFAULT_MODEL, TINY_MODEL, parse_config
from prompting.llms import memory, preflight
from prompting.llms.base import LLM, CheckResult, Host, LLMError, backend_class
from prompting.llms.embedded import missing_model, smollm2_path

OK, WARN, FAIL = "ok", "warn", "fail"
REPO = Path(__file__).resolve().parent.parent
ANGLE_PIN = "transformers==5.3.0"  # what angle-emb 0.6.1 declares
VLLM_TORCH = {"0.24": "2.11.0"}  # vllm minor -> the torch it was built against


@dataclass
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def version_of(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def read_requirements(names: list[str], root: Path = REPO) -> list[Requirement]:
    reqs = []
    for name in names:
        for line in (root / "requirements" / name).read_text().splitlines():
            line = line.split("#")[0].split(" --")[0].strip()  # drop pip options (--hash)
            if line:
                reqs.append(Requirement(line))
    return reqs


def requirement_files(backend: type[LLM]) -> list[str]:
    return ["base.txt", "nodeps.txt", *backend.requirement_files]


# --- checks ------------------------------------------------------------------------


def check_python(version=sys.version_info) -> list[Check]:
    text = f"{version[0]}.{version[1]}.{version[2]} on {platform.system()} {platform.machine()}"
    if (3, 10) <= tuple(version[:2]) <= (3, 12):
        return [Check("python", OK, text)]
    return [Check("python", FAIL, text, "use Python 3.10, 3.11 or 3.12")]


def check_requirements(reqs: list[Requirement], installed=version_of) -> list[Check]:
    rows = []
    for req in reqs:
        have = installed(req.name)
        if have is None:
            rows.append(
                Check(
                    f"pkg {req.name}",
                    FAIL,
                    f"missing (need {req.specifier or 'any'})",
                    f"pip install '{req}'",
                )
            )
        elif req.specifier and not req.specifier.contains(Version(have), prereleases=True):
            rows.append(
                Check(
                    f"pkg {req.name}",
                    FAIL,
                    f"{have} outside {req.specifier}",
                    f"pip install '{req}'",
                )
            )
        else:
            rows.append(Check(f"pkg {req.name}", OK, have))
    return rows


def check_angle_transformers(installed=version_of) -> list[Check]:
    """angle-emb pins transformers==5.3.0; vLLM needs newer. We need neither pin kept."""
    angle, tf, vllm = installed("angle-emb"), installed("transformers"), installed("vllm")
    if angle is None:
        return [
            Check(
                "angle-emb vs transformers",
                FAIL,
                "angle-emb missing",
                "pip install --no-deps -r requirements/nodeps.txt",
            )
        ]
    detail = f"angle-emb {angle} declares {ANGLE_PIN}; transformers {tf}"
    if vllm:
        detail += f"; vllm {vllm} needs transformers>=5.5.3"
    if tf is None:
        return [Check("angle-emb vs transformers", FAIL, detail, "pip install -e .")]
    if Version(tf) < Version("5.3.0") or Version(tf).major >= 6:
        return [
            Check("angle-emb vs transformers", FAIL, detail, "pip install 'transformers>=5.5.3,<6'")
        ]
    if vllm and Version(tf) < Version("5.5.3"):
        return [
            Check(
                "angle-emb vs transformers",
                FAIL,
                detail + " (angle-emb's pin won)",
                "pip install 'transformers>=5.5.3,<6' && "
                "pip install --no-deps -r requirements/nodeps.txt",
            )
        ]
    return [
        Check("angle-emb vs transformers", OK, detail + "; compat imports AnglE without its pins")
    ]


def check_pydantic(installed=version_of) -> list[Check]:
    have = installed("pydantic")
    if have is None or Version(have).major < 2:
        return [
            Check(
                "pydantic",
                FAIL,
                f"{have or 'missing'}; the miner API needs pydantic 2",
                compat.PYDANTIC_FIX,
            )
        ]
    return [Check("pydantic", OK, f"{have} (v2 API)")]


def check_uvloop(installed=version_of) -> list[Check]:
    have = installed("uvloop")
    if have is None:
        return [Check("uvloop", OK, "not installed; asyncio's default loop is used")]
    if compat.event_loop_policy_is_uvloop():
        return [
            Check(
                "uvloop",
                WARN,
                f"{have}: the event-loop policy is uvloop's; vLLM threads "
                "would fail with 'There is no current event loop in thread'",
                "nothing to do: prompting.compat restores the default policy at start",
            )
        ]
    return [
        Check(
            "uvloop",
            OK,
            f"{have} installed, default asyncio policy active; "
            "compat guards vLLM if a library switches the policy",
        )
    ]


def check_torch(installed=version_of) -> list[Check]:
    have = installed("torch")
    if have is None:
        return [
            Check(
                "torch",
                FAIL,
                "missing",
                "pip install torch==2.13.0 (CPU) or the CUDA build vllm pins",
            )
        ]
    rows = [Check("torch", OK, f"{have}; {torch_runtime()}")]
    vllm = installed("vllm")
    if vllm:
        minor = ".".join(vllm.split(".")[:2])
        want = VLLM_TORCH.get(minor)
        if want and have.split("+")[0] != want:
            rows.append(
                Check(
                    "vllm vs torch",
                    FAIL,
                    f"vllm {vllm} is built for torch {want}, found {have}",
                    f"pip install 'torch=={want}'",
                )
            )
        else:
            rows.append(Check("vllm vs torch", OK, f"vllm {vllm} with torch {have}"))
    return rows


def torch_runtime() -> str:
    """CUDA build and runtime as torch sees them (imports torch: ~1 s)."""
    try:
        import torch
    except Exception as exc:  # noqa: BLE001 - a broken install is worth reporting, not raising
        return f"import failed: {exc}"
    if torch.version.cuda is None:
        return "CPU build"
    if not torch.cuda.is_available():
        return f"CUDA {torch.version.cuda} build, no usable GPU/driver"
    return f"CUDA {torch.version.cuda} build, {torch.cuda.device_count()} GPU(s) usable"


def nvidia_smi() -> tuple[list[dict], list[dict]] | None:
    """(gpus, processes) from nvidia-smi, or None without a driver."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [
                exe,
                "--query-gpu=index,uuid,name,memory.total,memory.used",
                "--format=csv,noheader,nounits",
            ],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
        procs = subprocess.run(
            [
                exe,
                "--query-compute-apps=gpu_uuid,pid,process_name,used_memory",
                "--format=csv,noheader,nounits",
            ],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    gpus = []
    for line in out.strip().splitlines():
        index, uuid, name, total, used = [x.strip() for x in line.split(",")]
        gpus.append(
            {
                "index": int(index),
                "uuid": uuid,
                "name": name,
                "total_gb": float(total) * 2**20 / 1e9,
                "used_gb": float(used) * 2**20 / 1e9,
            }
        )
    apps = []
    for line in procs.strip().splitlines():
        parts = [x.strip() for x in line.split(",")]
        if len(parts) == 4:
            apps.append(
                {
                    "uuid": parts[0],
                    "pid": parts[1],
                    "name": parts[2],
                    "used_gb": float(parts[3]) * 2**20 / 1e9 if parts[3].isdigit() else 0,
                }
            )
    return gpus, apps


def visible_gpus(gpus: list[dict], env_value: str | None) -> list[dict] | str:
    """The GPUs this process sees, in logical order, or an error string."""
    visible = compat.parse_visible_devices(env_value)
    if visible.entries is None:
        return gpus
    picked = []
    for entry in visible.entries:
        gpu = compat.match_device(entry, gpus)
        if gpu is None:
            return f"CUDA_VISIBLE_DEVICES entry {entry!r} matches no GPU"
        picked.append(gpu)
    return picked


def check_gpus(config, smi=None, env_value=None) -> list[Check]:
    backend = backend_class(config.neuron.llm_backend)
    needs_gpu = backend.needs_gpu or config.neuron.device.startswith("cuda")
    smi = nvidia_smi() if smi is None else smi
    if smi is None or not smi[0]:
        status = FAIL if needs_gpu else OK
        return [
            Check(
                "gpus",
                status,
                "no NVIDIA GPU visible",
                "run on a GPU host or use --neuron.llm_backend hf --neuron.device cpu"
                if needs_gpu
                else "",
            )
        ]
    gpus, apps = smi
    seen = visible_gpus(
        gpus, os.environ.get("CUDA_VISIBLE_DEVICES") if env_value is None else env_value
    )
    if isinstance(seen, str):
        return [
            Check("gpus", FAIL, seen, "list GPUs with nvidia-smi -L and fix CUDA_VISIBLE_DEVICES")
        ]
    rows = []
    for logical, gpu in enumerate(seen):
        holders = [
            f"{a['name']}({a['pid']}) {a['used_gb']:.1f} GB"
            for a in apps
            if a["uuid"] == gpu["uuid"]
        ]
        free = gpu["total_gb"] - gpu["used_gb"]
        detail = (
            f"cuda:{logical} = GPU {gpu['index']} {gpu['name']} {gpu['uuid'][:12]}: "
            f"{free:.1f} of {gpu['total_gb']:.1f} GB free"
            + (f"; held by {', '.join(holders)}" if holders else "")
        )
        busy = logical < config.neuron.gpus and free < config.neuron.llm_max_allowed_memory_in_gb
        rows.append(
            Check(
                f"gpu {logical}",
                WARN if busy else OK,
                detail,
                "free the GPU, lower --neuron.llm_max_allowed_memory_in_gb or pick "
                "another with CUDA_VISIBLE_DEVICES"
                if busy
                else "",
            )
        )
    if config.neuron.gpus > len(seen) and config.neuron.distributed_executor != "ray":
        rows.append(
            Check(
                "tensor parallel",
                FAIL,
                f"--neuron.gpus {config.neuron.gpus} but {len(seen)} GPU(s) visible",
                "lower --neuron.gpus or use --neuron.distributed_executor ray",
            )
        )
    return rows


def check_fit(
    config, gpu_total_gb: float | None = None, ram_gb: float | None = None
) -> list[Check]:
    n = config.neuron
    if n.model_id == TINY_MODEL:
        return [Check("model fit", OK, "tiny CPU model (a few MB)")]
    source = n.model_id
    if n.model_id == DEFAULT_MODEL:
        problem = missing_model(n.model_id)
        if problem:
            return [Check("model fit", FAIL, problem, "bash scripts/install.sh")]
        source = str(smollm2_path(n.full_path))
        if not os.path.isdir(source):
            return [
                Check(
                    "model fit",
                    OK,
                    f"{n.model_id}: SmolLM2-135M-Instruct, 0.27 GB fp16, converted from its "
                    f"wheel on first use into {source}",
                )
            ]
    cfg = memory.load_model_config(source)
    if cfg is None:
        return [
            Check(
                "model fit",
                WARN,
                f"no config.json for {n.model_id} on disk; fit unknown",
                "download the model first (huggingface-cli download MODEL)",
            )
        ]
    shape = memory.ModelShape.from_config(cfg)
    host = Host(gpu_total_gb=gpu_total_gb, ram_gb=ram_gb)
    return rows_of("model fit", backend_class(n.llm_backend).fit(config, shape, host))


def rows_of(name: str, result: CheckResult) -> list[Check]:
    """A backend's findings as rows: errors fail, warnings warn, notes are ok."""
    return (
        [Check(name, FAIL, f.message, f.fix) for f in result.errors]
        + [Check(name, WARN, f.message, f.fix) for f in result.warnings]
        + [Check(name, OK, note) for note in result.notes]
    )


def check_flags(config) -> list[Check]:
    """The validator's own start-up check of the model flags, as rows."""
    try:
        warnings = preflight.check(config, config.neuron.model_id != TINY_MODEL)
    except LLMError as exc:
        return [Check("model flags", FAIL, str(exc))]
    if not warnings:
        return [Check("model flags", OK, f"{config.neuron.llm_backend} + {config.neuron.model_id}")]
    return [Check("model flags", WARN, w) for w in warnings]


def check_wallet(config) -> list[Check]:
    if config.chain.network == "local":
        return [Check("wallet", OK, "local subnet: wallets are created under the state folder")]
    key = (
        Path(config.wallet.path).expanduser()
        / config.wallet.name
        / "hotkeys"
        / config.wallet.hotkey
    )
    if not key.is_file():
        return [
            Check(
                "wallet",
                FAIL,
                f"no hotkey file {key}",
                f"btcli wallet new-hotkey --wallet.name {config.wallet.name} "
                f"--wallet.hotkey {config.wallet.hotkey}",
            )
        ]
    if not os.access(key, os.R_OK):
        return [Check("wallet", FAIL, f"{key} is not readable", f"chmod 600 {key}")]
    return [Check("wallet", OK, f"hotkey {key}")]


def check_chain(config, offline: bool, client_factory=None) -> list[Check]:
    """A real network: reachable; this hotkey registered on the netuid, with a validator
    permit and stake; the weights rate limit and version the validator will follow."""
    net, netuid = config.chain.network, config.netuid
    if net == "local" or offline:
        return [Check("chain", OK, f"{net}: not contacted" + (" (--offline)" if offline else ""))]
    from prompting.chain.bittensor import BittensorChain

    chain = BittensorChain(
        net, netuid, None, timeout=min(config.chain.timeout, 10), client_factory=client_factory
    )
    try:
        block = chain.block()
        neurons = chain.metagraph()
        params = chain.hyperparameters()
    except Exception as exc:  # noqa: BLE001 - any failure is the row's content
        return [
            Check(
                "chain",
                FAIL,
                f"{net} netuid {netuid}: {exc}",
                "check the network / endpoint and --netuid, or --offline to skip",
            )
        ]
    rows = [Check("chain", OK, f"{net} reachable, block {block}, netuid {netuid}")]
    hotkey = _hotkey_ss58(config)
    if hotkey is None:  # the wallet row says why
        return rows
    me = next((n for n in neurons if n.hotkey == hotkey), None)
    if me is None:
        wallet = f"--wallet.name {config.wallet.name} --wallet.hotkey {config.wallet.hotkey}"
        return rows + [
            Check(
                "registration",
                FAIL,
                f"hotkey {hotkey} is not registered on netuid {netuid}",
                f"btcli subnets register --netuid {netuid} {wallet}",
            )
        ]
    rows.append(Check("registration", OK, f"uid {me.uid}"))
    if me.validator_permit:
        rows.append(Check("validator permit", OK, f"stake {me.stake:,.1f}"))
    else:
        rows.append(
            Check(
                "validator permit",
                WARN,
                f"none (stake {me.stake:,.1f}): the chain will refuse this hotkey's weights",
                "add stake to this hotkey (btcli stake add) until it earns a permit",
            )
        )
    limit = int(params.get("weights_rate_limit") or 0)
    version = params.get("weights_version")
    sent = config.chain.weights_version
    detail = (
        f"rate limit {limit} blocks (~{limit * chain.block_seconds / 60:.0f} min), "
        f"weights_version {version}, commit-reveal "
        f"{'on' if params.get('commit_reveal_weights_enabled') else 'off'}"
    )
    if sent is not None and version is not None and sent < int(version):
        return rows + [
            Check(
                "weights",
                FAIL,
                f"{detail}; --chain.weights_version {sent} is older: weights will be refused",
                "drop --chain.weights_version (the subnet's is sent by default)",
            )
        ]
    return rows + [Check("weights", OK, detail)]


def _hotkey_ss58(config) -> str | None:
    """This wallet's hotkey address, or None when the key file cannot be read."""
    try:
        import bittensor as bt

        wallet = bt.Wallet(
            name=config.wallet.name, hotkey=config.wallet.hotkey, path=config.wallet.path
        )
        return wallet.hotkey.ss58_address
    except Exception:  # noqa: BLE001 - check_wallet reports the cause
        return None


def check_wandb(config, installed=version_of) -> list[Check]:
    if config.wandb.off:
        return [Check("wandb", OK, "off")]
    if installed("wandb") is None:
        return [
            Check(
                "wandb", WARN, "not installed; events still go to events.jsonl", "pip install wandb"
            )
        ]
    mode = os.environ.get("WANDB_MODE") or (
        "offline"
        if config.wandb.offline
        or (config.wandb.offline is None and config.chain.network == "local")
        else "online"
    )
    if mode == "online" and not (
        os.environ.get("WANDB_API_KEY") or (Path.home() / ".netrc").is_file()
    ):
        return [
            Check(
                "wandb",
                WARN,
                "online mode but not logged in",
                "wandb login, or --wandb.offline / --wandb.off",
            )
        ]
    return [Check("wandb", OK, f"mode {mode}")]


def run_all(config, offline: bool = False) -> list[Check]:
    rows = check_python()
    rows += check_torch()
    backend = backend_class(config.neuron.llm_backend)
    rows += check_requirements(read_requirements(requirement_files(backend)))
    rows += check_angle_transformers() + check_pydantic() + check_uvloop()
    problem = backend.missing()
    if problem:
        rows.append(Check(backend.name, FAIL, problem))
    smi = nvidia_smi()
    rows += check_gpus(config, smi=smi or ([], []))
    total = None
    if smi and smi[0]:
        seen = visible_gpus(smi[0], os.environ.get("CUDA_VISIBLE_DEVICES"))
        if not isinstance(seen, str) and seen:
            total = seen[0]["total_gb"]
    ram = None
    try:
        import psutil

        ram = psutil.virtual_memory().total / 1e9
    except ImportError:
        pass
    rows += check_flags(config) + check_fit(config, gpu_total_gb=total, ram_gb=ram)
    rows += check_wallet(config) + check_chain(config, offline) + check_wandb(config)
    return rows + check_plugins()


def render(rows: list[Check], color: bool) -> str:
    paint = {OK: "\033[32m", WARN: "\033[33m", FAIL: "\033[31m"}
    width = max(len(r.name) for r in rows)
    lines = []
    for r in rows:
        status = f"{paint[r.status]}{r.status:<4}\033[0m" if color else f"{r.status:<4}"
        lines.append(f"{status}  {r.name:<{width}}  {r.detail}")
        if r.fix:
            lines.append(f"{'':4}  {'':<{width}}  fix: {r.fix}")
    fails = sum(r.status == FAIL for r in rows)
    warns = sum(r.status == WARN for r in rows)
    lines.append(f"\n{len(rows)} checks: {fails} failed, {warns} warnings")
    return "\n".join(lines)


def check_plugins() -> list[Check]:
    """Every extension point's names, plug-ins from other distributions included (by
    name: none is imported here, so a broken one is found when it is chosen)."""
    from prompting import registry

    return [
        Check(r.group, OK, ", ".join(r.names()))
        for r in (registry.BACKENDS, registry.TASKS, registry.REWARDS, registry.STRATEGIES)
    ]


def extra(parser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--offline", action="store_true", help="do not contact the chain")


def main(argv=None) -> int:
    config = parse_config(
        "check_env", argv, prog="check_env.py", description=__doc__.split("\n")[0], extra=extra
    )
    rows = run_all(config, offline=config.offline)
    if config.json:
        print(json.dumps([r.to_dict() for r in rows], indent=1))
    else:
        print(render(rows, color=sys.stdout.isatty()))
    return 1 if any(r.status == FAIL for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
