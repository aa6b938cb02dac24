"""GPU memory arithmetic for a decoder-only model: weights, KV cache, engine size.

Used by the vllm backend (to turn a GB budget into vLLM's engine arguments: the
``gpu_memory_utilization`` pool, max_num_seqs, max_num_batched_tokens and max_model_len,
so that a 7B fp16 model runs on a 16 GB budget; and to refuse a budget that cannot work,
with the number that would) and by check_env.
Everything is computed from the model's config.json; nothing is downloaded.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass

GB = 1e9
MB = 1e6
# Rounded from measurements; what each rests on, with its result files:
# benchmarks/results/memory-constants.md (one section per constant).
# The budget is what the process holds on the GPU, device-wide, so everything outside
# vLLM's pool counts: a CUDA context in each process that opens CUDA,
CUDA_CONTEXT_BYTES = int(0.6 * GB)
# the relevance embedder when --reward.device puts it on the GPU,
EMBEDDER_GPU_BYTES = int(0.2 * GB)
# what vLLM uses outside its gpu_memory_utilization pool: a base plus a share per
# captured graph batch size (graph_batch_sizes),
VLLM_OUTSIDE_BASE_BYTES = int(0.3 * GB)
VLLM_OUTSIDE_PER_GRAPH_BATCH_BYTES = int(2 * MB)
VLLM_MAX_GRAPH_BATCH = 512
# inside the pool, the activations of vLLM's profile run (ACTIVATION_PASSES x
# intermediate_size values per batched token, logits) plus a fixed slack,
ACTIVATION_PASSES = 4
VLLM_PROFILE_SLACK_BYTES = int(0.64 * GB)
# and for HF generate, the CUDA context and allocator slack beside hf_sequence_bytes.
HF_OVERHEAD_BYTES = int(1.5 * GB)
BYTES_PER_PARAM = {
    "float16": 2,
    "bfloat16": 2,
    "float32": 4,
    "auto": 2,
    "awq": 0.5625,
    "gptq": 0.5625,
    "fp8": 1,
}
# The validator's own prompts (passages of at most 1200 characters, a template, a persona)
# stay under 1k tokens and it asks for 256 new ones: 2048 tokens of context is all the
# tasks need. Larger budgets get a longer context first, so operators' own prompts fit.
TASK_MAX_MODEL_LEN = 2048
MODEL_LENS = (8192, 4096, TASK_MAX_MODEL_LEN)
# Engine sizes from the largest to the smallest: (max_num_seqs, max_num_batched_tokens).
# The smallest is the one measured at 16 GB (memory-constants.md, ENGINE_SIZES).
ENGINE_SIZES = ((256, 8192), (128, 4096), (64, 4096), (32, 2048), (16, 2048), (8, 1024))
# A size is chosen only if its KV cache holds this many tokens per sequence slot (the qa
# prompt plus its 256 new tokens), so that a full batch runs without preemption...
TOKENS_PER_SEQUENCE = 256
# ...and a context length only if the KV cache holds two such sequences (a margin for
# the estimate; vLLM itself refuses below one).
CONTEXT_MARGIN = 2
# vLLM caps utilisation so the driver keeps a little room.
MAX_UTILIZATION = 0.95


@dataclass(frozen=True)
class ModelShape:
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    max_position_embeddings: int
    tie_word_embeddings: bool = False

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def parameters(self) -> int:
        h, kv = self.hidden_size, self.num_kv_heads * self.head_dim
        attn = h * h * 2 + h * kv * 2  # q, o, k, v projections
        mlp = 3 * h * self.intermediate_size  # gate, up, down
        per_layer = attn + mlp + 2 * h
        embeddings = self.vocab_size * h * (1 if self.tie_word_embeddings else 2)
        return embeddings + self.num_layers * per_layer + h

    @classmethod
    def from_config(cls, cfg: dict) -> ModelShape:
        cfg = cfg.get("text_config", cfg)
        heads = cfg["num_attention_heads"]
        return cls(
            vocab_size=cfg["vocab_size"],
            hidden_size=cfg["hidden_size"],
            intermediate_size=cfg["intermediate_size"],
            num_layers=cfg["num_hidden_layers"],
            num_heads=heads,
            num_kv_heads=cfg.get("num_key_value_heads") or heads,
            max_position_embeddings=cfg.get("max_position_embeddings", 4096),
            tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        )


def load_model_config(path_or_id: str) -> dict | None:
    """config.json from a local folder or the local HF cache; None if not on disk."""
    candidate = os.path.join(os.path.expanduser(path_or_id), "config.json")
    if os.path.isfile(candidate):
        with open(candidate) as f:
            return json.load(f)
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(path_or_id, "config.json")
    except Exception:  # noqa: BLE001 - any hub-side problem means "not cached"
        return None
    if isinstance(cached, str) and os.path.isfile(cached):
        with open(cached) as f:
            return json.load(f)
    return None


def element_bytes(dtype: str) -> int:
    """Bytes of one value of the KV cache or of an activation: they are kept in the
    compute dtype, fp32 or a 16-bit type (float16, bfloat16, auto); weights may be
    quantized below that (BYTES_PER_PARAM, weight_bytes)."""
    return 4 if dtype == "float32" else 2


def weight_bytes(shape: ModelShape, dtype: str = "float16", quantization: str = "none") -> int:
    """Bytes of the weights. Quantization methods (fp8, awq, gptq) leave the embeddings
    and the output head in ``dtype``: only the linear layers of the blocks shrink."""
    per = BYTES_PER_PARAM[dtype]
    if quantization in ("none", None):
        return int(shape.parameters * per)
    embeddings = shape.vocab_size * shape.hidden_size * (1 if shape.tie_word_embeddings else 2)
    blocks = shape.parameters - embeddings
    return int(embeddings * per + blocks * BYTES_PER_PARAM[quantization])


def kv_bytes_per_token(shape: ModelShape, dtype: str = "float16") -> int:
    """Keys and values of every layer for one token."""
    return 2 * shape.num_layers * shape.num_kv_heads * shape.head_dim * element_bytes(dtype)


def graph_batch_sizes(max_num_seqs: int) -> list[int]:
    """Batch sizes to capture CUDA graphs for: powers of two up to vLLM's own largest,
    min(2 * max_num_seqs, 512). vLLM's default list has every multiple of 8 as well
    (35 graphs for 128 sequences instead of 9); each graph is captured at every start,
    and a batch between two sizes is padded to the next one."""
    largest = min(2 * max_num_seqs, VLLM_MAX_GRAPH_BATCH)
    sizes = [1]
    while sizes[-1] * 2 <= largest:
        sizes.append(sizes[-1] * 2)
    return sizes


def outside_pool_bytes(max_num_seqs: int, engine_in_process: bool = False) -> int:
    """What vLLM uses beyond its gpu_memory_utilization pool with this many sequences;
    ``engine_in_process``: the engine core shares the caller's CUDA context, otherwise
    its own process opens a second one."""
    graph_batch = max(graph_batch_sizes(max_num_seqs))
    context = 0 if engine_in_process else CUDA_CONTEXT_BYTES
    return context + VLLM_OUTSIDE_BASE_BYTES + graph_batch * VLLM_OUTSIDE_PER_GRAPH_BATCH_BYTES


def process_bytes(embedder_on_gpu: bool = False) -> int:
    """What the validator's process holds on the GPU besides vLLM: its CUDA context, and
    the relevance embedder when it runs on the GPU."""
    return CUDA_CONTEXT_BYTES + (EMBEDDER_GPU_BYTES if embedder_on_gpu else 0)


def activation_bytes(
    shape: ModelShape, max_num_seqs: int, max_num_batched_tokens: int, dtype: str, tp: int = 1
) -> int:
    """What vLLM's profile run reserves inside the pool for one forward pass."""
    per = element_bytes(dtype)
    mlp = max_num_batched_tokens * shape.intermediate_size * ACTIVATION_PASSES * per // tp
    logits = max_num_seqs * shape.vocab_size * 4 * 2
    return mlp + logits + VLLM_PROFILE_SLACK_BYTES


@dataclass(frozen=True)
class Fit:
    """One engine size inside a per-GPU budget. All byte counts are per GPU."""

    budget_bytes: int
    weights_bytes: int
    kv_bytes_per_token: int
    max_model_len: int
    max_num_seqs: int
    max_num_batched_tokens: int
    activation_bytes: int
    outside_pool_bytes: int
    process_bytes: int = 0  # the caller's process outside vLLM (process_bytes())

    @property
    def overhead_bytes(self) -> int:
        """vLLM's activation profile inside the pool, what it uses outside, and what the
        rest of the process holds."""
        return self.activation_bytes + self.outside_pool_bytes + self.process_bytes

    @property
    def min_kv_bytes(self) -> int:
        """vLLM's own rule: the KV cache must hold one sequence of max_model_len."""
        return self.kv_bytes_per_token * self.max_model_len

    @property
    def kv_capacity_tokens(self) -> int:
        left = self.budget_bytes - self.weights_bytes - self.overhead_bytes
        return max(0, left // self.kv_bytes_per_token) if self.kv_bytes_per_token else 0

    @property
    def needed_bytes(self) -> int:
        """What --neuron.llm_max_allowed_memory_in_gb must be at least for this size."""
        return self.weights_bytes + self.min_kv_bytes + self.overhead_bytes

    @property
    def needed_gb(self) -> float:
        """needed_bytes in GB, rounded up to 0.1 so that the advice always fits."""
        return math.ceil(self.needed_bytes / GB * 10) / 10

    def breakdown(self) -> str:
        """The parts of ``needed_gb``, in GB: what a refusal and check_env both show."""
        return (
            f"weights {self.weights_bytes / GB:.1f} GB + KV cache for {self.max_model_len} "
            f"tokens {self.min_kv_bytes / GB:.1f} GB + vLLM runtime "
            f"{(self.activation_bytes + self.outside_pool_bytes) / GB:.1f} GB with "
            f"{self.max_num_seqs} sequences + CUDA context and the rest of the process "
            f"{self.process_bytes / GB:.1f} GB"
        )

    @property
    def fits(self) -> bool:
        return self.budget_bytes >= self.needed_bytes

    @property
    def comfortable(self) -> bool:
        """Room for a full batch of validator-sized sequences and a context margin."""
        want = max(self.max_num_seqs * TOKENS_PER_SEQUENCE, CONTEXT_MARGIN * self.max_model_len)
        return self.kv_capacity_tokens >= want

    def utilization(self, total_bytes: int) -> float:
        """vLLM's gpu_memory_utilization on a device of ``total_bytes``: the pool is the
        budget less what vLLM uses outside it and what the process holds besides, so that
        the device-wide peak stays inside the budget."""
        if total_bytes <= 0:
            raise ValueError("device memory unknown")
        pool = self.budget_bytes - self.outside_pool_bytes - self.process_bytes
        if pool <= 0:
            raise ValueError(
                f"a budget of {self.budget_bytes / GB:g} GB leaves nothing for vLLM's pool"
            )
        return min(MAX_UTILIZATION, pool / total_bytes)


def plan(
    shape: ModelShape,
    budget_gb: float,
    max_model_len: int | None = None,
    tensor_parallel: int = 1,
    dtype: str = "float16",
    quantization: str = "none",
    engine_in_process: bool = False,
    embedder_on_gpu: bool = False,
) -> Fit:
    """The largest engine size (sequences, batched tokens, context) that fits the budget,
    the budget being all the process holds on the GPU (``process_bytes``).

    Sizes are tried from the largest down (ENGINE_SIZES x MODEL_LENS, or the given
    context length); the first that holds a full batch of validator-sized sequences
    wins. If none does, the smallest size is returned: it fits if vLLM can start at all
    (``Fit.fits``), and otherwise its ``needed_gb`` is the budget to ask for."""
    budget = int(budget_gb * GB)
    weights = weight_bytes(shape, dtype, quantization) // tensor_parallel
    per_token = kv_bytes_per_token(shape, dtype) // tensor_parallel
    if max_model_len is not None:
        lens: tuple[int, ...] = (max_model_len,)
    else:
        cap = shape.max_position_embeddings
        lens = tuple(sorted({min(n, cap) for n in MODEL_LENS}, reverse=True))
    fit = None
    for seqs, tokens in ENGINE_SIZES:
        for length in lens:
            fit = Fit(
                budget_bytes=budget,
                weights_bytes=weights,
                kv_bytes_per_token=per_token,
                max_model_len=length,
                max_num_seqs=seqs,
                max_num_batched_tokens=tokens,
                activation_bytes=activation_bytes(shape, seqs, tokens, dtype, tensor_parallel),
                outside_pool_bytes=outside_pool_bytes(seqs, engine_in_process),
                process_bytes=process_bytes(embedder_on_gpu),
            )
            if fit.comfortable:
                return fit
    assert fit is not None
    return fit


def hf_sequence_bytes(
    shape: ModelShape, prompt_tokens: int, new_tokens: int, dtype: str = "float16"
) -> int:
    """GPU bytes one sequence of a HF batched generate needs: its KV cache plus the
    prefill activations of the MLP (the largest transient)."""
    kv = kv_bytes_per_token(shape, dtype) * (prompt_tokens + new_tokens)
    prefill = prompt_tokens * shape.intermediate_size * element_bytes(dtype) * 4
    return kv + prefill
