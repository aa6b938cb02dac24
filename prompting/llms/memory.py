"""GPU memory arithmetic for a decoder-only model: weights, KV cache, budget fit.

Used by the vllm backend (to turn a GB budget into ``gpu_memory_utilization`` and to
refuse a budget that cannot work, with the number that would) and by check_env.
Everything is computed from the model's config.json; nothing is downloaded.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass

GB = 1e9
# Measured on H100 with vllm 0.24 and the zephyr-7b architecture (fp16, 14.48 GB of
# weights), benchmarks/results/2026-11-23-h100-budget-sweep.json:
# * vLLM's own activation profile inside its pool: a 20 GB budget (pool 17.6 GB) failed to
#   start with 2.05 GB left beside weights and one 8192-token sequence of KV cache.
VLLM_POOL_OVERHEAD_BYTES = int(3.0 * GB)
# * memory vLLM uses outside its gpu_memory_utilization pool (engine CUDA context, CUDA
#   graphs, sampler buffers): peak minus pool was 2.37 GB and 2.92 GB in two runs.
VLLM_UNACCOUNTED_BYTES = int(3.5 * GB)
# * HF generate: CUDA context and allocator slack besides weights, KV cache and the
#   activations hf_sequence_bytes counts (batched peak 22.2 GB at a 24 GB budget).
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


def weight_bytes(shape: ModelShape, dtype: str = "float16", quantization: str = "none") -> int:
    per = BYTES_PER_PARAM[quantization if quantization not in ("none", None) else dtype]
    return int(shape.parameters * per)


def kv_bytes_per_token(shape: ModelShape, dtype: str = "float16") -> int:
    per = 4 if dtype == "float32" else 2
    return 2 * shape.num_layers * shape.num_kv_heads * shape.head_dim * per


@dataclass(frozen=True)
class Fit:
    """How a model fits a per-GPU budget. All byte counts are per GPU."""

    budget_bytes: int
    weights_bytes: int
    min_kv_bytes: int
    overhead_bytes: int  # vLLM's activation profile inside the pool + what it uses outside
    kv_capacity_tokens: int

    @property
    def needed_bytes(self) -> int:
        """What --neuron.llm_max_allowed_memory_in_gb must be at least."""
        return self.weights_bytes + self.min_kv_bytes + self.overhead_bytes

    @property
    def needed_gb(self) -> float:
        """needed_bytes in GB, rounded up to 0.1 so that the advice always fits."""
        return math.ceil(self.needed_bytes / GB * 10) / 10

    @property
    def fits(self) -> bool:
        return self.budget_bytes >= self.needed_bytes


def plan(
    shape: ModelShape,
    budget_gb: float,
    max_model_len: int,
    tensor_parallel: int = 1,
    dtype: str = "float16",
    quantization: str = "none",
) -> Fit:
    """Per-GPU memory plan: weights and KV cache split across ``tensor_parallel`` GPUs;
    the minimal KV cache holds one sequence of ``max_model_len`` tokens (vLLM's rule)."""
    budget = int(budget_gb * GB)
    weights = weight_bytes(shape, dtype, quantization) // tensor_parallel
    per_token = kv_bytes_per_token(shape, dtype) // tensor_parallel
    overhead = VLLM_POOL_OVERHEAD_BYTES + VLLM_UNACCOUNTED_BYTES
    left = budget - weights - overhead
    return Fit(
        budget_bytes=budget,
        weights_bytes=weights,
        min_kv_bytes=per_token * max_model_len,
        overhead_bytes=overhead,
        kv_capacity_tokens=max(0, left // per_token) if per_token else 0,
    )


def utilization(budget_gb: float, total_bytes: int) -> float:
    """vLLM's gpu_memory_utilization for a GB budget on a device of ``total_bytes``:
    the pool is the budget less what vLLM uses outside the pool."""
    if total_bytes <= 0:
        raise ValueError("device memory unknown")
    pool = budget_gb * GB - VLLM_UNACCOUNTED_BYTES
    if pool <= 0:
        raise ValueError(f"a budget of {budget_gb:g} GB leaves nothing for vLLM's pool")
    return min(MAX_UTILIZATION, pool / total_bytes)


def hf_sequence_bytes(
    shape: ModelShape, prompt_tokens: int, new_tokens: int, dtype: str = "float16"
) -> int:
    """GPU bytes one sequence of a HF batched generate needs: its KV cache plus the
    prefill activations of the MLP (the largest transient)."""
    per = 4 if dtype == "float32" else 2
    kv = kv_bytes_per_token(shape, dtype) * (prompt_tokens + new_tokens)
    prefill = prompt_tokens * shape.intermediate_size * per * 4
    return kv + prefill
