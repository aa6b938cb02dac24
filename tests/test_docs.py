"""The README is a front page and every relative link in the documentation resolves.

Pages move and headings get renamed; a link that points nowhere is found here, not by
a reader. Checked: README.md, docs/*.md, benchmarks/README.md and
benchmarks/results/README.md; a link's file must exist, and its ``#anchor`` must be a
heading of the target page (slugged as GitHub does).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted(
    [ROOT / "README.md", ROOT / "benchmarks" / "README.md", ROOT / "benchmarks/results/README.md"]
    + list((ROOT / "docs").glob("*.md"))
)
README_MAX_LINES = 300
LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]*`")


def prose(text: str) -> str:
    """The page without code (fenced blocks, inline spans): links there are examples."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to '-'."""
    text = heading.strip().lower().replace("`", "")
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading anchor of a page, repeated headings numbered as GitHub does."""
    seen: Counter[str] = Counter()
    found = set()
    for line in FENCE.sub("", page.read_text()).splitlines():
        match = re.match(r"#{1,6} (.+)", line)
        if match:
            base = slug(match.group(1))
            found.add(base if not seen[base] else f"{base}-{seen[base]}")
            seen[base] += 1
    return found


def links(page: Path) -> list[str]:
    return [t for t in LINK.findall(prose(page.read_text())) if "://" not in t]


def test_the_pages_exist():
    missing = [p for p in PAGES if not p.is_file()]
    assert not missing, missing


def broken_links(page: Path) -> list[str]:
    """Each relative link of the page whose file or heading does not exist, with why."""
    broken = []
    for target in links(page):
        if target.startswith("mailto:"):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading with that anchor")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path):
    assert not broken_links(page)


def test_the_checker_finds_a_broken_link_and_a_broken_anchor(tmp_path: Path):
    """The link check can fail: a missing file and a missing heading are both caught,
    and a link inside code is an example, not a link."""
    (tmp_path / "b.md").write_text("# Real heading, with `code`\n")
    page = tmp_path / "a.md"
    page.write_text(
        "[ok](b.md#real-heading-with-code) [gone](c.md) [bad](b.md#nothing)\n"
        "```\n[example](nowhere.md)\n```\n"
    )
    assert links(page) == ["b.md#real-heading-with-code", "c.md", "b.md#nothing"]
    assert anchors(tmp_path / "b.md") == {"real-heading-with-code"}
    assert broken_links(page) == [
        "c.md: no such file",
        "b.md#nothing: no heading with that anchor",
    ]


def test_readme_is_a_front_page():
    """At most 300 lines; the rest lives in docs/, which the README links, every page."""
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= README_MAX_LINES
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in links(ROOT / "README.md")}
    unlinked = [p.name for p in (ROOT / "docs").glob("*.md") if p.resolve() not in linked]
    assert not unlinked, f"docs pages the README does not link: {unlinked}"


def test_readme_documents_the_ci_test_command():
    """.ci/run runs the test command the README documents; they must stay the same."""
    assert "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
    assert "bash scripts/test.sh" in (ROOT / "README.md").read_text()
