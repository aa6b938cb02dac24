"""Every version-specific shim of the project, and nothing else.

Each shim names the failure it prevents; tests/test_compat.py reproduces each one.

* uvloop guard: a uvloop event-loop policy (installed by bittensor stacks of old,
  uvicorn[standard], or an operator's sitecustomize) makes the threads vLLM starts
  fail with "There is no current event loop in thread ...". We restore asyncio's
  default policy before vLLM loads and say so in one log line; ``run`` gives the
  validator's own loop uvloop's speed without the policy.
* angle-emb: angle-emb 0.6.1 pins transformers==5.3.0 and imports bitsandbytes and
  datasets at module level, although encoding needs neither (they serve its
  training and 4-bit loading). vLLM needs transformers>=5.5.3. We install angle-emb
  without its pins (see requirements/) and import it with inert stand-ins for the
  two training-only modules, then check the transformers names it uses exist.
* transformers in threads: the validator loads its LLM in the main thread while the
  relevance embedder loads in another; two threads importing transformers for the first
  time break each other's imports ("cannot import name 'AutoModelForCausalLM'", or the
  angle-emb check below finding none of the names it needs in a half-imported module).
  The validator imports angle-emb (and with it transformers) before it starts threads,
  and the imports that may run beside another thread's (the HF backend's, angle-emb's)
  take one lock: ``import_transformers``, ``import_angle``. A thread outside that lock
  (a plug-in's, a benchmark's plain ``import transformers``) is waited for through
  the import system's own lock on the module (``whole_module``), and the angle-emb check
  reads the names transformers declares, never what a half-finished import has bound
  so far. Loading is no safer:
  transformers 5 ``from_pretrained`` swaps ``PreTrainedModel.tie_weights`` for a no-op
  while it builds a model (``initialization.no_tie_weights``), for every thread, so the
  LLM loaded while the embedder loaded could skip tying SmolLM2's lm_head, leave it on
  the meta device and fail (``Cannot copy out of meta tensor``; CI, 2026-12-03).
  Every model load takes the same lock: ``loading_models``.
* pydantic: the miner API models use pydantic 2 (model_validate, model_dump_json);
  bittensor 6.x needed pydantic<2. We fail early with the fix if pydantic 1 is found.
* glibc heap: torch and the tokenizers free CPU buffers that glibc keeps mapped, so a
  validator's RSS crept up with every step (measured: benchmarks/README.md, "CPU path").
  ``release_freed_memory`` hands them back (malloc_trim) after each step; elsewhere it
  does nothing.
* CUDA_VISIBLE_DEVICES: ordinals or GPU UUIDs (GPU-xxxx, MIG-xxxx), comma separated;
  vLLM and torch honour it but memory arithmetic needs to know which device it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import importlib
import importlib.machinery
import importlib.util
import logging
import os
import sys
import threading
import types
from collections.abc import Iterator
from dataclasses import dataclass

log = logging.getLogger(__name__)

# Names angle_emb.angle imports from transformers (0.6.1); checked before import so
# a missing one gives our message instead of a traceback inside angle_emb.
ANGLE_TRANSFORMERS_NAMES = (
    "AutoModel",
    "AutoModelForCausalLM",
    "AutoModelForMaskedLM",
    "AutoTokenizer",
    "BitsAndBytesConfig",
    "PreTrainedModel",
    "Trainer",
    "TrainerCallback",
    "TrainingArguments",
)
# Modules angle_emb imports at load time but uses only to train / quantize.
ANGLE_TRAINING_ONLY_MODULES = ("bitsandbytes", "datasets")

PYDANTIC_FIX = "pip install 'pydantic>=2.6,<3'"
# One import or model load of transformers at a time in this process (see the module doc).
_IMPORT_LOCK = threading.RLock()


class CompatError(RuntimeError):
    """A dependency combination that cannot work; the message says how to fix it."""


# --- uvloop -----------------------------------------------------------------------


def event_loop_policy_is_uvloop() -> bool:
    policy = asyncio.get_event_loop_policy()
    return type(policy).__module__.split(".")[0] == "uvloop"


def guard_event_loop_policy() -> bool:
    """Replace a uvloop policy with asyncio's default. Returns True if it changed.

    Call before creating threads that use asyncio (vLLM's engine, our miner client).
    """
    if not event_loop_policy_is_uvloop():
        return False
    asyncio.set_event_loop_policy(asyncio.DefaultEventLoopPolicy())
    log.warning(
        "compat: uvloop event-loop policy found; restored asyncio's default so vLLM's "
        "threads get an event loop (avoids 'There is no current event loop in thread')"
    )
    return True


def run(main):
    """``asyncio.run(main)`` on uvloop's event loop where uvloop is installed (Python
    3.11+): its loop spends less of the GIL on callbacks and sockets, which a model thread
    beside it needs. Only this loop is uvloop's; the policy stays asyncio's default, so
    the guard above still holds for every other thread."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    if sys.version_info < (3, 11):  # asyncio.Runner takes a loop factory from 3.11
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


# --- transformers in threads -------------------------------------------------------


@contextlib.contextmanager
def loading_models() -> Iterator[None]:
    """Hold while building a transformers model (``from_pretrained``, a model class):
    transformers patches class attributes for every thread during a load, so two
    loads at once corrupt each other. Re-entrant, and shared with the imports."""
    with _IMPORT_LOCK:
        yield


def whole_module(name: str) -> types.ModuleType:
    """The module ``name`` as its finished import left it, whichever thread imports it.

    A plain ``import transformers`` while another thread is inside transformers' own
    import waits for that import (the module's import lock) but then binds the object
    it looked up before waiting; transformers replaces itself in ``sys.modules`` with
    a lazy module at the end of its ``__init__``, so that object is the half-built one,
    without the lazy names. ``importlib.import_module`` takes the module's import lock
    and reads ``sys.modules`` under it; reading it again once the lock is released
    gives the module every thread will see from now on."""
    importlib.import_module(name)
    return sys.modules[name]


def import_transformers(*names: str) -> tuple:
    """transformers' ``names`` (``import_transformers("AutoTokenizer")[0]``), imported
    whole before any other thread may import it: resolving a name of transformers' lazy
    module imports its submodule, so that happens under the lock too. A name that does
    not exist raises AttributeError."""
    with _IMPORT_LOCK:
        transformers = whole_module("transformers")
        return tuple(getattr(transformers, name) for name in names)


# --- pydantic ---------------------------------------------------------------------


def check_pydantic() -> str:
    """Return the pydantic version; raise CompatError for pydantic 1."""
    import pydantic

    version = getattr(pydantic, "VERSION", "0")
    if int(str(version).split(".")[0]) < 2:
        raise CompatError(f"pydantic {version} found; prompting needs pydantic 2: {PYDANTIC_FIX}")
    return str(version)


# --- angle-emb --------------------------------------------------------------------


@contextlib.contextmanager
def _training_only_stand_ins() -> Iterator[list[str]]:
    """Put inert modules for angle-emb's training-only imports in sys.modules.

    They are removed again afterwards so that transformers' own availability checks
    (``is_datasets_available``) keep seeing the truth.
    """
    added = []
    for name in ANGLE_TRAINING_ONLY_MODULES:
        if name in sys.modules or importlib.util.find_spec(name) is not None:
            continue
        stub = types.ModuleType(name, f"prompting.compat stand-in: {name} is not installed")
        stub.__spec__ = importlib.machinery.ModuleSpec(name, None)
        stub.Dataset = type("Dataset", (), {})  # angle_emb uses it in annotations only
        sys.modules[name] = stub
        added.append(name)
    try:
        yield added
    finally:
        for name in added:
            sys.modules.pop(name, None)


def import_angle():
    """Import angle_emb against whatever transformers is installed; return AnglE."""
    with _IMPORT_LOCK:  # the check judges a whole module, never a half-imported one
        if "angle_emb" in sys.modules:  # imported, or being imported by another thread
            return whole_module("angle_emb").AnglE
        transformers = whole_module("transformers")
        # declared names: a lazy module lists them before (and whether or not) another
        # thread's import of the submodule behind one has finished
        declared = set(dir(transformers))
        missing = [n for n in ANGLE_TRANSFORMERS_NAMES if n not in declared]
        if missing:
            raise CompatError(
                f"transformers {transformers.__version__} lacks {', '.join(missing)} that "
                "angle-emb uses; install a transformers release in requirements/base.txt"
            )
        if importlib.util.find_spec("angle_emb") is None:
            raise CompatError("angle-emb is not installed: pip install --no-deps angle-emb==0.6.1")
        with _training_only_stand_ins() as added:
            if added:
                log.debug("compat: importing angle_emb with stand-ins for %s", ", ".join(added))
            module = importlib.import_module("angle_emb")
        return module.AnglE


# --- glibc heap -----------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # musl or another libc: nothing to trim
        return None


def release_freed_memory() -> bool:
    """Return freed heap pages to the OS (glibc); True if it ran."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


# --- visible devices --------------------------------------------------------------


@dataclass(frozen=True)
class VisibleDevices:
    """What CUDA_VISIBLE_DEVICES selects: ordinals, UUIDs, or everything (None)."""

    entries: tuple[str, ...] | None

    @property
    def count(self) -> int | None:
        return None if self.entries is None else len(self.entries)

    def physical(self, logical: int) -> str:
        """The entry (ordinal or UUID) behind logical device ``logical``."""
        if self.entries is None:
            return str(logical)
        if logical >= len(self.entries):
            raise CompatError(
                f"device cuda:{logical} requested but CUDA_VISIBLE_DEVICES="
                f"{','.join(self.entries)} shows only {len(self.entries)} GPU(s)"
            )
        return self.entries[logical]


def parse_visible_devices(value: str | None = None) -> VisibleDevices:
    """Parse CUDA_VISIBLE_DEVICES the way the CUDA runtime does.

    Unset means all devices; empty means none. CUDA stops at the first invalid entry
    and ignores the rest, and so do we. Entries are ordinals (``0``), full or prefixed
    UUIDs (``GPU-8c1f...``) or MIG ids (``MIG-...``).
    """
    if value is None:
        value = os.environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return VisibleDevices(None)
    entries: list[str] = []
    for raw in value.split(","):
        item = raw.strip()
        if item.isdigit():
            entries.append(str(int(item)))
        elif item.upper().startswith(("GPU-", "MIG-")) and len(item) > 4:
            entries.append(item)
        else:
            break
    if len(set(entries)) != len(entries):
        raise CompatError(f"CUDA_VISIBLE_DEVICES={value!r} names a device twice")
    return VisibleDevices(tuple(entries))


def match_device(entry: str, gpus: list[dict]) -> dict | None:
    """Find the physical GPU (dicts with 'index' and 'uuid', as nvidia-smi lists them)
    that a CUDA_VISIBLE_DEVICES entry names; UUID prefixes match like CUDA's."""
    if entry.isdigit():
        return next((g for g in gpus if int(g["index"]) == int(entry)), None)
    hits = [g for g in gpus if str(g.get("uuid", "")).upper().startswith(entry.upper())]
    return hits[0] if len(hits) == 1 else None
