"""Online sources behind ``--neuron.dataset wikipedia``, with a local cache.

Passages come from Wikipedia's REST API (random page summaries). Every page fetched
is appended to ``<state>/cache/wikipedia.jsonl`` so a challenge can be replayed by id
offline and a validator without network falls back to what it has seen. Never used
by default or by the offline test suite's validator runs.
"""

from __future__ import annotations

import json
import os
import random
import threading
from urllib.parse import quote

from prompting.datasets.base import Document

WIKIPEDIA_API = "https://en.wikipedia.org/api/rest_v1"
MIN_CHARS = 300
FETCH_TRIES = 5


class WikipediaPassages:
    name = "wikipedia"

    def __init__(self, cache_dir: str, base_url: str = WIKIPEDIA_API, timeout: float = 10.0):
        import httpx

        self.path = os.path.join(cache_dir, "wikipedia.jsonl")
        os.makedirs(cache_dir, exist_ok=True)
        self._http = httpx.Client(
            base_url=base_url, timeout=timeout, headers={"User-Agent": "prompting-validator/0.1"}
        )
        self._lock = threading.Lock()
        self.cache: dict[str, Document] = {}
        if os.path.exists(self.path):
            with open(self.path) as f:
                for line in f:
                    try:
                        doc = Document(**json.loads(line))
                    except (ValueError, TypeError):
                        continue  # a torn last line after a crash
                    self.cache[doc.id] = doc

    def _remember(self, data: dict) -> Document | None:
        text = " ".join((data.get("extract") or "").split())
        title = data.get("title") or ""
        if len(text) < MIN_CHARS or not title:
            return None
        doc = Document(f"wiki:{title}", title, text)
        with self._lock:
            if doc.id not in self.cache:
                self.cache[doc.id] = doc
                with open(self.path, "a") as f:
                    f.write(json.dumps(doc.__dict__) + "\n")
        return doc

    def get(self, rng: random.Random) -> Document:
        """A fresh random page; a cached one (chosen by rng) when the API fails."""
        import httpx

        for _ in range(FETCH_TRIES):
            try:
                resp = self._http.get("/page/random/summary")
                resp.raise_for_status()
                doc = self._remember(resp.json())
            except (httpx.HTTPError, ValueError):
                break
            if doc is not None:
                return doc
        if not self.cache:
            raise RuntimeError(
                "wikipedia unreachable and nothing cached; use --neuron.dataset offline"
            )
        return self.cache[rng.choice(sorted(self.cache))]

    def by_id(self, doc_id: str) -> Document:
        if doc_id in self.cache:
            return self.cache[doc_id]
        resp = self._http.get(f"/page/summary/{quote(doc_id.split(':', 1)[1], safe='')}")
        resp.raise_for_status()
        doc = self._remember(resp.json())
        if doc is None:
            raise KeyError(doc_id)
        return doc
