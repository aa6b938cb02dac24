"""One registry for every extension point: backends, tasks, rewards, miner strategies.

The project's own parts are registered here as lazy ``"module:object"`` targets;
parts from other distributions come through the entry-point groups ``prompting.llms``,
``prompting.tasks``, ``prompting.rewards`` (penalties included) and
``prompting.miner_strategies``. Listing names imports nothing but this module and
reads installed distributions' metadata, so ``--help`` and ``scripts/check_env.py``
list installed plug-ins and stay fast; a part is imported when its name is asked for,
checked against its base class, and a plug-in that cannot be imported or is not of
that class is named in a one-line :class:`PluginError`. Standard library only: the
config module builds its flag choices from here.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator, Mapping
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any


class PluginError(LookupError):
    """An unknown name, or a part that does not import or is not of its base class;
    the message is one line naming the part and where it came from."""


class Registry(Mapping[str, Any]):
    """Names -> parts of one kind. ``registry[name]`` imports and checks the part;
    iterating, ``len`` and ``in`` see names only (nothing imported).

    ``kind`` names the part in messages ("backend", "task"); ``base`` is the dotted
    ``"module:Class"`` every part must subclass (resolved when a part is loaded, so
    this module stays light)."""

    def __init__(self, kind: str, group: str, base: str, builtins: dict[str, str]):
        self.kind, self.group, self.base = kind, group, base
        self._targets: dict[str, str | Callable[..., Any]] = dict(builtins)
        self._builtins = tuple(builtins)
        self._loaded: dict[str, Any] = {}

    def register(self, name: str, target: str | type) -> None:
        """Add (or replace) a part in this process: ``"module:object"`` or the object."""
        self._targets[name] = target
        self._loaded.pop(name, None)

    def builtin_names(self) -> list[str]:
        """The project's own parts, in the order defaults use them."""
        return list(self._builtins)

    def _entry_points(self) -> dict[str, EntryPoint]:
        return {ep.name: ep for ep in _installed(tuple(sys.path), self.group)}

    def names(self) -> list[str]:
        """Registered names first (built-ins in their order), then installed plug-ins."""
        own = list(self._targets)
        return own + sorted(n for n in self._entry_points() if n not in self._targets)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __contains__(self, name: object) -> bool:
        return name in self._targets or name in self._entry_points()

    def __getitem__(self, name: str) -> Any:
        if name in self._loaded:
            return self._loaded[name]
        part = self._check(name, *self._resolve(name))
        self._loaded[name] = part
        return part

    def _resolve(self, name: str) -> tuple[Any, str]:
        """The part's object and where it came from (for messages)."""
        target = self._targets.get(name)
        if target is not None and not isinstance(target, str):
            return target, f"{getattr(target, '__module__', '?')}:{target.__qualname__}"
        if target is None:
            ep = self._entry_points().get(name)
            if ep is None:
                raise PluginError(self.unknown(name))
            dist = f"{ep.dist.name} {ep.dist.version}, " if ep.dist is not None else ""
            where = f"{dist}entry point {self.group} {ep.name} = {ep.value}"
            try:
                return ep.load(), where
            except Exception as exc:  # a plug-in's own bug: name it, in one line
                raise PluginError(
                    f"{self.kind} plug-in {name!r} ({where}) failed to import: {one_line(exc)}"
                ) from exc
        try:
            return load_target(target), target
        except Exception as exc:
            raise PluginError(
                f"{self.kind} {name!r} ({target}) failed to import: {one_line(exc)}"
            ) from exc

    def _check(self, name: str, part: Any, where: str) -> Any:
        base = load_target(self.base)
        if not (isinstance(part, type) and issubclass(part, base)):
            raise PluginError(
                f"{self.kind} plug-in {name!r} ({where}) is {_describe(part)}, "
                f"not a subclass of {base.__module__}.{base.__qualname__}"
            )
        return part

    def unknown(self, name: str) -> str:
        return f"unknown {self.kind} {name!r}; available: {', '.join(self.names())}"


@lru_cache(maxsize=16)
def _installed(path: tuple[str, ...], group: str) -> tuple[EntryPoint, ...]:
    """The entry points of ``group`` of the distributions on ``path``, read once per
    search path (building the flags asks for names several times, and each scan of the
    installed distributions costs 10 ms or more); a folder added to sys.path is seen
    at once."""
    return tuple(entry_points(group=group))


def load_target(target: str) -> Any:
    """``"package.module:Object.attr"`` -> the object (imports the module)."""
    module, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module)
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    return obj


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _describe(obj: Any) -> str:
    if isinstance(obj, type):
        return f"class {obj.__module__}.{obj.__qualname__}"
    return f"a {type(obj).__name__}"


BACKENDS = Registry(
    "backend",
    "prompting.llms",
    "prompting.llms.base:LLM",
    {
        "hf": "prompting.llms.hf:HFLLM",
        "vllm": "prompting.llms.vllm:VLLM",
        "openai": "prompting.llms.openai:OpenAILLM",
    },
)
TASKS = Registry(
    "task",
    "prompting.tasks",
    "prompting.tasks.base:Task",
    {
        "qa": "prompting.tasks.qa:QATask",
        "summarization": "prompting.tasks.summarization:SummarizationTask",
        "math": "prompting.tasks.math:MathTask",
        "debugging": "prompting.tasks.debugging:DebuggingTask",
        "date_qa": "prompting.tasks.date_qa:DateQATask",
        "generic_instruction": "prompting.tasks.generic_instruction:GenericInstructionTask",
    },
)
_MODELS = "prompting.rewards.models"
REWARDS = Registry(  # reward models and penalties: a task names which it uses as which
    "reward",
    "prompting.rewards",
    f"{_MODELS}:RewardModel",
    {
        name: f"{_MODELS}:{cls}"
        for name, cls in (
            ("rouge", "Rouge"),
            ("relevance", "Relevance"),
            ("date", "Date"),
            ("exact", "Exact"),
            ("code_fix", "CodeFix"),
            ("empty", "EmptyPenalty"),
            ("too_long", "TooLongPenalty"),
            ("echo", "EchoPenalty"),
            ("degenerate", "DegeneratePenalty"),
            ("refusal", "RefusalPenalty"),
            ("math_format", "MathFormatPenalty"),
            ("code_format", "CodeFormatPenalty"),
            ("diversity", "DiversityPenalty"),
            ("fluency", "FluencyPenalty"),
        )
    },
)
_STRATEGIES = "prompting.miner.strategies"
STRATEGIES = Registry(
    "miner strategy",
    "prompting.miner_strategies",
    "prompting.miner.base:Strategy",
    {
        name: f"{_STRATEGIES}:{cls}"
        for name, cls in (
            ("retrieval", "Retrieval"),
            ("random", "RandomText"),
            ("echo", "Echo"),
            ("empty", "Empty"),
            ("model", "Model"),
            ("slow", "Slow"),
            # the cheap tricks of the reward benchmark (prompting/miner/adversarial.py)
            ("restate", "Restate"),
            ("keywords", "Keywords"),
            ("lead", "Lead"),
            ("copy", "Copy"),
            ("numbers", "Numbers"),
            ("appended", "Appended"),
            ("shuffle", "Shuffle"),
            ("reworded", "Reworded"),
            ("interleaved", "Interleaved"),
            ("reordered", "Reordered"),
            ("padded_quote", "PaddedQuote"),
            ("canned", "Canned"),
            ("skipping", "Skipping"),
            ("chunked", "Chunked"),
            ("canned_quote", "CannedQuote"),
            ("patchwork", "Patchwork"),
            ("patchwork_skipping", "PatchworkSkipping"),
        )
    },
)
