"""vLLM backend: ``vllm.LLM`` inside a GB budget, CUDA_VISIBLE_DEVICES-aware.

The budget (``--neuron.llm_max_allowed_memory_in_gb``, per GPU) becomes vLLM's engine
size (``memory.plan``): a ``gpu_memory_utilization`` pool that leaves room for what
vLLM uses outside it, and max_num_seqs, max_num_batched_tokens and max_model_len small
enough for the weights, so that a validator can share a GPU with a miner. The budget is
everything the process holds on the GPU (its CUDA context and the relevance embedder on
the GPU included; what a 7B model needs: benchmarks/results/memory-constants.md). A
budget that cannot work is refused before vLLM starts, with the whole process's figure
that would. On one
GPU vLLM's engine core runs in this process (``engine_in_process``): one CUDA context
instead of two, and one import of vLLM at start. Compile caches live under the state
folder, so a restart skips torch.compile.
``--neuron.gpus N`` is tensor parallel over the first N visible devices;
``--neuron.device cuda:K`` picks the K-th visible device by narrowing
CUDA_VISIBLE_DEVICES (ordinals or UUIDs) before CUDA starts. More GPUs than this host
shows means a Ray cluster.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import asdict, dataclass

from prompting import compat
from prompting.llms import memory
from prompting.llms.base import (
    LLM,
    CheckResult,
    Finding,
    Generation,
    Host,
    LLMError,
    LLMStats,
    Prompt,
    Sampling,
    Scored,
    entropy_from_top,
    render_chat,
    score_pairs,
)
from prompting.llms.embedded import resolve_model

log = logging.getLogger(__name__)
# Top log-probabilities asked per position when scoring: the entropy the fluency judge
# compares surprisal with is computed from them (``entropy_from_top``).
SCORE_TOP_K = 20

# Arguments we pass, as named by vllm 0.24's LLM.__init__ / EngineArgs; the test
# checks them against the installed class when vllm is importable.
VLLM_ARGUMENTS = (
    "model",
    "tokenizer",
    "tensor_parallel_size",
    "dtype",
    "quantization",
    "seed",
    "gpu_memory_utilization",
    "enforce_eager",
    "max_model_len",
    "max_num_seqs",
    "max_num_batched_tokens",
    "compilation_config",
    "distributed_executor_backend",
    "disable_log_stats",
)


def narrow_visible_devices(device: str, gpus: int, env_value: str | None) -> str | None:
    """The CUDA_VISIBLE_DEVICES value that makes ``device`` logical device 0.

    Returns None when nothing needs to change ('auto'/'cuda'/'cuda:0').
    """
    if not device.startswith("cuda:") or device == "cuda:0":
        return None
    first = int(device.split(":")[1])
    visible = compat.parse_visible_devices(env_value)
    return ",".join(visible.physical(first + i) for i in range(gpus))


# Compile caches kept under the state folder, so that a restart of the same validator
# (the same --neuron.full_path) skips torch.compile and Triton autotuning; a variable
# already set by the operator wins.
COMPILE_CACHES = {
    "VLLM_CACHE_ROOT": "vllm",
    "TORCHINDUCTOR_CACHE_DIR": "inductor",
    "TRITON_CACHE_DIR": "triton",
}


def keep_compile_caches(state_dir: str, environ: dict | None = None) -> dict[str, str]:
    """Point vLLM's, Inductor's and Triton's caches under ``<state>/cache``; returns them."""
    environ = os.environ if environ is None else environ
    root = os.path.join(os.path.expanduser(state_dir), "cache")
    for name, sub in COMPILE_CACHES.items():
        environ.setdefault(name, os.path.join(root, sub))
    return {name: environ[name] for name in COMPILE_CACHES}


# vLLM runs its engine core in a process of its own unless this variable is 0. On one GPU
# the vllm backend runs it in the validator's process instead: the second process costs a
# second CUDA context (memory-constants.md, CUDA_CONTEXT_BYTES) and imports torch and
# vLLM again at every start. An operator's own setting wins.
ENGINE_PROCESS_VARIABLE = "VLLM_ENABLE_V1_MULTIPROCESSING"


def engine_in_process(gpus: int, executor: str = "auto", environ: dict | None = None) -> bool:
    """Whether vLLM's engine core runs inside the vllm backend's (the validator's)
    process: on one GPU with vLLM's own executor, unless the operator set
    VLLM_ENABLE_V1_MULTIPROCESSING to 1 (a Ray executor puts the model in a Ray worker,
    a process of its own, anyway)."""
    environ = os.environ if environ is None else environ
    if gpus != 1 or executor == "ray":
        return False
    return environ.get(ENGINE_PROCESS_VARIABLE, "0").strip() in ("0", "")


def refusal(fit: memory.Fit, budget_gb: float, fp8: memory.Fit | None = None) -> Finding:
    """Why a budget is refused, part by part, and the whole process's figure that works
    (the smallest engine size); ``fp8``: the same plan quantized, offered as a fix. One
    text for the engine's start (an LLMError) and for check_env (``VLLM.fit``)."""
    fix = (
        f"raise --neuron.llm_max_allowed_memory_in_gb to {fit.needed_gb:.1f}, lower "
        "--neuron.max_model_len, add --neuron.gpus, or use --neuron.quantization"
    )
    if fp8 is not None:
        fix += f" fp8 (needs {fp8.needed_gb:.1f})"
    return Finding(
        f"the validator's process needs about {fit.needed_gb:.1f} GB per GPU "
        f"({fit.breakdown()}) but the budget is {budget_gb:g} GB",
        fix,
    )


def embedder_on_gpu(config) -> bool:
    """Whether the relevance embedder shares the GPU with the model (any device but the
    CPU: on a vLLM machine ``auto`` is the GPU)."""
    reward = getattr(config, "reward", None)
    return reward is not None and reward.device != "cpu"


@dataclass(frozen=True)
class EngineFlags:
    """The ``--neuron.*`` flags that size and start the vLLM engine, in one list (as
    vLLM's own ``EngineArgs``): made from the config once (``from_config``), taken by
    ``VLLM`` and by ``build_engine_args`` (and so by ``scripts/vllm_serve.py``) alike,
    so that a new flag is added here and nowhere else."""

    budget_gb: float  # --neuron.llm_max_allowed_memory_in_gb, per GPU
    gpus: int = 1
    max_model_len: int | None = None
    dtype: str = "auto"
    quantization: str = "none"
    enforce_eager: bool = False
    executor: str = "auto"  # --neuron.distributed_executor
    seed: int | None = None

    @classmethod
    def from_config(cls, config) -> EngineFlags:
        n = config.neuron
        return cls(
            budget_gb=n.llm_max_allowed_memory_in_gb,
            gpus=n.gpus,
            max_model_len=n.max_model_len,
            dtype=n.dtype,
            quantization=n.quantization,
            enforce_eager=n.enforce_eager,
            executor=n.distributed_executor,
            seed=n.seed,
        )


def engine_flags(config) -> dict:
    """``EngineFlags.from_config`` as keyword arguments (``build_engine_args(**...)``)."""
    return asdict(EngineFlags.from_config(config))


def build_engine_args(
    *,
    model_path: str,
    config_json: dict | None,
    device_total_bytes: int,
    device_free_bytes: int | None = None,
    local_gpu_count: int,
    engine_in_process: bool = False,
    embedder_on_gpu: bool = False,
    flags: EngineFlags | None = None,
    **flag_values,
) -> dict:
    """Map our flags (``flags``, or ``EngineFlags``' fields as keywords) to ``vllm.LLM``
    keyword arguments, refusing budgets that cannot work.

    The engine's size comes from the budget (``memory.plan``): on a small budget fewer
    sequences, smaller prefill chunks and the context the tasks need leave room for the
    weights; CUDA graphs stay on unless ``enforce_eager`` (eager mode was slower and
    saved no memory: benchmarks/results/memory-constants.md). With ``engine_in_process``
    vLLM's engine core shares the caller's CUDA context, so the pool can be larger by
    one context; ``embedder_on_gpu``: the relevance embedder's share comes off the pool."""
    f = flags if flags is not None else EngineFlags(**flag_values)
    budget_gb = f.budget_gb
    total_gb = device_total_bytes / memory.GB
    if budget_gb > total_gb:
        raise LLMError(
            f"--neuron.llm_max_allowed_memory_in_gb {budget_gb:g} exceeds the "
            f"{total_gb:.1f} GB of the visible GPU; use at most {total_gb * 0.95:.1f}"
        )
    if device_free_bytes is not None and budget_gb * memory.GB > device_free_bytes:
        # Another process holds part of the GPU (or the card is smaller than the default
        # budget, e.g. a 24 GB card less its CUDA contexts): plan for what is free.
        free_gb = device_free_bytes / memory.GB
        log.warning(
            "budget %g GB exceeds the %.1f GB free on the GPU; planning for %.1f GB",
            budget_gb,
            free_gb,
            free_gb,
        )
        budget_gb = free_gb
    vllm_dtype = "float16" if f.dtype == "auto" else f.dtype
    if config_json is not None:

        def plan(quantization: str, budget: float) -> memory.Fit:
            return memory.plan(
                memory.ModelShape.from_config(config_json),
                budget,
                f.max_model_len,
                tensor_parallel=f.gpus,
                dtype=vllm_dtype,
                quantization=quantization,
                engine_in_process=engine_in_process,
                embedder_on_gpu=embedder_on_gpu,
            )

        fit = plan(f.quantization, budget_gb)
        if not fit.fits:  # budget 0: the smallest engine size quantized
            fp8 = plan("fp8", 0) if f.quantization == "none" else None
            finding = refusal(fit, budget_gb, fp8)
            raise LLMError(f"{finding.message}: {finding.fix}")
        sizes = dict(
            max_model_len=fit.max_model_len,
            max_num_seqs=fit.max_num_seqs,
            max_num_batched_tokens=fit.max_num_batched_tokens,
        )
        if not f.enforce_eager:
            graphs = memory.graph_batch_sizes(fit.max_num_seqs)
            sizes["compilation_config"] = {"cudagraph_capture_sizes": graphs}
        utilization = fit.utilization(device_total_bytes)
    else:  # no config.json on disk: vLLM's own sizes, the pool less its default outside share
        sizes = {"max_model_len": f.max_model_len} if f.max_model_len else {}
        outside = memory.outside_pool_bytes(
            memory.ENGINE_SIZES[0][0], engine_in_process
        ) + memory.process_bytes(embedder_on_gpu)
        utilization = min(
            memory.MAX_UTILIZATION, (budget_gb * memory.GB - outside) / device_total_bytes
        )
    if f.executor == "auto":
        executor_backend = "ray" if f.gpus > local_gpu_count else None
    else:
        executor_backend = f.executor
    args = dict(
        model=model_path,
        tokenizer=model_path,
        tensor_parallel_size=f.gpus,
        dtype=vllm_dtype,
        quantization=None if f.quantization == "none" else f.quantization,
        seed=0 if f.seed is None else f.seed,
        gpu_memory_utilization=round(utilization, 4),
        enforce_eager=f.enforce_eager,
        disable_log_stats=True,
        **sizes,
    )
    if executor_backend:
        args["distributed_executor_backend"] = executor_backend
    return args


def serve_flags(args: dict) -> list[str]:
    """The same engine arguments as ``vllm serve`` command-line flags, so that a server
    started for several validators gets the budget arithmetic too."""
    flags = [args["model"]]
    for key, value in args.items():
        if key in ("model", "tokenizer", "disable_log_stats") or value is None:
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            flags += [flag] if value else []
        elif isinstance(value, dict):
            flags += [flag, json.dumps(value, separators=(",", ":"))]
        else:
            flags += [flag, str(value)]
    return flags


def prepare_process(flags: EngineFlags, device: str, state_dir: str) -> tuple[dict, bool]:
    """What must be set in this process's environment before CUDA and vLLM start: the
    uvloop guard, compile caches under the state folder, CUDA_VISIBLE_DEVICES narrowed
    to ``device``, and vLLM's engine core in this process on one GPU. Returns the
    caches and whether the engine core runs in this process."""
    compat.guard_event_loop_policy()
    caches = keep_compile_caches(state_dir)
    narrowed = narrow_visible_devices(device, flags.gpus, os.environ.get("CUDA_VISIBLE_DEVICES"))
    if narrowed is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = narrowed
    in_process = engine_in_process(flags.gpus, flags.executor)
    if in_process:
        os.environ[ENGINE_PROCESS_VARIABLE] = "0"
    return caches, in_process


def start_engine(args: dict, model_id: str, budget_gb: float):
    """``vllm.LLM(**args)``, its memory errors as an LLMError that names the budget."""
    log.info("vllm: %s", {k: v for k, v in args.items() if k != "tokenizer"})
    from vllm import LLM as VllmLLM

    try:
        return VllmLLM(**args)
    except (ValueError, RuntimeError) as exc:  # vLLM raises these for memory problems
        raise LLMError(
            f"vLLM could not start {model_id!r} within {budget_gb:g} GB "
            f"(gpu_memory_utilization={args['gpu_memory_utilization']}): {exc}"
        ) from exc


def prompt_logprob_at(positions: Sequence, total: int, at: int):
    """The entry of ``positions`` (a request's ``prompt_logprobs``) for the token at
    position ``at`` of its ``total``-token prompt, or None. vLLM 0.24 lists the positions
    it computed only: ``[None]``, then one entry per position after the request's prefix
    cache hit (a hit of C tokens: positions C+1 onwards, position C itself predicted from
    a cached state), so the list is the prompt's length less the hit (measured on an
    H100: 104 entries for a 600-token prompt whose first 496 came from the cache)."""
    index = at - (total - len(positions))
    return positions[index] if 0 < index < len(positions) else None


def sampling_params(sampling: Sampling):
    from vllm import SamplingParams

    return SamplingParams(
        max_tokens=sampling.max_tokens,
        temperature=sampling.temperature,
        top_p=sampling.top_p if sampling.temperature > 0 else 1.0,
        top_k=sampling.top_k,
        repetition_penalty=sampling.repetition_penalty,
        seed=sampling.seed,
        ignore_eos=sampling.ignore_eos,
    )


class EngineThread:
    """The one thread that drives a shared ``vllm.LLM``: callers on any thread hand it
    prompts with their parameters (``run``) and wait; between two engine steps it adds
    whatever arrived, so requests from several callers (challenge builds, the fluency
    judge's reads) join the running batch at once, vLLM's continuous batching, instead
    of each ``LLM.generate`` call running its batch to the end before the next starts.
    ``vllm.LLM`` is not thread-safe: once this thread runs, nothing else touches it.
    ``busy_s``: time spent in engine steps (the GPU's work and vLLM's scheduling)."""

    JOIN_S = 30.0

    def __init__(self, llm):
        self._llm = llm
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._pending: dict[str, tuple[list, int, Future]] = {}
        self._broken: BaseException | None = None
        self.busy_s = 0.0
        self.steps = 0
        self._thread = threading.Thread(target=self._main, name="vllm-engine", daemon=True)
        self._thread.start()

    def run(self, prompts: list, params) -> list:
        """vLLM's outputs for ``prompts`` (one ``SamplingParams`` for all), in order."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("EngineThread.run called from the engine thread")
        if not self._thread.is_alive():
            raise LLMError("the vLLM engine thread has stopped (the backend was closed)")
        future: Future = Future()
        self._jobs.put((list(prompts), params, future))
        return future.result()

    def close(self) -> None:
        """Stop after the step in progress; calls still waiting fail."""
        self._jobs.put(None)
        self._thread.join(self.JOIN_S)

    def _main(self) -> None:
        engine = self._llm.llm_engine
        while True:
            busy = bool(self._pending)
            try:  # block only while nothing runs; otherwise take what has arrived
                jobs = [self._jobs.get(block=not busy)]
            except queue.Empty:
                jobs = []
            while True:
                try:
                    jobs.append(self._jobs.get_nowait())
                except queue.Empty:
                    break
            if None in jobs:
                self._fail_all(LLMError("the vLLM engine thread was closed"), jobs)
                return
            for job in jobs:
                self._add(*job)
            if not self._pending:
                continue
            if not engine.has_unfinished_requests():  # never seen; no step would end them
                self._fail_all(LLMError("vLLM dropped requests without finishing them"), [])
                continue
            start = time.perf_counter()
            try:
                outputs = engine.step()
            except Exception as exc:  # noqa: BLE001 - every caller waiting learns of it
                log.exception("vLLM engine step failed; the engine is no longer used")
                self._broken = exc
                self._fail_all(LLMError(f"vLLM engine step failed: {exc}"), [])
                continue
            finally:
                self.busy_s += time.perf_counter() - start
                self.steps += 1
            for out in outputs:
                if not out.finished:
                    continue
                entry = self._pending.pop(out.request_id, None)
                if entry is None:
                    continue
                results, index, future = entry
                results[index] = out
                if all(r is not None for r in results) and not future.done():
                    future.set_result(results)

    def _add(self, prompts: list, params, future: Future) -> None:
        if self._broken is not None:
            future.set_exception(LLMError(f"the vLLM engine failed earlier: {self._broken}"))
            return
        if not prompts:
            future.set_result([])
            return
        try:
            ids = self._llm.enqueue(prompts, params, use_tqdm=False)
        except Exception as exc:  # noqa: BLE001 - the caller's error (a prompt too long)
            future.set_exception(exc)
            return
        results: list = [None] * len(ids)
        for index, request_id in enumerate(ids):
            # enqueue returns the engine's ids, "<ours>-<8 random characters>"; outputs
            # carry ours (vllm 0.24: InputProcessor.assign_request_id)
            self._pending[request_id.split("-", 1)[0]] = (results, index, future)

    def _fail_all(self, exc: BaseException, jobs: list) -> None:
        for _, _, future in self._pending.values():
            if not future.done():
                future.set_exception(exc)
        self._pending.clear()
        for job in jobs:
            if job is not None and not job[2].done():
                job[2].set_exception(exc)


ENGINE_THREAD_ENV = "PROMPTING_ENGINE_THREAD"


def shared_engine_wanted(environ: dict | None = None) -> bool:
    """Whether the backend may be shared between threads (``VLLM.share``);
    PROMPTING_ENGINE_THREAD=off keeps every model call on the caller's one model thread."""
    environ = os.environ if environ is None else environ
    return environ.get(ENGINE_THREAD_ENV, "").strip().lower() not in ("off", "0", "no")


class VLLM(LLM):
    name = "vllm"
    own_flags = ("max_model_len", "enforce_eager", "quantization", "distributed_executor", "gpus")
    needs_gpu = True
    tensor_parallel = True
    requirement_files = ("vllm.txt",)

    @classmethod
    def missing(cls) -> str | None:
        import importlib.util

        if importlib.util.find_spec("vllm") is None:
            return (
                "--neuron.llm_backend vllm but vllm is not installed: on a GPU host run "
                "EXTRAS=vllm bash scripts/install.sh, or use --neuron.llm_backend hf"
            )
        return None

    @classmethod
    def fit(cls, config, shape: memory.ModelShape, host: Host) -> CheckResult:
        """The engine ``memory.plan`` would build in the budget, or why none fits."""
        n = config.neuron

        def plan(quantization: str, budget_gb: float) -> memory.Fit:
            return memory.plan(
                shape,
                budget_gb,
                n.max_model_len,
                n.gpus,
                quantization=quantization,
                engine_in_process=engine_in_process(n.gpus, n.distributed_executor),
                embedder_on_gpu=embedder_on_gpu(config),
            )

        budget_gb = n.llm_max_allowed_memory_in_gb
        fit = plan(n.quantization, budget_gb)
        if not fit.fits:  # budget 0: the smallest engine size quantized
            fp8 = plan("fp8", 0) if n.quantization == "none" else None
            return CheckResult(errors=[refusal(fit, budget_gb, fp8)])
        detail = (
            f"the process needs {fit.needed_gb:.1f} GB per GPU ({fit.breakdown()}); budget "
            f"{budget_gb:g} GB holds {fit.kv_capacity_tokens} KV tokens, "
            f"{fit.max_num_seqs} sequences"
        )
        total = host.gpu_total_gb
        if total is not None and budget_gb > total:
            return CheckResult(
                errors=[
                    Finding(
                        detail + f"; the GPU has {total:.1f} GB",
                        "lower --neuron.llm_max_allowed_memory_in_gb",
                    )
                ]
            )
        return CheckResult(notes=[detail])

    def __init__(
        self,
        model_id: str,
        *,
        flags: EngineFlags | None = None,
        device: str = "auto",
        state_dir: str = ".",
        embedder_on_gpu: bool = False,
        **flag_values,
    ):
        """Load ``model_id`` with ``flags`` (or ``EngineFlags``' fields as keywords:
        ``VLLM(model, budget_gb=16.5, enforce_eager=True)``) on ``device``."""
        flags = flags if flags is not None else EngineFlags(**flag_values)
        caches, in_process = prepare_process(flags, device, state_dir)
        import torch

        if not torch.cuda.is_available():
            raise LLMError(
                "the vllm backend needs a CUDA GPU; torch sees none "
                "(check CUDA_VISIBLE_DEVICES, or use --neuron.llm_backend hf)"
            )
        start = time.perf_counter()
        path = resolve_model(model_id, state_dir)
        free0, total = torch.cuda.mem_get_info(0)
        args = build_engine_args(
            model_path=path,
            config_json=memory.load_model_config(path),
            device_total_bytes=total,
            device_free_bytes=free0,
            local_gpu_count=torch.cuda.device_count(),
            engine_in_process=in_process,
            embedder_on_gpu=embedder_on_gpu,
            flags=flags,
        )
        self.engine = start_engine(args, model_id, flags.budget_gb)
        free1, _ = torch.cuda.mem_get_info(0)
        self._tokenizer = self.engine.get_tokenizer()
        self._vocab_size = len(self._tokenizer)  # the top-k's rest spreads over the others
        self._stats = LLMStats(
            backend=self.name,
            model=model_id,
            device="cuda:0",
            dtype=args["dtype"],
            load_seconds=time.perf_counter() - start,
            gpu_bytes=max(0, free0 - free1),
            extra={
                "engine_args": {k: v for k, v in args.items() if k not in ("model", "tokenizer")},
                "visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
                "engine_in_process": in_process,
                "compile_caches": caches,
            },
        )

    @classmethod
    def from_config(cls, config) -> VLLM:
        n = config.neuron
        return cls(
            n.model_id,
            flags=EngineFlags.from_config(config),
            device=n.device,
            state_dir=n.full_path,
            embedder_on_gpu=embedder_on_gpu(config),  # a server's budget leaves it out
        )

    @property
    def tokenizer(self):
        return self._tokenizer

    @property
    def stats(self) -> LLMStats:
        return self._stats

    @property
    def batch_capacity(self) -> int | None:
        return self._stats.extra["engine_args"].get("max_num_seqs")

    def generate(
        self, prompts: Sequence[Prompt], sampling: Sampling | None = None
    ) -> list[Generation]:
        if not prompts:
            return []
        sampling = sampling or Sampling()
        texts = [render_chat(self._tokenizer, p) for p in prompts]
        start = time.perf_counter()
        if self._thread is not None:
            # Token ids made on the caller's thread, as vLLM would make them (special
            # tokens added): vLLM tokenizes with truncation on, which flips the shared
            # tokenizer's state under the other threads' calls ("Already borrowed").
            from vllm.inputs import TokensPrompt

            texts = [TokensPrompt(prompt_token_ids=self._tokenizer(t).input_ids) for t in texts]
        outputs = self._run(texts, sampling_params(sampling))
        seconds = time.perf_counter() - start
        results = []
        for out in outputs:
            best = out.outputs[0]
            results.append(
                Generation(
                    text=best.text.strip(),
                    tokens=len(best.token_ids),
                    seconds=seconds,
                    prompt_tokens=len(out.prompt_token_ids),
                    finish_reason=best.finish_reason or "",
                )
            )
        return results

    # score(): let answers read their shared prompt from vLLM's prefix cache (see there).
    reuse_prompt_cache: bool = True

    def score(
        self,
        prompts: Sequence[Prompt],
        continuations: Sequence[str],
        max_tokens: int | None = None,
    ) -> list[Scored]:
        """Teacher-forced log-probabilities through vLLM's prompt log-probabilities: each
        pair runs as one prompt (prompt + continuation token ids) that generates a single
        token, and the continuation's positions are read from ``prompt_logprobs``.

        vLLM 0.24 skips reading its prefix cache for a request that asks for prompt
        logprobs (``SamplingParams.skip_reading_prefix_cache``): positions served from the
        cache get no logprobs. Only the continuation's positions matter here, so with
        ``reuse_prompt_cache`` one pair per distinct prompt runs first (its blocks enter
        the cache) and the others then read the shared prompt from it; a pair whose
        cache hit reached into its continuation (two answers that open alike) runs again
        without the cache. A step's prompt is then computed once, not once per answer."""
        # The one generated token needs a slot: prompt + continuation < max_model_len.
        context = self.engine.llm_engine.model_config.max_model_len - 1
        pairs = score_pairs(self._tokenizer, prompts, continuations, max_tokens, context)
        asked = [i for i, (_, cont) in enumerate(pairs) if cont]
        outputs: dict[int, object] = {}
        if self.reuse_prompt_cache:
            lead: dict[tuple[int, ...], int] = {}
            for i in asked:
                lead.setdefault(tuple(pairs[i][0]), i)
            outputs.update(self._prompt_logprobs(pairs, list(lead.values()), read_cache=False))
            rest = [i for i in asked if i not in outputs]
            outputs.update(self._prompt_logprobs(pairs, rest, read_cache=True))
            # Hits are whole blocks of tokens seen before; one past the prompt's last
            # token leaves continuation positions without logprobs.
            stale = [i for i in rest if (outputs[i].num_cached_tokens or 0) >= len(pairs[i][0])]
            outputs.update(self._prompt_logprobs(pairs, stale, read_cache=False))
        else:
            outputs.update(self._prompt_logprobs(pairs, asked, read_cache=False))
        results = [Scored([]) for _ in pairs]
        for i, out in outputs.items():
            prompt_ids, cont_ids = pairs[i]
            positions = out.prompt_logprobs or []
            total = len(prompt_ids) + len(cont_ids)
            logprobs, entropies = [], []
            for k, token in enumerate(cont_ids):
                at = len(prompt_ids) + k
                entry = prompt_logprob_at(positions, total, at)
                if entry is None or token not in entry:
                    raise LLMError(
                        f"vLLM returned no prompt log-probability for token {token} at "
                        f"position {at} (of {len(positions)})"
                    )
                logprobs.append(float(entry[token].logprob))
                top = [float(v.logprob) for t, v in entry.items() if v.rank <= SCORE_TOP_K]
                entropies.append(entropy_from_top(top, self._vocab_size))
            results[i] = Scored(logprobs, entropies)
        return results

    def _prompt_logprobs(self, pairs: list, indices: list[int], read_cache: bool) -> dict:
        """vLLM's outputs for ``pairs[indices]``, by index: one batch of prompts (prompt +
        continuation ids), each generating one token, with prompt_logprobs=SCORE_TOP_K
        (the prompt's own token at each position and the top-k, for the entropy)."""
        if not indices:
            return {}
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = SamplingParams(
            max_tokens=1,
            temperature=0.0,
            prompt_logprobs=SCORE_TOP_K,
            detokenize=False,
            skip_reading_prefix_cache=not read_cache,
        )
        requests = [TokensPrompt(prompt_token_ids=pairs[i][0] + pairs[i][1]) for i in indices]
        return dict(zip(indices, self._run(requests, params)))

    # --- sharing the engine between threads -------------------------------------------

    _thread: EngineThread | None = None

    def share(self) -> bool:
        """From now on ``generate`` and ``score`` may be called from any thread, several
        at once: an ``EngineThread`` drives the engine and batches all their requests
        continuously. Returns whether the backend is shared (not with
        PROMPTING_ENGINE_THREAD=off)."""
        if self._thread is None and self.engine is not None and shared_engine_wanted():
            self._thread = EngineThread(self.engine)
            log.info("vllm: the engine is driven by its own thread; calls from any thread")
        return self._thread is not None

    @property
    def shared(self) -> bool:
        return self._thread is not None

    @property
    def engine_busy_s(self) -> float:
        """Time the engine thread spent in engine steps (0 when not shared)."""
        return self._thread.busy_s if self._thread is not None else 0.0

    def _run(self, prompts: list, params) -> list:
        """vLLM's outputs for ``prompts``, in order: through the engine thread once
        shared, else one ``LLM.generate`` call on this thread."""
        if self._thread is not None:
            return self._thread.run(prompts, params)
        if self.engine is None:
            raise LLMError("the vllm backend was closed")
        return self.engine.generate(prompts, params, use_tqdm=False)

    def close(self) -> None:
        engine = getattr(self, "engine", None)
        if engine is None:
            return
        if self._thread is not None:
            self._thread.close()
            self._thread = None
        self.engine = None
        del engine
        import gc

        gc.collect()
