"""The generation interface every backend implements, and the registry by name.

A backend takes a batch (list in, list out) because every backend we care about is
faster batched; a single prompt is a batch of one. Heavy libraries (torch,
transformers, vllm, httpx) are imported inside each backend module, which is
imported only when its name is asked for.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Union

from prompting.config import SAMPLING_DEFAULTS
from prompting.registry import BACKENDS, PluginError

if TYPE_CHECKING:
    from prompting.config import Config
    from prompting.llms.memory import ModelShape

Message = dict  # {"role": "system"|"user"|"assistant", "content": str}
Prompt = Union[str, Sequence[Message]]


@dataclass(frozen=True)
class Sampling:
    """Sampling parameters shared by all backends (temperature 0 = greedy); the
    defaults are the ``--neuron.*`` flags' (``config.SAMPLING_DEFAULTS``)."""

    max_tokens: int = SAMPLING_DEFAULTS["max_tokens"]
    temperature: float = SAMPLING_DEFAULTS["temperature"]
    top_p: float = SAMPLING_DEFAULTS["top_p"]
    top_k: int = SAMPLING_DEFAULTS["top_k"]
    repetition_penalty: float = SAMPLING_DEFAULTS["repetition_penalty"]
    seed: int | None = None
    ignore_eos: bool = False  # benchmarks: generate exactly max_tokens

    @classmethod
    def from_config(cls, config: Config, **overrides) -> Sampling:
        n = config.neuron
        values = dict(
            max_tokens=n.max_tokens,
            temperature=n.temperature,
            top_p=n.top_p,
            top_k=n.top_k,
            repetition_penalty=n.repetition_penalty,
            seed=n.seed,
        )
        values.update(overrides)
        return cls(**values)


@dataclass
class Generation:
    text: str
    tokens: int  # generated tokens
    seconds: float  # wall time of the call that produced it (shared by a batch)
    prompt_tokens: int = 0
    finish_reason: str = ""


@dataclass
class Scored:
    """Log-probabilities of one continuation's tokens, teacher-forced after its prompt.

    What ``LLM.score`` returns: the model reads a given text instead of writing one, so
    a judge can ask how plausible an answer is as a reply to a challenge."""

    logprobs: list[float]  # natural log, one per continuation token, in order
    # The entropy (nats) of the model's next-token distribution at each of those
    # positions: how unsure it was. Exact from hf; from the top-k log-probabilities where
    # a server gives no more (``entropy_from_top``).
    entropies: list[float] | None = None

    @property
    def tokens(self) -> int:
        """Continuation tokens scored (after the ``max_tokens`` cut)."""
        return len(self.logprobs)

    @property
    def mean(self) -> float:
        """Mean log-probability per token (length-normalised, so that long and short
        answers compare); NaN when there are no tokens: an empty answer has no score."""
        return math.fsum(self.logprobs) / len(self.logprobs) if self.logprobs else float("nan")

    def cut(self, n: int) -> Scored:
        """The first ``n`` tokens' numbers."""
        return Scored(self.logprobs[:n], None if self.entropies is None else self.entropies[:n])


def entropy_from_top(top: Sequence[float], vocab_size: int) -> float:
    """The entropy of a next-token distribution known only by its top-k log-probabilities
    (what vLLM and OpenAI-style servers return): the top-k terms exactly, the remaining
    mass spread evenly over the rest of the vocabulary (an upper bound for that part)."""
    probs = [math.exp(x) for x in top]
    entropy = -math.fsum(p * x for p, x in zip(probs, top))
    rest = 1.0 - math.fsum(probs)
    others = vocab_size - len(probs)
    if rest > 1e-9 and others > 0:
        entropy -= rest * math.log(rest / others)
    return entropy


@dataclass
class LLMStats:
    backend: str
    model: str
    device: str = "cpu"
    dtype: str = ""
    load_seconds: float = 0.0
    gpu_bytes: int = 0  # weights + cache reserved on the GPU(s), 0 on CPU
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


class LLMError(RuntimeError):
    """A backend could not load or generate; the message says what to change."""


@dataclass
class Finding:
    """One thing a backend's check found: what is wrong and, where known, the fix."""

    message: str
    fix: str = ""


@dataclass
class CheckResult:
    """A backend's verdict on the flags (``check``) or on this machine (``fit``).

    ``errors``: the run cannot work; ``warnings``: it works, but a flag is not used or
    not what the operator likely meant; ``notes``: what was checked and found fine
    (check_env prints them)."""

    errors: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Host:
    """What check_env measured of this machine (None: unknown)."""

    gpu_total_gb: float | None = None
    ram_gb: float | None = None


class LLM(abc.ABC):
    """A loaded model that turns a batch of prompts into a batch of generations.

    A backend also owns its rules, so nothing outside its module names it: the
    ``--neuron.*`` flags only it reads (``own_flags``), what it needs of the machine
    (``needs_gpu``, ``tensor_parallel``, ``requirement_files``), ``check`` (used by the
    flag validation, ``llms/preflight.py`` and check_env alike), ``from_config`` and
    ``warmup``."""

    name: str = "base"
    # Flags of config.neuron only this backend reads: one set away from its default
    # while another backend is chosen gets a warning instead of being ignored.
    own_flags: tuple[str, ...] = ()
    needs_gpu: bool = False  # refuses --neuron.device cpu; check_env wants a GPU
    tensor_parallel: bool = False  # spreads one model over --neuron.gpus devices
    requirement_files: tuple[str, ...] = ()  # requirements/*.txt beyond base.txt, nodeps.txt

    @classmethod
    def from_config(cls, config: Config) -> LLM:
        """Load the model the config names (``--neuron.*``)."""
        raise LLMError(f"backend {cls.name} defines no from_config: it cannot be loaded")

    @classmethod
    def check(cls, config: Config) -> CheckResult:
        """The flags' rules for this backend, without loading anything. Overrides
        extend ``super().check``, which holds the rules every backend shares."""
        n = config.neuron
        result = CheckResult()
        if cls.needs_gpu and n.device == "cpu":
            result.errors.append(
                Finding(
                    f"--neuron.device cpu cannot be used with --neuron.llm_backend "
                    f"{cls.name} (GPU only)"
                )
            )
        if n.gpus > 1 and not cls.tensor_parallel:
            able = [b for b in BACKENDS.builtin_names() if BACKENDS[b].tensor_parallel]
            result.errors.append(
                Finding(
                    f"--neuron.gpus > 1 needs --neuron.llm_backend {' or '.join(able)} "
                    "(tensor parallel)"
                )
            )
        return result

    @classmethod
    def fit(cls, config: Config, shape: ModelShape, host: Host) -> CheckResult:
        """Whether the model (its ``shape``, from config.json) fits this machine with
        these flags; check_env prints it."""
        return CheckResult(warnings=[Finding(f"backend {cls.name} gives no memory figure")])

    @classmethod
    def missing(cls) -> str | None:
        """Why this backend cannot load on this machine (its library not installed),
        with the fix; None when it can. Cheap: no heavy import."""
        return None

    def warmup(self) -> float:
        """Work done once before the first step (compiling graphs, say), so that the
        first step is not the slow one; returns the seconds it took (0: none needed)."""
        return 0.0

    @abc.abstractmethod
    def generate(
        self, prompts: Sequence[Prompt], sampling: Sampling | None = None
    ) -> list[Generation]:
        """One Generation per prompt, in order. Chat messages get the chat template."""

    def score(
        self,
        prompts: Sequence[Prompt],
        continuations: Sequence[str],
        max_tokens: int | None = None,
    ) -> list[Scored]:
        """One Scored per (prompt, continuation) pair, in order. A chat prompt gets the
        chat template with the assistant turn opened (as ``generate`` renders it,
        ``render_chat``), then the continuation's tokens (tokenized alone,
        ``add_special_tokens=False``), cut at ``max_tokens`` tokens. A prompt longer than
        the model's context is cut from the left (the continuation is kept). Raises
        LLMError where the backend cannot score."""
        raise LLMError(
            f"backend {self.name} cannot score text (no per-token log-probabilities of a "
            "given continuation); use --neuron.llm_backend hf, vllm or openai"
        )

    @property
    @abc.abstractmethod
    def tokenizer(self):
        """The HF tokenizer (counts tokens, applies chat templates)."""

    @property
    @abc.abstractmethod
    def stats(self) -> LLMStats:
        """Load time, device and memory footprint."""

    @property
    def batch_capacity(self) -> int | None:
        """Sequences generated at once at most (more wait their turn); None: the backend
        does not say. The validator keeps about this many drafts ready for the next
        batch (``validator.concurrency``)."""
        return None

    def close(self) -> None:
        """Free GPU memory / connections. Safe to call twice."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def backend_class(name: str) -> type[LLM]:
    """The backend class ``name`` stands for; LLMError names what is available."""
    try:
        return BACKENDS[name]
    except PluginError as exc:
        raise LLMError(str(exc)) from None


def load_llm(config: Config) -> LLM:
    """Build the backend that ``--neuron.llm_backend`` names from the config."""
    return backend_class(config.neuron.llm_backend).from_config(config)


def as_messages(prompt: Prompt) -> list[Message]:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [dict(m) for m in prompt]


def fit_pair(
    prompt_ids: list[int],
    cont_ids: list[int],
    max_tokens: int | None = None,
    context: int | None = None,
) -> tuple[list[int], list[int]]:
    """One (prompt, continuation) pair of token ids cut as ``score`` promises: the
    continuation at ``max_tokens``; with ``context`` (the most tokens the model reads at
    once) the continuation keeps at most ``context - 1`` tokens and the prompt its last
    tokens that fit, since a judge asks about the answer, not the challenge's opening."""
    if max_tokens is not None:
        cont_ids = cont_ids[:max_tokens]
    if context is not None:
        cont_ids = cont_ids[: max(0, context - 1)]
        keep = context - len(cont_ids)
        if len(prompt_ids) > keep:
            prompt_ids = prompt_ids[len(prompt_ids) - keep :]
    return list(prompt_ids), list(cont_ids)


def check_pairs(prompts: Sequence, continuations: Sequence, max_tokens: int | None) -> None:
    """The arguments every backend's ``score`` refuses alike."""
    if len(prompts) != len(continuations):
        raise LLMError(
            f"score needs one continuation per prompt: {len(prompts)} prompts, "
            f"{len(continuations)} continuations"
        )
    if max_tokens is not None and max_tokens < 0:
        raise LLMError(f"max_tokens must be >= 0 (got {max_tokens})")


def score_pairs(
    tokenizer,
    prompts: Sequence[Prompt],
    continuations: Sequence[str],
    max_tokens: int | None = None,
    context: int | None = None,
) -> list[tuple[list[int], list[int]]]:
    """The token ids ``score`` teacher-forces: (prompt ids, continuation ids) per pair.

    One place for what the local backends must agree on, so that hf and vllm score the
    same tokens: the prompt rendered as ``generate`` renders it, the continuation
    tokenized alone (its first token does not merge with the prompt's last), both cut by
    ``fit_pair``. A prompt that renders to nothing gets the BOS (else EOS) token: the
    first continuation token needs something to be predicted from."""
    check_pairs(prompts, continuations, max_tokens)
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    # A step scores many answers to one challenge, passed as the same prompt object:
    # rendered and tokenized once (the objects live in ``prompts``, so ids stay unique).
    rendered: dict[int, list[int]] = {}
    pairs = []
    for prompt, continuation in zip(prompts, continuations):
        key = id(prompt)
        if key not in rendered:
            ids = tokenizer(render_chat(tokenizer, prompt), add_special_tokens=False).input_ids
            rendered[key] = ids or ([start] if start is not None else [])
        cont_ids = []
        if continuation:
            cont_ids = tokenizer(continuation, add_special_tokens=False).input_ids
        prompt_ids, cont_ids = fit_pair(rendered[key], cont_ids, max_tokens, context)
        if not prompt_ids and cont_ids:
            raise LLMError("the prompt renders to no tokens and the tokenizer has no BOS/EOS")
        pairs.append((prompt_ids, cont_ids))
    return pairs


def render_chat(tokenizer, prompt: Prompt) -> str:
    """Chat messages -> the model's chat template (with the assistant turn opened);
    a plain string passes through when the tokenizer has no template."""
    if isinstance(prompt, str) and tokenizer.chat_template is None:
        return prompt
    return tokenizer.apply_chat_template(
        as_messages(prompt), tokenize=False, add_generation_prompt=True
    )
