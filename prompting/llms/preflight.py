"""Honesty of the model flags, checked before any miner starts or model loads.

A flag that the chosen backend or model does not use is never silently ignored: it
gets a one-line warning. A model that cannot load (a path that does not exist, the
embedded model's wheel missing, a backend whose library is not installed) is an error
that says what to change. The rules of each backend live in its class (``check``,
``missing``, ``own_flags``); this module applies them. Light imports only: this runs
on every start.
"""

from __future__ import annotations

from prompting.llms.base import LLM, LLMError, backend_class
from prompting.llms.embedded import missing_model
from prompting.registry import BACKENDS


def unused_flags(config, chosen: type[LLM]) -> list[str]:
    """Warnings for flags that only another built-in backend reads, set away from their
    defaults (plug-in backends are not imported to ask: their flags are their own)."""
    from prompting.config import flag_default

    warnings = []
    for name in BACKENDS.builtin_names():
        other = BACKENDS[name]
        if other is chosen:
            continue
        unused = [
            f"--neuron.{flag}"
            for flag in other.own_flags
            if flag not in chosen.own_flags
            and getattr(config.neuron, flag) != flag_default("neuron." + flag)
        ]
        if unused:
            kind = f"{other.name} flag{'s' if len(unused) > 1 else ''}"
            warnings.append(f"{', '.join(unused)}: {kind}, not used by backend {chosen.name}")
    return warnings


def check(config, loads_llm: bool = True) -> list[str]:
    """Warnings for flags this run will not use; raises LLMError when the model or
    backend cannot work. ``loads_llm``: whether this process will load the model."""
    n = config.neuron
    if not loads_llm:  # the validator skips a random-weight model
        return [
            f"--neuron.model_id {n.model_id} has random weights: no LLM is loaded and "
            f"challenges are built without one, so --neuron.llm_backend {n.llm_backend} is "
            "not used"
        ]
    problem = missing_model(n.model_id)
    if problem:
        raise LLMError(problem)
    backend = backend_class(n.llm_backend)
    problem = backend.missing()
    if problem:
        raise LLMError(problem)
    result = backend.check(config)
    if result.errors:
        first = result.errors[0]
        raise LLMError(first.message + (f"; {first.fix}" if first.fix else ""))
    return [w.message for w in result.warnings] + unused_flags(config, backend)
