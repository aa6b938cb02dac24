"""HuggingFace transformers backend: fp16 on GPU, fp32 on CPU, batched with left padding.

``score`` teacher-forces given answers after a prompt: the prompt's KV cache is computed
once per distinct prompt and all its answers run over it as one right-padded batch, so
a step's answers to one challenge cost one prompt pass plus their own tokens.

``--neuron.hf_compile`` switches generate to a static KV cache, which transformers
then runs through torch.compile: the first call pays the compile (tens of seconds
for a 7B model), later calls at batch 1 run several times faster because kernel
launch overhead, not bandwidth, bounds naive HF decoding. ``warmup()`` lets the
validator pay that before its first step.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Sequence

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
    render_chat,
    score_pairs,
)
from prompting.llms.embedded import resolve_model

log = logging.getLogger(__name__)

# The fp32 logits of one scoring forward (rows x tokens x vocab) stay under this: with
# SmolLM2's 49k vocabulary and 160-token answers that is 8 answers at a time, which costs
# no speed on the CPU (the matmuls are as large) and bounds the step's memory.
SCORE_LOGITS_BYTES = 256 * 2**20


def choose_device(requested: str, cuda_available: bool) -> str:
    """'auto' -> cuda:0 when a GPU is visible, else cpu; explicit cuda without one fails."""
    if requested == "auto":
        return "cuda:0" if cuda_available else "cpu"
    if requested.startswith("cuda") and not cuda_available:
        raise LLMError(
            f"--neuron.device {requested} asked for, but torch sees no CUDA GPU; "
            "use --neuron.device cpu or check CUDA_VISIBLE_DEVICES"
        )
    return "cuda:0" if requested == "cuda" else requested


def choose_dtype(requested: str, device: str) -> str:
    """fp16 on GPU, fp32 on CPU (fp16 matmuls on CPU are slow or unsupported)."""
    if requested != "auto":
        return requested
    return "float16" if device.startswith("cuda") else "float32"


class HFLLM(LLM):
    name = "hf"
    own_flags = ("hf_compile",)

    @classmethod
    def fit(cls, config, shape: memory.ModelShape, host: Host) -> CheckResult:
        """The weights against the GPU's memory (fp16) or the machine's RAM (fp32)."""
        n = config.neuron
        dtype = "float16" if (n.device != "cpu" and host.gpu_total_gb) else "float32"
        weights = memory.weight_bytes(shape, dtype) / memory.GB
        limit, where = (host.gpu_total_gb, "GPU") if dtype == "float16" else (host.ram_gb, "RAM")
        detail = f"hf {dtype}: weights {weights:.1f} GB on {where}"
        if limit is not None and weights > limit:
            return CheckResult(
                errors=[
                    Finding(
                        detail + f" > {limit:.1f} GB",
                        "use a GPU, a smaller model or --neuron.llm_backend vllm with quantization",
                    )
                ]
            )
        return CheckResult(notes=[detail])

    def __init__(
        self,
        model_id: str,
        device: str = "auto",
        dtype: str = "auto",
        compile: bool = False,
        state_dir: str = ".",
        max_prompt_tokens: int = 2048,
        budget_gb: float | None = None,
    ):
        import torch

        from prompting.compat import import_transformers, loading_models

        AutoModelForCausalLM, AutoTokenizer = import_transformers(  # noqa: N806
            "AutoModelForCausalLM", "AutoTokenizer"
        )
        start = time.perf_counter()
        self._torch = torch
        self.device = choose_device(device, torch.cuda.is_available())
        self.dtype = choose_dtype(dtype, self.device)
        self.compile = compile
        self.max_prompt_tokens = max_prompt_tokens
        path = resolve_model(model_id, state_dir)
        try:
            with loading_models():
                self._tokenizer = AutoTokenizer.from_pretrained(path)
                model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, self.dtype))
            self.model = model.to(self.device).eval()
        except OSError as exc:
            raise LLMError(f"cannot load model {model_id!r}: {exc}") from exc
        except torch.OutOfMemoryError as exc:
            raise LLMError(
                f"model {model_id!r} does not fit on {self.device} (budget "
                f"{budget_gb} GB); check_env estimates what fits: {exc}"
            ) from exc
        self.budget_gb = budget_gb if self.device.startswith("cuda") else None
        config_json = memory.load_model_config(path)
        self.shape = memory.ModelShape.from_config(config_json) if config_json else None
        text_config = self.model.config.get_text_config()
        # Tokens the model reads at once: score() cuts longer prompts from the left.
        self.context: int | None = getattr(text_config, "max_position_embeddings", None)
        self.vocab_size: int = text_config.vocab_size
        forward = inspect.signature(self.model.forward).parameters
        # The prompt pass of score() needs only its last position's logits.
        self._logits_to_keep = "logits_to_keep" in forward
        # transformers 5.24 renamed forward's past_key_values to cache (the old name
        # warns, and goes in 5.40); the GPU image's 5.17 knows only the old one.
        self._cache_arg = "cache" if "cache" in forward else "past_key_values"
        self._tokenizer.padding_side = "left"
        if self._tokenizer.pad_token is None:
            self._tokenizer.pad_token = self._tokenizer.eos_token
        self._stats = LLMStats(
            backend=self.name,
            model=model_id,
            device=self.device,
            dtype=self.dtype,
            load_seconds=time.perf_counter() - start,
            gpu_bytes=self._gpu_bytes(),
            extra={"compile": compile},
        )

    @classmethod
    def from_config(cls, config) -> HFLLM:
        n = config.neuron
        return cls(
            n.model_id,
            device=n.device,
            dtype=n.dtype,
            compile=n.hf_compile,
            state_dir=n.full_path,
            budget_gb=n.llm_max_allowed_memory_in_gb,
        )

    @property
    def tokenizer(self):
        return self._tokenizer

    @property
    def stats(self) -> LLMStats:
        self._stats.gpu_bytes = max(self._stats.gpu_bytes, self._gpu_bytes())
        return self._stats

    def _gpu_bytes(self) -> int:
        if not self.device.startswith("cuda"):
            return 0
        return int(self._torch.cuda.max_memory_allocated(self.device))

    def _generate_kwargs(self, sampling: Sampling) -> dict:
        kwargs = dict(
            max_new_tokens=sampling.max_tokens,
            pad_token_id=self._tokenizer.pad_token_id,
            repetition_penalty=sampling.repetition_penalty,
        )
        if sampling.temperature > 0:
            kwargs.update(
                do_sample=True,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                top_k=sampling.top_k or None,
            )
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if sampling.ignore_eos:
            kwargs["min_new_tokens"] = sampling.max_tokens
        if self.compile:
            kwargs["cache_implementation"] = "static"
        return kwargs

    def max_batch(self, prompt_tokens: int, new_tokens: int) -> int:
        """Largest batch that keeps weights + KV cache + activations inside the GPU budget
        (unbounded on CPU or without a budget)."""
        if self.budget_gb is None or self.shape is None:
            return 1 << 30
        weights = memory.weight_bytes(self.shape, self.dtype)
        free = self.budget_gb * memory.GB - weights - memory.HF_OVERHEAD_BYTES
        per = memory.hf_sequence_bytes(self.shape, prompt_tokens, new_tokens, self.dtype)
        if free < per:
            need = (weights + per + memory.HF_OVERHEAD_BYTES) / memory.GB
            raise LLMError(
                f"model weights ({weights / memory.GB:.1f} GB) leave no room for one sequence "
                f"in --neuron.llm_max_allowed_memory_in_gb {self.budget_gb:g}; raise it to "
                f"at least {need:.1f}"
            )
        return max(1, int(free // per))

    def generate(
        self, prompts: Sequence[Prompt], sampling: Sampling | None = None
    ) -> list[Generation]:
        """Generate in chunks that fit the memory budget; order is kept."""
        if not prompts:
            return []
        sampling = sampling or Sampling()
        if sampling.seed is not None:
            self._torch.manual_seed(sampling.seed)
        texts = [render_chat(self._tokenizer, p) for p in prompts]
        longest = max(len(self._tokenizer(t, add_special_tokens=False).input_ids) for t in texts)
        size = self.max_batch(min(longest, self.max_prompt_tokens), sampling.max_tokens)
        out: list[Generation] = []
        for i in range(0, len(texts), size):
            out += self._generate_chunk(texts[i : i + size], sampling)
        return out

    def _generate_chunk(self, texts: list[str], sampling: Sampling) -> list[Generation]:
        torch = self._torch
        batch = self._tokenizer(
            texts,
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=self.max_prompt_tokens,
            add_special_tokens=False,
        ).to(self.device)
        start = time.perf_counter()
        try:
            with torch.inference_mode():
                out = self.model.generate(**batch, **self._generate_kwargs(sampling))
        except torch.OutOfMemoryError as exc:
            raise LLMError(
                f"out of GPU memory generating a batch of {len(texts)}; "
                "lower the batch or --neuron.max_tokens"
            ) from exc
        seconds = time.perf_counter() - start
        new = out[:, batch["input_ids"].shape[1] :]
        eos = self._tokenizer.eos_token_id
        results = []
        for row, mask in zip(new.tolist(), batch["attention_mask"].tolist()):
            n = len(row)
            if not sampling.ignore_eos and eos in row:
                n = row.index(eos) + 1
            text = self._tokenizer.decode(row[:n], skip_special_tokens=True)
            results.append(
                Generation(
                    text=text.strip(),
                    tokens=n,
                    seconds=seconds,
                    prompt_tokens=int(sum(mask)),
                    finish_reason="stop" if n < len(row) or (n and row[n - 1] == eos) else "length",
                )
            )
        return results

    def score(
        self,
        prompts: Sequence[Prompt],
        continuations: Sequence[str],
        max_tokens: int | None = None,
    ) -> list[Scored]:
        """Teacher-forced log-probabilities of each continuation after its prompt.

        Pairs are grouped by prompt (a step's answers share one challenge): each distinct
        prompt runs once, its KV cache is repeated across its continuations, which run as
        right-padded batches over it (longest first, so that a chunk pads little). The
        numbers are those of one plain forward over prompt + continuation, per pair."""
        pairs = score_pairs(self._tokenizer, prompts, continuations, max_tokens, self.context)
        results: list[Scored] = [Scored([]) for _ in pairs]
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, (prompt_ids, cont_ids) in enumerate(pairs):
            if cont_ids:
                groups.setdefault(tuple(prompt_ids), []).append(i)
        torch = self._torch
        try:
            with torch.inference_mode():
                for prompt_ids, members in groups.items():
                    scored = self._score_group(list(prompt_ids), [pairs[i][1] for i in members])
                    for i, (logprobs, entropies) in zip(members, scored):
                        results[i] = Scored(logprobs, entropies)
        except torch.OutOfMemoryError as exc:
            raise LLMError(
                f"out of GPU memory scoring {len(pairs)} continuations; lower their number "
                "or max_tokens"
            ) from exc
        return results

    def _score_group(
        self, prompt_ids: list[int], conts: list[list[int]]
    ) -> list[tuple[list[float], list[float]]]:
        """Log-probabilities of each of ``conts`` after the one prompt ``prompt_ids``, and
        the entropy of the model's distribution at each of their positions.

        The prompt's last token is fed with each continuation (it predicts the first
        continuation token), so the cached prefix is the prompt less that token."""
        torch = self._torch
        prefix, last = prompt_ids[:-1], prompt_ids[-1]
        layers = []
        if prefix:
            kwargs = {"logits_to_keep": 1} if self._logits_to_keep else {}
            ids = torch.tensor([prefix], device=self.device)
            prompt_pass = self.model(input_ids=ids, use_cache=True, **kwargs)
            cache = prompt_pass[self._cache_arg]
            layers = [(layer.keys, layer.values) for layer in cache.layers]
        order = sorted(range(len(conts)), key=lambda j: len(conts[j]), reverse=True)
        out: list[tuple[list[float], list[float]]] = [([], []) for _ in conts]
        pad = self._tokenizer.pad_token_id
        start = 0
        while start < len(order):
            width = len(conts[order[start]])  # the chunk's longest continuation
            rows = min(
                max(1, SCORE_LOGITS_BYTES // (width * self.vocab_size * 4)),
                self.max_batch(len(prompt_ids) + width, 0),
            )
            chunk = order[start : start + rows]
            start += len(chunk)
            inputs = torch.full((len(chunk), width), pad, dtype=torch.long)
            targets = torch.zeros((len(chunk), width), dtype=torch.long)
            mask = torch.zeros((len(chunk), len(prefix) + width), dtype=torch.long)
            mask[:, : len(prefix)] = 1
            for row, j in enumerate(chunk):
                cont = conts[j]
                inputs[row, : len(cont)] = torch.tensor([last] + cont[:-1])
                targets[row, : len(cont)] = torch.tensor(cont)
                mask[row, len(prefix) : len(prefix) + len(cont)] = 1
            logits = self.model(
                input_ids=inputs.to(self.device),
                attention_mask=mask.to(self.device),
                use_cache=True,
                **{self._cache_arg: self._repeat_cache(layers, len(chunk))},
            ).logits.float()
            targets = targets.to(self.device)
            logits = torch.log_softmax(logits, dim=-1)
            logprobs = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1).cpu()
            entropies = (-(logits.exp() * logits).sum(-1)).cpu()
            for row, j in enumerate(chunk):
                n = len(conts[j])
                out[j] = (logprobs[row, :n].tolist(), entropies[row, :n].tolist())
        return out

    def _repeat_cache(self, layers: list, rows: int):
        """A fresh cache holding the prompt's keys and values for ``rows`` sequences
        (None for an empty prefix): expanded views, which the forward's own update
        copies once, so that the prompt's cache is never mutated and reused per chunk."""
        if not layers:
            return None
        from transformers import DynamicCache

        expanded = [(k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1)) for k, v in layers]
        return DynamicCache(expanded, config=self.model.config)

    def warmup(self, batch_sizes: Sequence[int] = (1,), max_tokens: int = 16) -> float:
        """With ``--neuron.hf_compile``: throwaway generations that compile the
        static-cache graph, so the first step does not pay it; returns seconds."""
        if not self.compile:
            return 0.0
        start = time.perf_counter()
        for size in batch_sizes:
            self.generate(["warm up"] * size, Sampling(max_tokens=max_tokens, temperature=0))
        return time.perf_counter() - start

    def close(self) -> None:
        if getattr(self, "model", None) is None:
            return
        self.model = None
        if self.device.startswith("cuda"):
            self._torch.cuda.empty_cache()
