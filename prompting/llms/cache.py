"""The model cache: where models the project makes itself are written, and how.

Both makers use it, the converted models of ``embedded`` and the random-weight ones of
``tiny``, and neither imports the other for it: this module sits below both.
A model folder is written whole or not at all (``building``) and carries a
``BUILD_FILE`` saying what made it, so that a cache from an older recipe is rebuilt.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MODEL_CACHE_ENV = "PROMPTING_MODEL_CACHE"  # one cache for many state folders (tests, CI)
BUILD_FILE = "prompting_build.json"


def models_dir(state_dir: str | os.PathLike) -> Path:
    """Where built and converted models live: ``$PROMPTING_MODEL_CACHE`` or
    ``<state>/models``."""
    override = os.environ.get(MODEL_CACHE_ENV)
    return Path(override).expanduser() if override else Path(state_dir).expanduser() / "models"


def is_built(path: Path) -> bool:
    """Whether ``path`` holds a finished model folder (its ``BUILD_FILE`` is written
    last, inside the scratch folder that becomes ``path``)."""
    return (path / BUILD_FILE).exists()


def save_model(out: Path, model, tokenizer, info: dict) -> Path:
    """Write a model folder with its ``BUILD_FILE`` (what made it) atomically."""
    with building(out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / BUILD_FILE).write_text(json.dumps(info))
    return out


@contextmanager
def building(out: Path) -> Iterator[Path]:
    """A scratch folder beside ``out`` that becomes ``out`` when the block succeeds: a
    crash leaves no half-written model, and of two processes building at once the
    first to finish wins (theirs is as good as ours)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        yield tmp
        try:
            os.rename(tmp, out)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
