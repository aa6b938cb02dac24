"""vLLM backend: ``vllm.LLM`` inside a GB budget, CUDA_VISIBLE_DEVICES-aware.

The budget (``--neuron.llm_max_allowed_memory_in_gb``, per GPU) becomes
``gpu_memory_utilization`` = budget / total memory of the visible device, so a
validator can share a GPU with a miner or a second model. Before vLLM starts we
check from config.json that the budget holds the weights plus one full sequence of
KV cache and refuse with the figure that would work. ``--neuron.gpus N`` is tensor
parallel over the first N visible devices; ``--neuron.device cuda:K`` picks the
K-th visible device by narrowing CUDA_VISIBLE_DEVICES (ordinals or UUIDs) before
CUDA starts. More GPUs than this host shows means a Ray cluster.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence

from prompting import compat
from prompting.llms import memory
from prompting.llms.base import (
    LLM,
    Generation,
    LLMError,
    LLMStats,
    Prompt,
    Sampling,
    render_chat,
)
from prompting.llms.embedded import resolve_model

log = logging.getLogger(__name__)

DEFAULT_MAX_MODEL_LEN = 8192  # validator prompts are < 2k tokens; caps KV reservation
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


def build_engine_args(
    *,
    model_path: str,
    config_json: dict | None,
    budget_gb: float,
    device_total_bytes: int,
    gpus: int,
    local_gpu_count: int,
    max_model_len: int | None,
    dtype: str,
    quantization: str,
    enforce_eager: bool,
    executor: str,
    seed: int | None,
) -> dict:
    """Map our flags to ``vllm.LLM`` keyword arguments, refusing budgets that cannot work."""
    total_gb = device_total_bytes / memory.GB
    if budget_gb > total_gb:
        raise LLMError(
            f"--neuron.llm_max_allowed_memory_in_gb {budget_gb:g} exceeds the "
            f"{total_gb:.1f} GB of the visible GPU; use at most {total_gb * 0.95:.1f}"
        )
    vllm_dtype = "float16" if dtype == "auto" else dtype
    if config_json is not None:
        shape = memory.ModelShape.from_config(config_json)
        if max_model_len is None:
            max_model_len = min(shape.max_position_embeddings, DEFAULT_MAX_MODEL_LEN)
        fit = memory.plan(
            shape,
            budget_gb,
            max_model_len,
            tensor_parallel=gpus,
            dtype=vllm_dtype,
            quantization=quantization,
        )
        if not fit.fits:
            need = fit.needed_gb
            raise LLMError(
                f"model needs about {need:.1f} GB per GPU (weights "
                f"{fit.weights_bytes / memory.GB:.1f} GB + KV cache for {max_model_len} tokens "
                f"{fit.min_kv_bytes / memory.GB:.1f} GB + runtime "
                f"{fit.overhead_bytes / memory.GB:.1f} GB) "
                f"but the budget is {budget_gb:g} GB: "
                f"raise --neuron.llm_max_allowed_memory_in_gb to {need:.1f}, lower "
                "--neuron.max_model_len, add --neuron.gpus, or use --neuron.quantization"
            )
    if executor == "auto":
        executor_backend = "ray" if gpus > local_gpu_count else None
    else:
        executor_backend = executor
    args = dict(
        model=model_path,
        tokenizer=model_path,
        tensor_parallel_size=gpus,
        dtype=vllm_dtype,
        quantization=None if quantization == "none" else quantization,
        seed=0 if seed is None else seed,
        gpu_memory_utilization=round(memory.utilization(budget_gb, device_total_bytes), 4),
        enforce_eager=enforce_eager,
        max_model_len=max_model_len,
        disable_log_stats=True,
    )
    if executor_backend:
        args["distributed_executor_backend"] = executor_backend
    return args


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


class VLLM(LLM):
    name = "vllm"

    def __init__(
        self,
        model_id: str,
        *,
        budget_gb: float,
        gpus: int = 1,
        device: str = "auto",
        max_model_len: int | None = None,
        dtype: str = "auto",
        quantization: str = "none",
        enforce_eager: bool = False,
        executor: str = "auto",
        seed: int | None = None,
        state_dir: str = ".",
    ):
        compat.guard_event_loop_policy()
        narrowed = narrow_visible_devices(device, gpus, os.environ.get("CUDA_VISIBLE_DEVICES"))
        if narrowed is not None:
            os.environ["CUDA_VISIBLE_DEVICES"] = narrowed
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
            budget_gb=budget_gb,
            device_total_bytes=total,
            gpus=gpus,
            local_gpu_count=torch.cuda.device_count(),
            max_model_len=max_model_len,
            dtype=dtype,
            quantization=quantization,
            enforce_eager=enforce_eager,
            executor=executor,
            seed=seed,
        )
        log.info("vllm: %s", {k: v for k, v in args.items() if k != "tokenizer"})
        from vllm import LLM as VllmLLM

        try:
            self.engine = VllmLLM(**args)
        except (ValueError, RuntimeError) as exc:  # vLLM raises these for memory problems
            raise LLMError(
                f"vLLM could not start {model_id!r} within {budget_gb:g} GB "
                f"(gpu_memory_utilization={args['gpu_memory_utilization']}): {exc}"
            ) from exc
        free1, _ = torch.cuda.mem_get_info(0)
        self._tokenizer = self.engine.get_tokenizer()
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
            },
        )

    @classmethod
    def from_config(cls, config) -> VLLM:
        n = config.neuron
        return cls(
            n.model_id,
            budget_gb=n.llm_max_allowed_memory_in_gb,
            gpus=n.gpus,
            device=n.device,
            max_model_len=n.max_model_len,
            dtype=n.dtype,
            quantization=n.quantization,
            enforce_eager=n.enforce_eager,
            executor=n.distributed_executor,
            seed=n.seed,
            state_dir=n.full_path,
        )

    @property
    def tokenizer(self):
        return self._tokenizer

    @property
    def stats(self) -> LLMStats:
        return self._stats

    def generate(
        self, prompts: Sequence[Prompt], sampling: Sampling | None = None
    ) -> list[Generation]:
        if not prompts:
            return []
        sampling = sampling or Sampling()
        texts = [render_chat(self._tokenizer, p) for p in prompts]
        start = time.perf_counter()
        outputs = self.engine.generate(texts, sampling_params(sampling), use_tqdm=False)
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

    def close(self) -> None:
        engine = getattr(self, "engine", None)
        if engine is None:
            return
        self.engine = None
        del engine
        import gc

        gc.collect()
