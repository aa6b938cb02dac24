"""Offline corpora that every CPython ships: no download, same text on every machine.

* ``PydocPassages``: English passages from the pydoc topic pages (the language
  reference and library docs that ``help()`` shows), cleaned and cut to 300-1200
  characters at sentence ends.
* ``StdlibFunctions``: real functions from the standard library's own sources,
  5-40 lines, for the debugging task.
* ``MathProblems``: problems with exact numeric answers from ``mathgenerator``.
* ``HolidayCalendars``: dated events, the public holidays of ~150 countries over
  1990-2030, from the ``holidays`` package's rules, written out as passages.
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
from prompting.text import SENTENCE_END

MIN_CHARS, MAX_CHARS = 300, 1200
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
# mathgenerator generators whose answer is one number (power_of_powers is left out:
# its answer is an expression such as 16^{90}).
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
    sentences, out = SENTENCE_END.split(text), ""
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


class HolidayCalendars:
    """A passage lists consecutive public holidays of one country and year with their
    dates; ``events`` gives the same facts structured, for date_qa's reference."""

    name = "holidays"
    YEARS = range(1990, 2031)
    WINDOW = 8  # events per passage
    # Duplicated or derived entries: their names do not identify one date.
    _SKIP = re.compile(r"observed|substitute|bridge|estimated|\(|day off|holiday$", re.I)
    _STYLES = ("{d} {month} {y}", "{month} {d}, {y}", "{weekday}, {d} {month} {y}")

    @functools.cached_property
    def countries(self) -> dict[str, type]:
        """Two-letter code -> holidays class, for countries with English names."""
        import holidays

        out = {}
        for code in holidays.list_supported_countries():
            if len(code) != 2:
                continue
            cls = type(holidays.country_holidays(code, years=[]))
            if cls.default_language in (None, "en_US", "en_GB") or "en_US" in getattr(
                cls, "supported_languages", ()
            ):
                out[code] = cls
        return dict(sorted(out.items()))

    @functools.lru_cache(maxsize=256)  # noqa: B019 - one shared instance per process
    def events(self, code: str, year: int) -> tuple[tuple[str, str], ...]:
        """(ISO date, English name) of ``code``'s holidays in ``year``, names unique."""
        cls = self.countries[code]
        language = "en_US" if "en_US" in getattr(cls, "supported_languages", ()) else None
        days = cls(years=year, language=language)
        named: dict[str, list] = {}
        for day, names in sorted(days.items()):
            for name in names.split("; "):
                named.setdefault(name.strip(), []).append(day)
        return tuple(
            (days_[0].isoformat(), name)
            for name, days_ in sorted(named.items(), key=lambda kv: kv[1][0])
            if len(days_) == 1 and not self._SKIP.search(name)
        )

    @staticmethod
    def country_name(cls: type) -> str:
        """'UnitedKingdom' -> 'United Kingdom' (aliases such as ``GB`` subclass it)."""
        named = next(c for c in cls.__mro__ if not c.__name__.isupper())
        return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", named.__name__)

    def get(self, rng: random.Random) -> Document:
        codes = list(self.countries)
        while True:
            code, year = rng.choice(codes), rng.choice(self.YEARS)
            events = self.events(code, year)
            if len(events) >= 3:
                start = rng.randrange(max(1, len(events) - self.WINDOW + 1))
                return self.by_id(f"holidays:{code}:{year}:{start}")

    def window(self, doc_id: str) -> tuple[tuple[str, str], ...]:
        """The events a passage lists."""
        _, code, year, start = doc_id.split(":")
        return self.events(code, int(year))[int(start) : int(start) + self.WINDOW]

    def by_id(self, doc_id: str) -> Document:
        from datetime import date

        _, code, year, _ = doc_id.split(":")
        country = self.country_name(self.countries[code])
        style = random.Random(doc_id).choice(self._STYLES)
        lines = [f"Public holidays in {country} in {year}."]
        for iso, name in self.window(doc_id):
            d = date.fromisoformat(iso)
            when = style.format(d=d.day, month=d.strftime("%B"), y=d.year, weekday=d.strftime("%A"))
            lines.append(f"{name} is on {when}.")
        return Document(doc_id, country, " ".join(lines))


@functools.cache
def dataset(name: str):
    """Shared instances: corpora are parsed once per process."""
    return {
        "pydoc": PydocPassages,
        "stdlib": StdlibFunctions,
        "math": MathProblems,
        "holidays": HolidayCalendars,
    }[name]()
