"""Offline corpora that every CPython ships: no download, same text on every machine.

* ``PydocPassages``: English passages from the pydoc topic pages (the language
  reference and library docs that ``help()`` shows), cleaned and cut to 300-1200
  characters at sentence ends.
* ``StdlibFunctions``: real functions from the standard library's own sources,
  5-40 lines, for the debugging task.
* ``MathProblems``: problems with exact numeric answers from ``mathgenerator``.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import random
import re
import textwrap

from prompting.datasets.base import Document

MIN_CHARS, MAX_CHARS = 300, 1200
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(])")
# Modules with plain, self-contained functions (pure Python, stable across 3.10-3.12).
CODE_MODULES = (
    "textwrap",
    "fnmatch",
    "shlex",
    "heapq",
    "bisect",
    "colorsys",
    "calendar",
    "statistics",
    "difflib",
    "string",
    "glob",
    "posixpath",
    "base64",
    "quopri",
    "html",
    "keyword",
    "operator",
    "random",
    "fractions",
    "ipaddress",
)
# mathgenerator generators whose answer is one number.
MATH_GENERATORS = (
    "addition",
    "subtraction",
    "multiplication",
    "division",
    "combinations",
    "cube_root",
    "area_of_circle",
    "celsius_to_fahrenheit",
    "compound_interest",
    "arithmetic_progression_sum",
    "arithmetic_progression_term",
    "factorial",
    "gcd",
    "lcm",
    "square",
    "square_root",
    "percentage",
    "power_of_powers",
    "simple_interest",
    "volume_cube",
    "surface_area_cube",
    "perimeter_of_polygons",
    "absolute_difference",
    "degree_to_rad",
    "circumference",
    "permutation",
)


def _clean(text: str) -> str | None:
    """One paragraph -> prose on one line, or None if it is code, a table or too short."""
    lines = [ln.strip() for ln in text.splitlines()]
    if any(ln.startswith((">>>", "...", "$", "|", "+--", "===", "***")) for ln in lines):
        return None
    prose = re.sub(r"\s+", " ", " ".join(lines)).strip()
    prose = prose.replace("**", "").replace('\u201c"', '"').replace('"\u201d', '"')
    symbols = sum(ch in "{}[]()=<>*_:;`\\" for ch in prose)
    if len(prose) < 80 or symbols > len(prose) * 0.04:
        return None
    return prose


def _cut(text: str) -> str:
    """At most MAX_CHARS, ending at a sentence end when one is near."""
    if len(text) <= MAX_CHARS:
        return text
    sentences, out = _SENTENCE_END.split(text), ""
    for s in sentences:
        if len(out) + len(s) + 1 > MAX_CHARS:
            break
        out = f"{out} {s}".strip()
    return out or text[:MAX_CHARS]


class PydocPassages:
    name = "pydoc"

    @functools.cached_property
    def documents(self) -> list[Document]:
        from pydoc_data.topics import topics

        docs = []
        for topic in sorted(topics):
            buffer, part = "", 0
            for para in re.split(r"\n\s*\n", topics[topic]):
                prose = _clean(para)
                if prose is None:
                    continue
                buffer = f"{buffer} {prose}".strip()
                if len(buffer) >= MIN_CHARS:
                    docs.append(Document(f"pydoc:{topic}:{part}", topic, _cut(buffer)))
                    buffer, part = "", part + 1
        return docs

    def get(self, rng: random.Random) -> Document:
        return rng.choice(self.documents)

    def by_id(self, doc_id: str) -> Document:
        return next(d for d in self.documents if d.id == doc_id)


class StdlibFunctions:
    name = "stdlib"

    @functools.cached_property
    def documents(self) -> list[Document]:
        docs = []
        for module_name in CODE_MODULES:
            try:
                source = inspect.getsource(importlib.import_module(module_name))
            except (OSError, TypeError, ImportError):
                continue
            for node in ast.parse(source).body:
                if not isinstance(node, ast.FunctionDef) or node.name.startswith("__"):
                    continue
                code = ast.get_source_segment(source, node)
                if code is None or not 5 <= code.count("\n") + 1 <= 40:
                    continue
                docs.append(
                    Document(
                        f"stdlib:{module_name}.{node.name}",
                        f"{module_name}.{node.name}",
                        textwrap.dedent(code),
                    )
                )
        return docs

    def get(self, rng: random.Random) -> Document:
        return rng.choice(self.documents)

    def by_id(self, doc_id: str) -> Document:
        return next(d for d in self.documents if d.id == doc_id)


def _strip_dollars(text: str) -> str:
    return text.replace("$", "").strip()


class MathProblems:
    """Generated problems; the 'document' text is the problem, its title the answer."""

    name = "math"

    @functools.cached_property
    def generators(self) -> list[str]:
        import mathgenerator

        return [g for g in MATH_GENERATORS if hasattr(mathgenerator, g)]

    def get(self, rng: random.Random) -> Document:
        name = rng.choice(self.generators)
        return self._make(name, rng.randrange(2**31))

    def _make(self, name: str, seed: int) -> Document:
        import mathgenerator

        state = random.getstate()  # mathgenerator draws from the global random module
        try:
            random.seed(seed)
            problem, solution = getattr(mathgenerator, name)()
        finally:
            random.setstate(state)
        return Document(f"math:{name}:{seed}", _strip_dollars(solution), _strip_dollars(problem))

    def by_id(self, doc_id: str) -> Document:
        _, name, seed = doc_id.split(":")
        return self._make(name, int(seed))


@functools.cache
def dataset(name: str):
    """Shared instances: corpora are parsed once per process."""
    return {"pydoc": PydocPassages, "stdlib": StdlibFunctions, "math": MathProblems}[name]()
