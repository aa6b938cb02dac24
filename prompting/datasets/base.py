"""A source document: what a task builds its challenge from."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Document:
    id: str  # stable: a replayed challenge finds the same document again
    title: str
    text: str


class Dataset(Protocol):
    name: str

    def get(self, rng: random.Random) -> Document:
        """A document chosen by ``rng``: the same rng state gives the same document."""
        ...

    def by_id(self, doc_id: str) -> Document: ...
