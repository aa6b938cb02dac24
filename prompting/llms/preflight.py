"""Honesty of the model flags, checked before any miner starts or model loads.

A flag that the chosen backend or model does not use is never silently ignored: it
gets a one-line warning. A model that cannot load (a path that does not exist, the
embedded model's wheel missing, the vllm backend without vllm) is an error that says
what to change. Standard library only: this runs on every start.
"""

from __future__ import annotations

import importlib.util

from prompting.llms.base import LLMError
from prompting.llms.embedded import EMBEDDED, missing_model

# vllm engine flags: (attribute, its "unused" value)
VLLM_ONLY = (
    ("max_model_len", None),
    ("enforce_eager", False),
    ("quantization", "none"),
    ("distributed_executor", "auto"),
    ("gpus", 1),
)


def check(config, loads_llm: bool = True) -> list[str]:
    """Warnings for flags this run will not use; raises LLMError when the model or
    backend cannot work. ``loads_llm``: whether this process will load the model."""
    n = config.neuron
    backend = n.llm_backend
    if not loads_llm:  # the validator skips a random-weight model
        return [
            f"--neuron.model_id {n.model_id} has random weights: no LLM is loaded and "
            f"challenges are built without one, so --neuron.llm_backend {backend} is not used"
        ]
    problem = missing_model(n.model_id)
    if problem:
        raise LLMError(problem)
    if backend == "vllm" and importlib.util.find_spec("vllm") is None:
        raise LLMError(
            "--neuron.llm_backend vllm but vllm is not installed: on a GPU host run "
            "EXTRAS=vllm bash scripts/install.sh, or use --neuron.llm_backend hf"
        )
    warnings = []
    if backend == "openai" and n.model_id in EMBEDDED:
        warnings.append(
            f"--neuron.llm_backend openai asks {n.openai_base_url} for a model named "
            f"{n.model_id!r}; pass --neuron.model_id with the name that server serves"
        )
    if backend != "vllm":
        unused = [f"--neuron.{k}" for k, off in VLLM_ONLY if getattr(n, k) != off]
        if unused:
            warnings.append(f"{', '.join(unused)}: vllm flags, not used by backend {backend}")
    if backend != "hf" and n.hf_compile:
        warnings.append(f"--neuron.hf_compile: an hf flag, not used by backend {backend}")
    return warnings
