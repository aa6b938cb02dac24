"""OpenAI-compatible backend: any server with ``POST /chat/completions`` (``vllm serve``).

A batch is sent as concurrent requests (the server batches them itself), each with
the timeout and a bounded number of retries with backoff on connection errors, 429
and 5xx. No tokenizer is loaded here: token counts come from the server's usage.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from prompting.llms.base import (
    LLM,
    CheckResult,
    Finding,
    Generation,
    LLMError,
    LLMStats,
    Prompt,
    Sampling,
    as_messages,
)
from prompting.llms.embedded import EMBEDDED

RETRY_STATUS = {408, 429, 500, 502, 503, 504}
MAX_PARALLEL = 64


class OpenAILLM(LLM):
    name = "openai"
    own_flags = ("openai_base_url", "openai_api_key_env", "openai_retries")

    @classmethod
    def check(cls, config) -> CheckResult:
        result = super().check(config)
        n = config.neuron
        if n.model_id in EMBEDDED:  # a name of ours the server is unlikely to serve
            result.warnings.append(
                Finding(
                    f"--neuron.llm_backend openai asks {n.openai_base_url} for a model named "
                    f"{n.model_id!r}; pass --neuron.model_id with the name that server serves"
                )
            )
        return result

    @classmethod
    def fit(cls, config, shape, host) -> CheckResult:
        return CheckResult(notes=[f"served by {config.neuron.openai_base_url}: its memory"])

    def __init__(
        self,
        model_id: str,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        retries: int = 2,
        backoff: float = 0.5,
    ):
        import httpx

        start = time.perf_counter()
        self.model_id = model_id
        self.retries = retries
        self.backoff = backoff
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            timeout=timeout,
            headers=headers,
            limits=httpx.Limits(max_connections=MAX_PARALLEL),
        )
        self._pool = ThreadPoolExecutor(max_workers=MAX_PARALLEL, thread_name_prefix="openai")
        self._stats = LLMStats(
            backend=self.name,
            model=model_id,
            device=base_url,
            load_seconds=time.perf_counter() - start,
        )

    @classmethod
    def from_config(cls, config) -> OpenAILLM:
        n = config.neuron
        return cls(
            n.model_id,
            n.openai_base_url,
            os.environ.get(n.openai_api_key_env),
            timeout=max(n.timeout * 6, 30.0),
            retries=n.openai_retries,
        )

    @property
    def tokenizer(self):
        """None: the tokenizer lives on the server."""
        return None

    @property
    def stats(self) -> LLMStats:
        return self._stats

    def _body(self, prompt: Prompt, sampling: Sampling) -> dict:
        body = {
            "model": self.model_id,
            "messages": as_messages(prompt),
            "max_tokens": sampling.max_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
        }
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        if sampling.ignore_eos:  # vLLM's extension; other servers ignore unknown keys
            body["ignore_eos"] = True
        return body

    def _one(self, prompt: Prompt, sampling: Sampling) -> Generation:
        import httpx

        body = self._body(prompt, sampling)
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            start = time.perf_counter()
            try:
                resp = self._http.post("/chat/completions", json=body)
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            if resp.status_code in RETRY_STATUS:
                last = f"HTTP {resp.status_code}"
                continue
            if resp.status_code != 200:
                raise LLMError(f"openai server answered HTTP {resp.status_code}: {resp.text[:200]}")
            try:
                data = resp.json()
                choice = data["choices"][0]
                text = choice["message"]["content"] or ""
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                raise LLMError(f"openai server sent an unexpected body: {exc!r}") from exc
            usage = data.get("usage") or {}
            return Generation(
                text=text.strip(),
                tokens=int(usage.get("completion_tokens", 0)),
                seconds=time.perf_counter() - start,
                prompt_tokens=int(usage.get("prompt_tokens", 0)),
                finish_reason=choice.get("finish_reason") or "",
            )
        raise LLMError(
            f"openai server at {self._http.base_url} failed after "
            f"{self.retries + 1} attempts: {last}"
        )

    def generate(
        self, prompts: Sequence[Prompt], sampling: Sampling | None = None
    ) -> list[Generation]:
        sampling = sampling or Sampling()
        return list(self._pool.map(lambda p: self._one(p, sampling), prompts))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._http.close()
