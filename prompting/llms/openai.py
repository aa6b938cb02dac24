"""OpenAI-compatible backend: any server with ``POST /chat/completions`` (``vllm serve``).

A batch is sent as concurrent requests (the server batches them itself), each with
the timeout and a bounded number of retries with backoff on connection errors, 429
and 5xx. No tokenizer is loaded here: token counts come from the server's usage.

``score`` needs two things of the server that vLLM's offers and most others do not: its
tokenizer (``POST /tokenize``, which renders the chat template as the chat endpoint
does) and the prompt's log-probabilities from ``POST /completions`` with ``echo`` and
``logprobs``. A server without either gets an LLMError that names what it lacks.
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
    Scored,
    as_messages,
    check_pairs,
    entropy_from_top,
    fit_pair,
)
from prompting.llms.embedded import EMBEDDED

RETRY_STATUS = {408, 429, 500, 502, 503, 504}
MAX_PARALLEL = 64

# Top log-probabilities asked per position when scoring (the entropy the fluency judge
# needs), and the vocabulary size assumed for the mass beyond them: the server does not
# say it, and the error is that mass times log(true size / this), small beside the top.
SCORE_TOP_K = 20
VOCAB_GUESS = 50_000


class ServerRefused(LLMError):
    """The server answered a status that retrying will not change (``status``), so that
    a caller can tell a missing endpoint (404) from a failure."""

    def __init__(self, status: int, text: str):
        super().__init__(f"openai server answered HTTP {status}: {text[:200]}")
        self.status = status


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

    def _post(self, url: str, body: dict) -> dict:
        """POST ``body`` to ``url`` (relative to the base URL, or absolute) with the
        retries; the JSON answer. Raises ServerRefused on a status not worth retrying,
        LLMError when every attempt failed."""
        import httpx

        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                resp = self._http.post(url, json=body)
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            if resp.status_code in RETRY_STATUS:
                last = f"HTTP {resp.status_code}"
                continue
            if resp.status_code != 200:
                raise ServerRefused(resp.status_code, resp.text)
            try:
                return resp.json()
            except ValueError as exc:
                raise LLMError(f"openai server sent an unexpected body: {exc!r}") from exc
        raise LLMError(
            f"openai server at {self._http.base_url} failed after "
            f"{self.retries + 1} attempts: {last}"
        )

    def _one(self, prompt: Prompt, sampling: Sampling) -> Generation:
        start = time.perf_counter()
        data = self._post("/chat/completions", self._body(prompt, sampling))
        try:
            choice = data["choices"][0]
            text = choice["message"]["content"] or ""
        except (KeyError, IndexError, TypeError) as exc:
            raise LLMError(f"openai server sent an unexpected body: {exc!r}") from exc
        usage = data.get("usage") or {}
        return Generation(
            text=text.strip(),
            tokens=int(usage.get("completion_tokens", 0)),
            seconds=time.perf_counter() - start,
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            finish_reason=choice.get("finish_reason") or "",
        )

    def generate(
        self, prompts: Sequence[Prompt], sampling: Sampling | None = None
    ) -> list[Generation]:
        sampling = sampling or Sampling()
        return list(self._pool.map(lambda p: self._one(p, sampling), prompts))

    def _tokenize(self, body: dict) -> dict:
        """The server's ``/tokenize`` answer (vLLM serves it beside ``/v1``, at the
        root; some servers under the base URL): ``tokens`` and ``max_model_len``."""
        base = str(self._http.base_url).rstrip("/")
        root = base[: -len("/v1")] if base.endswith("/v1") else base
        missing = []
        for url in dict.fromkeys((root + "/tokenize", base + "/tokenize")):
            try:
                data = self._post(url, {"model": self.model_id, **body})
            except ServerRefused as exc:
                if exc.status in (404, 405):
                    missing.append(f"{url} HTTP {exc.status}")
                    continue
                raise
            if not isinstance(data.get("tokens"), list):
                raise LLMError(f"openai server's {url} sent no token list: {str(data)[:200]}")
            return data
        raise LLMError(
            f"openai server at {base} cannot score text: it has no tokenizer endpoint "
            f"({', '.join(missing)}), which score needs to render the chat "
            "template and count the answer's tokens; serve the model with vllm serve, or "
            "use --neuron.llm_backend hf or vllm"
        )

    def _continuation_logprobs(self, pair: tuple[list[int], list[int]]) -> Scored:
        """The continuation's log-probabilities from ``/completions``: the token ids as
        the prompt, ``echo`` with ``logprobs`` (the prompt's own tokens' log-probabilities
        come back, the first one None) and one generated token (some servers refuse 0)."""
        prompt_ids, cont_ids = pair
        if not cont_ids:
            return Scored([])
        body = {
            "model": self.model_id,
            "prompt": prompt_ids + cont_ids,
            "echo": True,
            "logprobs": SCORE_TOP_K,
            "max_tokens": 1,
            "temperature": 0.0,
        }
        data = self._post("/completions", body)
        try:
            found = data["choices"][0].get("logprobs") or {}
            logprobs, tops = found.get("token_logprobs"), found.get("top_logprobs")
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise LLMError(f"openai server sent an unexpected body: {exc!r}") from exc
        end = len(prompt_ids) + len(cont_ids)
        picked = logprobs[len(prompt_ids) : end] if isinstance(logprobs, list) else []
        if len(picked) != len(cont_ids) or any(v is None for v in picked):
            raise LLMError(
                f"openai server at {self._http.base_url} cannot score text: /completions "
                "with echo and logprobs returned no log-probabilities for the prompt's "
                "tokens (a server must echo prompt logprobs, as vllm serve does); use "
                "--neuron.llm_backend hf or vllm"
            )
        entropies = None  # a server that sends no top log-probabilities: none
        top = tops[len(prompt_ids) : end] if isinstance(tops, list) else []
        if len(top) == len(cont_ids) and all(isinstance(t, dict) and t for t in top):
            entropies = [entropy_from_top([float(v) for v in t.values()], VOCAB_GUESS) for t in top]
        return Scored([float(v) for v in picked], entropies)

    def score(
        self,
        prompts: Sequence[Prompt],
        continuations: Sequence[str],
        max_tokens: int | None = None,
    ) -> list[Scored]:
        """Teacher-forced log-probabilities from the server: the chat prompt rendered by
        its ``/tokenize`` (the template its chat endpoint applies), the continuation
        tokenized alone, cut as ``fit_pair`` says with the server's context, then one
        ``/completions`` request per pair (concurrent; vLLM batches them)."""
        check_pairs(prompts, continuations, max_tokens)
        distinct = list({id(p): p for p in prompts}.values())
        rendered = dict(zip(map(id, distinct), self._pool.map(self._render, distinct)))
        answers = self._pool.map(self._answer_ids, continuations)
        pairs = []
        for prompt, cont_ids in zip(prompts, answers):
            prompt_ids, context = rendered[id(prompt)]
            pairs.append(fit_pair(prompt_ids, cont_ids, max_tokens, context))
        return list(self._pool.map(self._continuation_logprobs, pairs))

    def _render(self, prompt: Prompt) -> tuple[list[int], int | None]:
        """The prompt's token ids as the chat endpoint renders it (template, assistant
        turn opened) and the context left for it and a continuation (the server's
        max_model_len less the one generated token; None: not said)."""
        data = self._tokenize(
            {
                "messages": as_messages(prompt),
                "add_generation_prompt": True,
                "add_special_tokens": False,
            }
        )
        length = data.get("max_model_len")
        return data["tokens"], (length - 1 if isinstance(length, int) and length > 1 else None)

    def _answer_ids(self, text: str) -> list[int]:
        """A continuation's token ids, tokenized alone (no special tokens)."""
        if not text:
            return []
        return self._tokenize({"prompt": text, "add_special_tokens": False})["tokens"]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._http.close()
