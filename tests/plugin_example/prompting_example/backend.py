"""A backend without a model: it answers every prompt with its last user line, echoed.

Real backends (llama.cpp, TensorRT-LLM) wrap their engine the same way: load in
``from_config``, state their flags' rules in ``check``, generate a batch in ``generate``.
"""

from __future__ import annotations

import time

from prompting.llms.base import LLM, CheckResult, Finding, Generation, LLMStats, as_messages


class EchoLLM(LLM):
    name = "example_echo"

    def __init__(self, model_id: str):
        self._stats = LLMStats(backend=self.name, model=model_id)

    @classmethod
    def from_config(cls, config) -> EchoLLM:
        return cls(config.neuron.model_id)

    @classmethod
    def check(cls, config) -> CheckResult:
        result = super().check(config)
        if config.neuron.temperature > 0:
            result.warnings.append(Finding("example_echo ignores --neuron.temperature"))
        return result

    @property
    def tokenizer(self):
        return None  # no tokenizer: nothing counts tokens here

    @property
    def stats(self) -> LLMStats:
        return self._stats

    def generate(self, prompts, sampling=None) -> list[Generation]:
        start = time.perf_counter()
        texts = [as_messages(p)[-1]["content"].splitlines()[-1] for p in prompts]
        seconds = time.perf_counter() - start
        return [Generation(text=t, tokens=len(t.split()), seconds=seconds) for t in texts]
