"""Debugging reward: how much of the corruption a miner's code undid."""

from __future__ import annotations

import ast
import difflib

from prompting.text import FENCE


def extract_code(text: str) -> str:
    """The first fenced block if there is one, else the whole text."""
    match = FENCE.search(text)
    return (match.group(1) if match else text).strip("\n")


def normalize_code(code: str) -> str:
    """Same AST -> same string (comments, blank lines and quoting do not count)."""
    try:
        return ast.unparse(ast.parse(code))
    except (SyntaxError, ValueError):
        return "\n".join(ln.rstrip() for ln in code.strip().splitlines() if ln.strip())


def parses(code: str) -> bool:
    try:
        ast.parse(code)
        return True
    except (SyntaxError, ValueError):
        return False


def similarity(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def fix_reward(completion: str, reference: str, corrupted: str) -> float:
    """1 for the original function; 0 for returning the corrupted one unchanged (or worse);
    in between, the share of the distance from corrupted to original that was closed."""
    got, want, bad = (normalize_code(extract_code(x)) for x in (completion, reference, corrupted))
    if got == want:
        return 1.0
    base = similarity(bad, want)
    if base >= 1.0:
        return 0.0
    return max(0.0, (similarity(got, want) - base) / (1.0 - base))
